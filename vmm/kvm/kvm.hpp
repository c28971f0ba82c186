// Thin move-only RAII wrappers over the KVM ioctl API (linux/kvm.h). Every failure during
// set-up throws SetupError(kExitKvm) naming the ioctl; run-time calls report errors by value.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "devices/device.hpp"
#include "vmm/base/memory_map.hpp"

namespace minivmm {

class Vcpu;

// /dev/kvm itself.
class Kvm {
public:
    static Kvm open(const char* path = "/dev/kvm");
    int fd() const noexcept { return fd_.get(); }
    int check_extension(long cap) const noexcept;
    size_t vcpu_mmap_size() const;
    // KVM_GET_SUPPORTED_CPUID: every leaf the host can give a guest, KVM's 0x4000000x leaves included.
    std::vector<kvm_cpuid_entry2> supported_cpuid() const;
    // KVM_GET_MSR_INDEX_LIST: the MSRs a VMM saves and restores for a vCPU, in KVM's order.
    std::vector<uint32_t> msr_index_list() const;

private:
    explicit Kvm(UniqueFd fd) : fd_(std::move(fd)) {}
    UniqueFd fd_;
};

class Vm {
public:
    explicit Vm(const Kvm& kvm);
    int fd() const noexcept { return fd_.get(); }
    // KVM_CHECK_EXTENSION on the VM: some answers are per VM (KVM_CAP_XSAVE2's buffer size).
    int check_extension(long cap) const noexcept;

    void set_tss_addr(uint64_t addr);
    void set_identity_map_addr(uint64_t addr);
    void create_irqchip();
    // The in-kernel i8254 with KVM_PIT_SPEAKER_DUMMY, so port 0x61 (PIT channel 2 gate) never
    // exits to user space; SeaBIOS's TSC calibration polls it.
    void create_pit();
    // GSI routing as on a PC: GSI 0-15 to the PIC (except 2, the cascade) and to IOAPIC pins with
    // GSI 0 wired to pin 2 (the MADT's IRQ0 override); GSI 16-23 to IOAPIC pins only.
    void set_pc_gsi_routing(unsigned ioapic_pins);
    void set_memory(uint32_t slot, uint64_t gpa, uint64_t size, void* host, bool read_only);
    // KVM_REGISTER_COALESCED_MMIO: writes into [gpa, gpa + size) go to the coalesced ring.
    // Returns 0 or the errno.
    int register_coalesced_mmio(uint64_t gpa, uint32_t size) noexcept;

    // KVM_IOEVENTFD: a guest MMIO write of `length` bytes at `gpa` (0: of any length, where
    // KVM_CAP_IOEVENTFD_ANY_LENGTH) signals the eventfd `fd` instead of exiting; assign false
    // removes that registration. Returns 0 or the errno.
    int ioeventfd(uint64_t gpa, uint32_t length, int fd, bool assign) noexcept;

    // Run-time interrupt injection (thread-safe in the kernel).
    bool irq_line(uint32_t gsi, bool level) noexcept;
    bool signal_msi(uint64_t address, uint32_t data) noexcept;

private:
    UniqueFd fd_;
};

// One virtual CPU and its shared kvm_run page.
class Vcpu {
public:
    Vcpu(const Kvm& kvm, const Vm& vm, unsigned index);
    int fd() const noexcept { return fd_.get(); }
    unsigned index() const noexcept { return index_; }
    kvm_run& run() const noexcept { return *reinterpret_cast<kvm_run*>(run_map_.data()); }
    size_t run_size() const noexcept { return run_map_.size(); }

    void set_cpuid(const std::vector<kvm_cpuid_entry2>& entries);
    bool get_regs(kvm_regs& regs) const noexcept;
    bool get_sregs(kvm_sregs& sregs) const noexcept;
    // The start state a firmware-less boot gives a vCPU (vmm/direct_boot.hpp); throw SetupError.
    void set_regs(const kvm_regs& regs);
    void set_sregs(const kvm_sregs& sregs);
    // How many of `msrs` KVM took (in order), or -errno.
    int set_msrs(std::span<const std::pair<uint32_t, uint64_t>> msrs) noexcept;
    // The local APIC's LINT0 as ExtINT and LINT1 as NMI, the virtual-wire set-up firmware leaves for
    // the OS (Intel MultiProcessor Specification 1.4 §3.6.2.2; SeaBIOS src/fw/smp.c does the same).
    void set_lapic_virtual_wire();
    // Guest linear address -> guest physical, through the vCPU's current paging mode.
    bool translate(uint64_t linear, uint64_t& physical) const noexcept;

private:
    UniqueFd fd_;
    Mapping run_map_;
    unsigned index_;
};

// IrqLine and MsiSink implementations on top of a Vm.
class KvmIrqLine final : public IrqLine {
public:
    KvmIrqLine(Vm& vm, uint32_t gsi) : vm_(vm), gsi_(gsi) {}
    void set(bool level) noexcept override;

private:
    Vm& vm_;
    uint32_t gsi_;
};

class KvmMsiSink final : public MsiSink {
public:
    explicit KvmMsiSink(Vm& vm) : vm_(vm) {}
    void signal(uint64_t address, uint32_t data) noexcept override;

private:
    Vm& vm_;
};

}  // namespace minivmm
