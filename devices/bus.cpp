#include "devices/bus.hpp"

#include <algorithm>
#include <stdexcept>

#include "vmm/base/log.hpp"

namespace minivmm {

bool Bus::try_insert(uint64_t base, uint64_t size, Device& device) noexcept {
    if (size == 0 || base + size < base) return false;  // empty or wraps past 2^64
    uint64_t last = base + size - 1;
    auto next = ranges_.lower_bound(base);
    if (next != ranges_.end() && next->first <= last) return false;
    if (next != ranges_.begin()) {
        auto prev = std::prev(next);
        if (prev->first + prev->second.size - 1 >= base) return false;
    }
    try {
        ranges_.emplace(base, Range{size, &device});
    } catch (...) {
        return false;
    }
    return true;
}

void Bus::insert(uint64_t base, uint64_t size, Device& device) {
    if (!try_insert(base, size, device))
        throw std::invalid_argument(fmt::format("{} bus: cannot map {} at {:#x} size {:#x} (empty, wraps or overlaps)",
                                                name_, device.name(), base, size));
}

bool Bus::remove(uint64_t base, const Device& device) noexcept {
    auto it = ranges_.find(base);
    if (it == ranges_.end() || it->second.device != &device) return false;
    ranges_.erase(it);
    return true;
}

Bus::Hit Bus::find(uint64_t address, uint64_t size) const noexcept {
    if (size == 0 || address + size - 1 < address) return {};
    auto it = ranges_.upper_bound(address);
    if (it == ranges_.begin()) return {};
    --it;
    uint64_t off = address - it->first;
    if (off >= it->second.size || size > it->second.size - off) return {};
    return {it->second.device, off};
}

bool Bus::read(uint64_t address, std::span<uint8_t> data) noexcept {
    Hit hit = find(address, data.size());
    if (!hit.device) {
        std::fill(data.begin(), data.end(), uint8_t{0xff});
        log::debug("{}: unmapped read of {} bytes at {:#x}", name_, data.size(), address);
        return false;
    }
    hit.device->read(hit.offset, data);
    return true;
}

bool Bus::write(uint64_t address, std::span<const uint8_t> data) noexcept {
    Hit hit = find(address, data.size());
    if (!hit.device) {
        log::debug("{}: unmapped write of {} bytes at {:#x}", name_, data.size(), address);
        return false;
    }
    hit.device->write(hit.offset, data);
    return true;
}

}  // namespace minivmm
