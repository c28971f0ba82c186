// The snapshot encoding of a vCPU's and a VM's KVM state (vmm/kvm/vcpu_state.hpp, vm_state.hpp):
// round trips, and every blob load() must refuse (this object then unchanged). No KVM needed.
#include <doctest/doctest.h>

#include <cstring>
#include <vector>

#include "vmm/kvm/vcpu_state.hpp"
#include "vmm/kvm/vm_state.hpp"

using namespace minivmm;

namespace {

template <typename T>
void fill(T& s, uint8_t seed) {
    auto* p = reinterpret_cast<uint8_t*>(&s);
    for (size_t i = 0; i < sizeof s; ++i) p[i] = static_cast<uint8_t>(seed + i * 7);
}

VcpuState sample_vcpu(bool modern) {
    VcpuState s;
    fill(s.regs, 1);
    if (modern) {
        kvm_sregs2 sregs2{};
        fill(sregs2, 2);
        sregs2.flags = KVM_SREGS2_FLAGS_PDPTRS_VALID;
        s.sregs = sregs2;
        s.xsave.assign(4096 + 64, 0);
        for (size_t i = 0; i < s.xsave.size(); ++i) s.xsave[i] = static_cast<uint8_t>(i * 13);
        s.has_xcrs = true;
        s.xcrs.nr_xcrs = 1;
        s.xcrs.xcrs[0].value = 7;
    } else {
        kvm_sregs sregs{};
        fill(sregs, 3);
        s.sregs = sregs;
        fill(s.fpu, 4);
    }
    for (uint32_t i = 0; i < 40; ++i) s.msrs.push_back(kvm_msr_entry{0x10 + i, 0, 0x1111'2222'3333'0000ull + i});
    fill(s.lapic, 5);
    fill(s.events, 6);
    s.mp_state.mp_state = KVM_MP_STATE_HALTED;
    fill(s.debugregs, 8);
    s.tsc_khz = 2'995'200;
    return s;
}

std::vector<uint8_t> bytes_of(const VcpuState& s) {
    StateWriter w;
    s.save(w);
    return w.data();
}

std::vector<uint8_t> bytes_of(const VmState& s) {
    StateWriter w;
    s.save(w);
    return w.data();
}

// load() of `blob` fails and leaves a loaded object as it was.
template <typename State>
void check_refused(const std::vector<uint8_t>& blob, const State& before) {
    State s = before;
    StateReader r(blob);
    CHECK_FALSE(s.load(r));
    CHECK(bytes_of(s) == bytes_of(before));
}

VmState sample_vm() {
    VmState s;
    fill(s.pic_master, 1);
    fill(s.pic_slave, 2);
    fill(s.ioapic, 3);
    s.pic_master.chip_id = KVM_IRQCHIP_PIC_MASTER;
    s.pic_slave.chip_id = KVM_IRQCHIP_PIC_SLAVE;
    s.ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
    fill(s.pit, 4);
    s.pit.flags = KVM_PIT_FLAGS_HPET_LEGACY;
    s.clock_ns = 123'456'789'012ull;
    s.clock_flags = KVM_CLOCK_TSC_STABLE | KVM_CLOCK_HOST_TSC;
    return s;
}

}  // namespace

TEST_CASE("a vCPU's state comes back field for field, with sregs2/XSAVE/XCRs and with sregs/FPU") {
    for (bool modern : {true, false}) {
        const VcpuState saved = sample_vcpu(modern);
        const auto blob = bytes_of(saved);
        VcpuState loaded;
        StateReader r(blob);
        REQUIRE(loaded.load(r));
        CHECK(r.finished());
        CHECK(bytes_of(loaded) == blob);
        CHECK(std::memcmp(&loaded.regs, &saved.regs, sizeof saved.regs) == 0);
        CHECK(loaded.sregs.index() == saved.sregs.index());
        CHECK(loaded.xsave == saved.xsave);
        CHECK(loaded.has_xcrs == modern);
        REQUIRE(loaded.msrs.size() == saved.msrs.size());
        CHECK(loaded.msrs[39].index == saved.msrs[39].index);
        CHECK(loaded.msrs[39].data == saved.msrs[39].data);
        CHECK(std::memcmp(&loaded.lapic, &saved.lapic, sizeof saved.lapic) == 0);
        CHECK(loaded.mp_state.mp_state == KVM_MP_STATE_HALTED);
        CHECK(loaded.tsc_khz == saved.tsc_khz);
    }
}

TEST_CASE("a vCPU blob cut anywhere, of another version or with unknown flags is refused") {
    const VcpuState before = sample_vcpu(false);
    for (bool modern : {true, false}) {
        const auto blob = bytes_of(sample_vcpu(modern));
        for (size_t n = 0; n < blob.size(); ++n) check_refused(std::vector<uint8_t>(blob.begin(), blob.begin() + n), before);
        auto bad = blob;
        bad[0] = 2;  // version
        check_refused(bad, before);
        bad = blob;
        bad[1] |= 8;  // flags
        check_refused(bad, before);
        bad = blob;
        bad[1] ^= 1;  // sregs2 <-> sregs: the stored length no longer matches
        check_refused(bad, before);
    }
}

TEST_CASE("a vCPU blob with an odd size or value is refused") {
    const VcpuState before = sample_vcpu(true);
    auto odd = [&](auto change) {
        VcpuState s = sample_vcpu(true);
        change(s);
        check_refused(bytes_of(s), before);
    };
    odd([](VcpuState& s) { s.xsave.resize(VcpuState::kMinXsaveSize - 4); });
    odd([](VcpuState& s) { s.xsave.resize(VcpuState::kMaxXsaveSize + 4); });
    odd([](VcpuState& s) { s.xsave.resize(4098); });  // not whole u32 words
    odd([](VcpuState& s) { s.msrs.resize(VcpuState::kMaxMsrs + 1); });
    odd([](VcpuState& s) { s.mp_state.mp_state = 7; });  // an s390 state
    odd([](VcpuState& s) { s.xcrs.nr_xcrs = KVM_MAX_XCRS + 1; });
    odd([](VcpuState& s) { std::get<kvm_sregs2>(s.sregs).flags = 2; });

    VcpuState bound = sample_vcpu(true);
    bound.msrs.resize(VcpuState::kMaxMsrs);
    bound.xsave.resize(VcpuState::kMaxXsaveSize);
    VcpuState loaded;
    const auto blob = bytes_of(bound);
    StateReader r(blob);
    CHECK(loaded.load(r));  // the bounds themselves are fine
}

TEST_CASE("a VM's irqchip, PIT and clock come back; odd blobs are refused") {
    const VmState saved = sample_vm();
    const auto blob = bytes_of(saved);
    VmState loaded;
    StateReader r(blob);
    REQUIRE(loaded.load(r));
    CHECK(r.finished());
    CHECK(bytes_of(loaded) == blob);
    CHECK(loaded.clock_ns == saved.clock_ns);
    CHECK(std::memcmp(&loaded.ioapic, &saved.ioapic, sizeof saved.ioapic) == 0);

    const VmState before;
    for (size_t n = 0; n < blob.size(); ++n) check_refused(std::vector<uint8_t>(blob.begin(), blob.begin() + n), before);
    auto bad = blob;
    bad[0] = 0;
    check_refused(bad, before);
    auto odd = [&](auto change) {
        VmState s = sample_vm();
        change(s);
        check_refused(bytes_of(s), before);
    };
    odd([](VmState& s) { std::swap(s.pic_master, s.pic_slave); });
    odd([](VmState& s) { s.ioapic.chip_id = KVM_IRQCHIP_PIC_MASTER; });
    odd([](VmState& s) { s.pit.flags = 4; });
    odd([](VmState& s) { s.clock_flags = 1; });
}
