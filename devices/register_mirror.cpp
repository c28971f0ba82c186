#include "devices/register_mirror.hpp"

#include <algorithm>
#include <atomic>

namespace minivmm {

RegisterMirror::RegisterMirror(Device& device, std::span<uint8_t> page, uint32_t register_bytes,
                               std::span<const uint32_t> changing) noexcept
    : device_(device), page_(page), changing_(changing) {
    const uint32_t end = std::min<uint32_t>(register_bytes, static_cast<uint32_t>(page.size())) & ~3u;
    for (uint32_t offset = 0; offset < end; offset += 4) store(offset);
}

void RegisterMirror::write(uint64_t offset, std::span<const uint8_t> data) noexcept {
    device_.write(offset, data);
    refresh();
}

void RegisterMirror::refresh() noexcept {
    for (uint32_t offset : changing_) store(offset);
}

// A release store per word: another vCPU may read the page meanwhile, and a register that signals
// completion (CTRL_START reading 0) must not be seen before what it signals (the response in the
// buffer, written by the device before the refresh).
void RegisterMirror::store(uint32_t offset) noexcept {
    if (offset % 4 != 0 || offset >= page_.size() || page_.size() - offset < 4) return;
    uint8_t bytes[4];
    device_.read(offset, bytes);
    auto* word = reinterpret_cast<uint32_t*>(page_.data() + offset);
    std::atomic_ref<uint32_t>(*word).store(static_cast<uint32_t>(load_le(std::span<const uint8_t>(bytes))),
                                           std::memory_order_release);
}

}  // namespace minivmm
