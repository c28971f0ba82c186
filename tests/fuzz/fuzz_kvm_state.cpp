// libFuzzer target for the snapshot encoding of KVM-held state (vmm/kvm/vcpu_state.hpp,
// vmm/kvm/vm_state.hpp): a snapshot is a file a user may be handed. The first byte picks a vCPU's
// state (even) or a VM's (odd); the rest is the blob given to load().
// Checks: a refused blob leaves the object exactly as it was; an accepted blob that was read to its
// end saves back byte for byte (one spelling per state), and every size in it is within the bounds
// restore relies on (the XSAVE area, the MSR count, the XCR count).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "devices/device_state.hpp"
#include "vmm/kvm/vcpu_state.hpp"
#include "vmm/kvm/vm_state.hpp"

using namespace minivmm;

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

template <typename State>
std::vector<uint8_t> saved(const State& s) {
    StateWriter w;
    s.save(w);
    return w.data();
}

template <typename State>
void fuzz(std::span<const uint8_t> blob, const State& initial) {
    State s = initial;
    const std::vector<uint8_t> before = saved(s);
    StateReader in(blob);
    if (!s.load(in)) {
        check(saved(s) == before);
        return;
    }
    if (in.finished()) check(saved(s) == std::vector<uint8_t>(blob.begin(), blob.end()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const std::span<const uint8_t> blob(data + 1, size - 1);
    if (data[0] % 2 == 0) {
        VcpuState initial;
        initial.msrs.push_back(kvm_msr_entry{0x10, 0, 42});
        fuzz(blob, initial);
        VcpuState s;
        StateReader in(blob);
        if (s.load(in)) {
            check(s.msrs.size() <= VcpuState::kMaxMsrs && s.xsave.size() <= VcpuState::kMaxXsaveSize);
            check(s.xsave.empty() || (s.xsave.size() >= VcpuState::kMinXsaveSize && s.xsave.size() % 4 == 0));
            check(!s.has_xcrs || s.xcrs.nr_xcrs <= KVM_MAX_XCRS);
        }
    } else {
        VmState initial;
        initial.clock_ns = 7;
        fuzz(blob, initial);
    }
    return 0;
}
