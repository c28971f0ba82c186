#include "devices/register_mirror.hpp"

#include <algorithm>
#include <atomic>

namespace minivmm {

RegisterMirror::RegisterMirror(Device& device, std::span<uint8_t> page, uint32_t register_bytes) noexcept
    : device_(device), page_(page), register_bytes_(std::min<uint32_t>(register_bytes, static_cast<uint32_t>(page.size())) & ~3u) {
    refresh();
}

void RegisterMirror::write(uint64_t offset, std::span<const uint8_t> data) noexcept {
    device_.write(offset, data);
    refresh();
}

// Word by word with release stores: another vCPU may read the page meanwhile, and a register that
// signals completion (CTRL_START reading 0) must not be seen before what it signals (the response
// in the buffer, written by the device before this refresh).
void RegisterMirror::refresh() noexcept {
    for (uint32_t offset = 0; offset < register_bytes_; offset += 4) {
        uint8_t bytes[4];
        device_.read(offset, bytes);
        auto* word = reinterpret_cast<uint32_t*>(page_.data() + offset);
        std::atomic_ref<uint32_t>(*word).store(static_cast<uint32_t>(load_le(std::span<const uint8_t>(bytes))),
                                               std::memory_order_release);
    }
}

}  // namespace minivmm
