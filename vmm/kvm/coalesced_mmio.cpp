#include "vmm/kvm/coalesced_mmio.hpp"

#include <cstring>

#include "vmm/base/log.hpp"

namespace minivmm {

namespace {

// The kernel writes `last` and the entries from other threads (vCPUs inside KVM_RUN): read `last`
// with acquire so the entries before it are visible, publish `first` with release so the kernel
// does not reuse a slot before it was read.
uint32_t load_acquire(const uint8_t* p) noexcept {
    return __atomic_load_n(reinterpret_cast<const uint32_t*>(p), __ATOMIC_ACQUIRE);
}
void store_release(uint8_t* p, uint32_t v) noexcept { __atomic_store_n(reinterpret_cast<uint32_t*>(p), v, __ATOMIC_RELEASE); }

}  // namespace

CoalescedMmioRing::CoalescedMmioRing(std::span<uint8_t> page) noexcept
    : page_(page),
      capacity_(page.size() > kHeaderSize ? static_cast<uint32_t>((page.size() - kHeaderSize) / kEntrySize) : 0) {}

bool CoalescedMmioRing::pending() const noexcept {
    if (capacity_ == 0) return false;
    return __atomic_load_n(reinterpret_cast<const uint32_t*>(page_.data()), __ATOMIC_RELAXED) !=
           load_acquire(page_.data() + 4);
}

size_t CoalescedMmioRing::drain(Bus& mmio, ReplayObserver* observer) noexcept {
    if (capacity_ == 0) return 0;
    uint8_t* const first_p = page_.data();
    uint32_t first = __atomic_load_n(reinterpret_cast<const uint32_t*>(first_p), __ATOMIC_RELAXED);
    const uint32_t last = load_acquire(page_.data() + 4);
    if (first == last) return 0;
    if (first >= capacity_ || last >= capacity_) {
        log::debug("coalesced mmio: ring indices {}..{} outside 0..{}; not replayed", first, last, capacity_ - 1);
        return 0;
    }
    size_t replayed = 0;
    while (first != last) {
        const uint8_t* e = page_.data() + kHeaderSize + static_cast<size_t>(first) * kEntrySize;
        uint64_t addr;
        uint32_t len, pio;
        std::memcpy(&addr, e, 8);
        std::memcpy(&len, e + 8, 4);
        std::memcpy(&pio, e + 12, 4);
        if (len == 0 || len > 8 || pio != 0) {
            log::debug("coalesced mmio: entry {} has length {} pio {}; dropped", first, len, pio);
        } else {
            uint8_t data[8];
            std::memcpy(data, e + 16, len);
            if (!mmio.write(addr, std::span<const uint8_t>(data, len)))
                log::debug("coalesced mmio: no device at {:#x} (+{})", addr, len);
            ++replayed;
            if (observer) observer->replayed(addr);
        }
        first = (first + 1) % capacity_;
        store_release(first_p, first);
    }
    return replayed;
}

}  // namespace minivmm
