// KVM's coalesced MMIO ring (Linux Documentation/virt/kvm/api.rst, KVM_REGISTER_COALESCED_MMIO and
// KVM_CAP_COALESCED_MMIO): a guest write into a registered zone is appended by the kernel to a
// ring in the vCPU mapping instead of exiting to user space. The ring is the VM's (one for all
// vCPUs). The vCPU loop replays it, in order, before it serves any exit, under the device lock, so
// a device sees exactly the access sequence the guest made; a read or a write outside the zones
// always exits, and so always comes after the writes before it.
//
// Used for the TIS data FIFOs (Linux writes a command one byte per access; every other TIS
// register, and every read, still exits) and for the CRB's register page (every write).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "devices/bus.hpp"

namespace minivmm {

// Told of each write drain() replays (ExitStats counts them, -exit-stats).
class ReplayObserver {
public:
    virtual void replayed(uint64_t address) noexcept = 0;

protected:
    ~ReplayObserver() = default;
};

class CoalescedMmioRing {
public:
    // The layout of struct kvm_coalesced_mmio_ring (linux/kvm.h): u32 first (ours), u32 last
    // (the kernel's), then entries { u64 phys_addr; u32 len; u32 pio; u8 data[8]; }.
    static constexpr size_t kHeaderSize = 8;
    static constexpr size_t kEntrySize = 24;

    // `page`: the ring page, KVM_CAP_COALESCED_MMIO pages into any vCPU's kvm_run mapping; it
    // must outlive the ring.
    explicit CoalescedMmioRing(std::span<uint8_t> page) noexcept;

    // KVM_COALESCED_MMIO_MAX: how many entries the page holds.
    uint32_t capacity() const noexcept { return capacity_; }

    // Replays every pending write through `mmio` (the caller holds the device lock) and frees its
    // slot; returns how many. A malformed entry (a length over 8 or a PIO entry, which no zone of
    // ours produces) is dropped with a debug line; an index out of range stops the replay.
    // `observer`, when given, is told of each replayed write.
    size_t drain(Bus& mmio, ReplayObserver* observer = nullptr) noexcept;

    // Whether the kernel queued writes that were not replayed yet (no lock needed to ask).
    bool pending() const noexcept;

private:
    std::span<uint8_t> page_;
    uint32_t capacity_;
};

}  // namespace minivmm
