// The CPUID a vCPU gets: what KVM supports (KVM_GET_SUPPORTED_CPUID), with the per-vCPU and
// hypervisor fields KVM leaves to the VMM.
#pragma once

#include <linux/kvm.h>

#include <vector>

namespace minivmm {

// CPUID for vCPU `index` of `cpus`: KVM's supported leaves (its 0x4000000x signature and kvmclock
// leaves included, which lets SeaBIOS skip the PIT-based TSC calibration), with this vCPU's APIC
// ID, the logical CPU count, and the hypervisor-present bit.
std::vector<kvm_cpuid_entry2> cpuid_for(std::vector<kvm_cpuid_entry2> entries, unsigned index, unsigned cpus);

}  // namespace minivmm
