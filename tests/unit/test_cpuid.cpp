// The vCPU CPUID (vmm/kvm/cpuid.hpp) on a synthetic KVM_GET_SUPPORTED_CPUID answer.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "vmm/kvm/cpuid.hpp"

using namespace minivmm;

namespace {
kvm_cpuid_entry2 leaf(uint32_t function, uint32_t ebx = 0, uint32_t ecx = 0, uint32_t edx = 0) {
    kvm_cpuid_entry2 e{};
    e.function = function;
    e.ebx = ebx;
    e.ecx = ecx;
    e.edx = edx;
    return e;
}
const kvm_cpuid_entry2* find(const std::vector<kvm_cpuid_entry2>& v, uint32_t function) {
    for (const auto& e : v)
        if (e.function == function) return &e;
    return nullptr;
}
}  // namespace

TEST_CASE("every vCPU gets its APIC ID, the CPU count and the hypervisor bit; other leaves pass through") {
    const std::vector<kvm_cpuid_entry2> kvm{leaf(0, 0x756E6547), leaf(1, 0xFF00'0A0B, 0x0000'0001, 0),
                                            leaf(0xB, 0, 0, 77), leaf(0x40000000, 0x4B4D564B),
                                            leaf(0x40000001, 0, 0, 0)};
    for (unsigned cpus : {1u, 4u}) {
        for (unsigned index = 0; index < cpus; ++index) {
            auto v = cpuid_for(kvm, index, cpus);
            REQUIRE(v.size() == kvm.size());
            const auto* l1 = find(v, 1);
            CHECK((l1->ebx >> 24) == index);                   // initial APIC ID
            CHECK(((l1->ebx >> 16) & 0xFF) == cpus);           // logical processor count
            CHECK((l1->ebx & 0xFFFF) == 0x0A0B);               // brand/CLFLUSH fields kept
            CHECK((l1->ecx & (1u << 31)) != 0);                // hypervisor present: Linux reads 0x40000000
            CHECK((l1->ecx & 1u) == 1u);                       // KVM's own bits kept
            CHECK(((l1->edx >> 28) & 1u) == (cpus > 1 ? 1u : 0u));  // HTT only with more than one CPU
            CHECK(find(v, 0xB)->edx == index);                 // x2APIC ID
            CHECK(find(v, 0x40000000)->ebx == 0x4B4D564B);     // "KVMK...": KVM's signature passes
        }
    }
}
