// -exit-stats: what made the guest leave KVM_RUN during one power-on. Every exit is counted by
// KVM exit reason; port I/O and MMIO exits also by the device that served them (the bus range)
// and direction; writes the kernel queued in the coalesced MMIO ring count separately (they cost
// no exit to user space). Accesses to the TPM's window (TIS or CRB) are also counted by register
// offset, both the exits and the coalesced writes. One object per vCPU, touched only by its thread (no atomics); the
// machine merges them after the vCPU threads ended. Counting allocates nothing.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <linux/kvm.h>

#include "devices/bus.hpp"
#include "vmm/kvm/coalesced_mmio.hpp"

namespace minivmm {

class ExitStats final : public ReplayObserver {
public:
    // Before the exit is dispatched (the device lock held: the buses may change at run time).
    void count(const kvm_run& run, const Bus& pio, const Bus& mmio) noexcept;
    // A write the coalesced MMIO ring replayed (CoalescedMmioRing::drain).
    void replayed(uint64_t address) noexcept override;
    void merge(const ExitStats& other) noexcept;

    uint64_t total() const noexcept;
    uint64_t of_reason(uint32_t reason) const noexcept { return reason < reasons_.size() ? reasons_[reason] : other_reason_; }
    // Exits served by `device` (nullptr: accesses no device covered) on the port I/O or MMIO bus.
    uint64_t of_device(const Device* device, bool mmio, bool write) const noexcept;
    uint64_t coalesced() const noexcept { return coalesced_; }

    // "exit-stats boot=1 total=N coalesced=N", then one line per reason
    // ("exit-stats boot=1 reason=KVM_EXIT_HLT count=N") and per device and direction
    // ("exit-stats boot=1 reason=KVM_EXIT_MMIO device=tpm-tis dir=read count=N"), most first,
    // then the TPM window by register offset, in offset order
    // ("exit-stats boot=1 tpm-register=0x4c dir=read count=N"; dir is read, write or coalesced).
    // The devices must still exist.
    std::vector<std::string> lines(unsigned boot) const;

private:
    struct Slot {
        const Device* device = nullptr;  // nullptr: unmapped
        bool mmio = false;
        bool write = false;
        uint64_t count = 0;
    };
    void add(const Device* device, bool mmio, bool write, uint64_t n) noexcept;
    enum class Access : uint8_t { read, write, coalesced };
    struct RegisterSlot {
        uint32_t offset = 0;  // from platform::kTpmTisBase
        Access access = Access::read;
        uint64_t count = 0;
    };
    void add_register(uint32_t offset, Access access, uint64_t n) noexcept;

    std::array<uint64_t, 64> reasons_{};  // KVM_EXIT_* are below 64
    uint64_t other_reason_ = 0;
    std::array<Slot, 64> slots_{};  // far more than the machine's devices x 2 buses x 2 directions
    size_t used_ = 0;
    uint64_t overflow_ = 0;  // accesses beyond the slots (not expected)
    uint64_t coalesced_ = 0;
    std::array<RegisterSlot, 96> registers_{};  // Linux's TIS and CRB paths touch about 20
    size_t registers_used_ = 0;
};

}  // namespace minivmm
