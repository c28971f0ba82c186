// The KVM-held state of a VM as a snapshot keeps it: the in-kernel PICs and IOAPIC
// (KVM_CREATE_IRQCHIP), the i8254 PIT (KVM_CREATE_PIT2) and the KVM clock. The per-vCPU state is
// vmm/kvm/vcpu_state.hpp; capture and restore are vmm/kvm/vm_snapshot.hpp.
#pragma once

#include <linux/kvm.h>

#include "devices/device_state.hpp"

namespace minivmm {

struct VmState {
    kvm_irqchip pic_master{};  // chip_id KVM_IRQCHIP_PIC_MASTER
    kvm_irqchip pic_slave{};   // chip_id KVM_IRQCHIP_PIC_SLAVE
    kvm_irqchip ioapic{};      // chip_id KVM_IRQCHIP_IOAPIC
    kvm_pit_state2 pit{};
    // KVM_GET_CLOCK: the guest's kvmclock in ns, and KVM's flags then (KVM_CLOCK_TSC_STABLE, ...),
    // kept for diagnosis only; a restore sets the clock alone (vm_snapshot.hpp).
    uint64_t clock_ns = 0;
    uint32_t clock_flags = 0;

    // Format version 1: u8 version, the three kvm_irqchip and kvm_pit_state2 as bytes() of their
    // exact size, u64 clock_ns, u32 clock_flags.
    void save(StateWriter& out) const;
    // All or nothing: false (this object unchanged) for a blob save() could not have written
    // (a chip_id out of place, unknown PIT flags, a wrong length).
    bool load(StateReader& in);
};

}  // namespace minivmm
