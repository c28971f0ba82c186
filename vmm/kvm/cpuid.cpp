#include "vmm/kvm/cpuid.hpp"

namespace minivmm {

std::vector<kvm_cpuid_entry2> cpuid_for(std::vector<kvm_cpuid_entry2> entries, unsigned index, unsigned cpus) {
    for (auto& e : entries) {
        if (e.function == 1) {
            e.ebx = (e.ebx & 0x0000FFFFu) | (cpus << 16) | (index << 24);  // logical count, initial APIC ID
            if (cpus > 1) e.edx |= 1u << 28;                                // HTT: more than one logical CPU
            // The hypervisor-present bit (ECX bit 31, reserved for hypervisors by Intel SDM Vol. 2A
            // CPUID): KVM does not set it, and without it Linux never reads leaf 0x40000000, so it
            // runs without kvm-clock and KVM's paravirtual features (Linux arch/x86/kernel/cpu/hypervisor.c).
            e.ecx |= 1u << 31;
        }
        if (e.function == 0xB || e.function == 0x1F) e.edx = index;  // x2APIC ID
    }
    return entries;
}

}  // namespace minivmm
