// The KVM-held state of one vCPU, as a snapshot keeps it (a running machine saved to a file and
// resumed by another minivmm process): general and special registers, FPU/XSAVE, XCRs, MSRs, the
// local APIC, pending events, the run state, debug registers and the TSC frequency.
//
// The kernel structures are stored as byte strings of exactly their size (x86-64 only, so the
// kernel's own little-endian layout is the encoding); a snapshot is untrusted input, so load()
// checks every length and count and the values KVM would not check itself. KVM validates the rest
// when restore_vcpu_state() hands them back (vmm/kvm/vcpu_snapshot.hpp).
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <variant>
#include <vector>

#include "devices/device_state.hpp"

namespace minivmm {

struct VcpuState {
    // Bounds load() enforces: KVM_CAP_XSAVE2's size is at least 4096 bytes and grows only with
    // dynamically enabled features (AMX tiles: 11 KiB); KVM's MSR index list has ~100-200 entries.
    static constexpr size_t kMinXsaveSize = 4096;
    static constexpr size_t kMaxXsaveSize = 64 * 1024;
    static constexpr size_t kMaxMsrs = 1024;

    kvm_regs regs{};
    // KVM_GET_SREGS2 where KVM_CAP_SREGS2 (it carries the PAE PDPTRs, which KVM_GET_SREGS loses).
    std::variant<kvm_sregs, kvm_sregs2> sregs;
    // KVM_GET_XSAVE(2)'s bytes; empty where KVM has no XSAVE, and then `fpu` holds the state.
    std::vector<uint8_t> xsave;
    kvm_fpu fpu{};
    bool has_xcrs = false;  // KVM_CAP_XCRS
    kvm_xcrs xcrs{};
    // Every MSR of KVM_GET_MSR_INDEX_LIST that KVM_GET_MSRS read for this vCPU, in KVM's order.
    std::vector<kvm_msr_entry> msrs;
    kvm_lapic_state lapic{};
    kvm_vcpu_events events{};
    kvm_mp_state mp_state{};
    kvm_debugregs debugregs{};
    uint32_t tsc_khz = 0;  // KVM_GET_TSC_KHZ; 0: unknown (KVM_CAP_GET_TSC_KHZ missing)

    // Format version 1: u8 version, u8 flags (bit 0 sregs2, bit 1 xsave, bit 2 xcrs), then regs,
    // sregs or sregs2, xsave or fpu, [xcrs], u32 MSR count and {u32 index, u64 data} each, lapic,
    // events, u32 mp_state, debugregs, u32 tsc_khz. Structures as bytes() of their exact size.
    void save(StateWriter& out) const;
    // All or nothing: false (this object unchanged) for anything save() could not have written.
    bool load(StateReader& in);
};

}  // namespace minivmm
