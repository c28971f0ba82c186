#include "vmm/kvm/vcpu_state.hpp"

#include <cstring>
#include <type_traits>

namespace minivmm {

namespace {

constexpr uint8_t kVersion = 1;
constexpr uint8_t kFlagSregs2 = 1, kFlagXsave = 2, kFlagXcrs = 4;

// The run states x86 KVM has (Documentation/virt/kvm/api.rst, KVM_GET_MP_STATE).
bool known_mp_state(uint32_t s) {
    return s == KVM_MP_STATE_RUNNABLE || s == KVM_MP_STATE_UNINITIALIZED || s == KVM_MP_STATE_INIT_RECEIVED ||
           s == KVM_MP_STATE_HALTED || s == KVM_MP_STATE_SIPI_RECEIVED || s == KVM_MP_STATE_AP_RESET_HOLD;
}

}  // namespace

void VcpuState::save(StateWriter& out) const {
    const bool sregs2 = std::holds_alternative<kvm_sregs2>(sregs);
    out.u8(kVersion);
    out.u8(static_cast<uint8_t>((sregs2 ? kFlagSregs2 : 0) | (xsave.empty() ? 0 : kFlagXsave) |
                                (has_xcrs ? kFlagXcrs : 0)));
    put(out, regs);
    if (sregs2)
        put(out, std::get<kvm_sregs2>(sregs));
    else
        put(out, std::get<kvm_sregs>(sregs));
    if (!xsave.empty())
        out.bytes(xsave);
    else
        put(out, fpu);
    if (has_xcrs) put(out, xcrs);
    out.u32(static_cast<uint32_t>(msrs.size()));
    for (const kvm_msr_entry& m : msrs) {
        out.u32(m.index);
        out.u64(m.data);
    }
    put(out, lapic);
    put(out, events);
    out.u32(mp_state.mp_state);
    put(out, debugregs);
    out.u32(tsc_khz);
}

bool VcpuState::load(StateReader& in) {
    VcpuState s;
    uint8_t version = 0, flags = 0;
    if (!in.u8(version) || version != kVersion || !in.u8(flags) || (flags & ~(kFlagSregs2 | kFlagXsave | kFlagXcrs)))
        return false;
    get(in, s.regs);
    if (flags & kFlagSregs2) {
        kvm_sregs2 s2{};
        if (!get(in, s2) || (s2.flags & ~uint64_t{KVM_SREGS2_FLAGS_PDPTRS_VALID})) return false;
        s.sregs = s2;
    } else {
        kvm_sregs s1{};
        get(in, s1);
        s.sregs = s1;
    }
    if (flags & kFlagXsave) {
        if (!in.bytes(s.xsave, kMaxXsaveSize) || s.xsave.size() < kMinXsaveSize || s.xsave.size() % 4 != 0) return false;
    } else {
        get(in, s.fpu);
    }
    s.has_xcrs = (flags & kFlagXcrs) != 0;
    if (s.has_xcrs && (!get(in, s.xcrs) || s.xcrs.nr_xcrs > KVM_MAX_XCRS)) return false;
    uint32_t count = 0;
    if (!in.u32(count) || count > kMaxMsrs) return false;
    s.msrs.resize(count);
    for (kvm_msr_entry& m : s.msrs) {
        uint64_t data = 0;
        in.u32(m.index);
        in.u64(data);
        m.data = data;
    }
    get(in, s.lapic);
    get(in, s.events);
    in.u32(s.mp_state.mp_state);
    get(in, s.debugregs);
    in.u32(s.tsc_khz);
    if (!in.ok() || !known_mp_state(s.mp_state.mp_state)) return false;
    *this = std::move(s);
    return true;
}

}  // namespace minivmm
