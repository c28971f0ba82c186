// Taking a VM's in-kernel device state and clock out of KVM and putting them into another VM
// built the same way (irqchip, PIT; vmm/machine.cpp); the state is vmm/kvm/vm_state.hpp.
#pragma once

#include <string>

#include "vmm/kvm/kvm.hpp"
#include "vmm/kvm/vm_state.hpp"

namespace minivmm {

// Reads the PICs, the IOAPIC, the PIT and the KVM clock. Every vCPU must be stopped (out of
// KVM_RUN, its I/O completed: vmm/kvm/vcpu_snapshot.hpp), or the irqchip moves under the reads.
// Returns "" or what failed; never throws.
std::string capture_vm_state(const Vm& vm, VmState& out) noexcept;

// Puts `state` into a VM that has its irqchip and PIT, after restore_vcpu_state() of every vCPU and
// before any vCPU runs; throws SetupError(kExitKvm) naming what KVM refused.
//
// After the vCPUs: KVM_SET_IRQCHIP of the IOAPIC re-delivers the pins its saved IRR holds
// (virt/kvm/ioapic.c kvm_set_ioapic -> kvm_ioapic_inject_all), which must land in the LAPICs'
// restored state, not be overwritten by it. The clock last, nearest the guest's resumption:
// KVM_SET_CLOCK without KVM_CLOCK_REALTIME, so the guest's kvmclock continues from the saved
// value as its TSC does from the saved MSR_IA32_TSC (the guest sees no time pass while it was
// saved; its wall clock lags by the snapshot's age until NTP or the user sets it, as with
// Firecracker). KVM_CLOCK_REALTIME would instead advance it by the host's elapsed realtime while
// the TSC stays put, and the two clocks would disagree.
void restore_vm_state(const Vm& vm, const VmState& state);

}  // namespace minivmm
