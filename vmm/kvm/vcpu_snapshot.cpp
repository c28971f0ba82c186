#include "vmm/kvm/ioctl_retry.hpp"
#include "vmm/kvm/vcpu_snapshot.hpp"

#include <sys/ioctl.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

#include <fmt/core.h>

#include "vmm/base/error.hpp"
#include "vmm/base/log.hpp"

namespace minivmm {

namespace {

// Request numbers from the kernel's layouts: <linux/kvm.h>'s flexible arrays give these structures
// another size in C++ (see kvm.cpp), and the size is part of the number. kvm_msrs is an 8-byte
// header and entries[]; kvm_xsave is 4096 bytes and, with KVM_CAP_XSAVE2, more after them.
struct XsaveRegion {
    uint32_t region[1024];
};
constexpr unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, uint64_t);
constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, uint64_t);
constexpr unsigned long kGetXsave = _IOR(KVMIO, 0xa4, XsaveRegion);
constexpr unsigned long kSetXsave = _IOW(KVMIO, 0xa5, XsaveRegion);
constexpr unsigned long kGetXsave2 = _IOR(KVMIO, 0xcf, XsaveRegion);
// KVM refuses a KVM_GET/SET_MSRS of MAX_IO_MSRS (256) entries or more (arch/x86/kvm/x86.c msr_io).
constexpr size_t kMsrChunk = 128;
// 0x6E0 (Intel SDM Vol. 4 Table 2-2): restored after MSR_IA32_TSC and the LAPIC, see below.
constexpr uint32_t kMsrTscDeadline = 0x6E0;
// The TSC frequency a restore accepts as unchanged: 250 ppm, QEMU's and Firecracker's tolerance
// (host calibrations of one CPU model differ by that much).
constexpr int64_t kTscTolerancePpm = 250;

// KVM_GET_MSRS or KVM_SET_MSRS on up to kMsrChunk entries: how many KVM processed (it stops at
// the first it refuses), or -1 with errno.
int msr_io(int fd, unsigned long request, kvm_msr_entry* entries, size_t count) {
    std::vector<uint8_t> buf(8 + count * sizeof(kvm_msr_entry), 0);
    const auto n = static_cast<uint32_t>(count);
    std::memcpy(buf.data(), &n, sizeof n);
    std::memcpy(buf.data() + 8, entries, count * sizeof(kvm_msr_entry));
    const int done = xioctl(fd, request, buf.data());
    if (done > 0) std::memcpy(entries, buf.data() + 8, size_t(done) * sizeof(kvm_msr_entry));
    return done;
}

// Every MSR of `indices` KVM_GET_MSRS reads for this vCPU. The index list names MSRs that depend
// on the guest CPUID (PMU counters without CPUID leaf 0xA, ...); KVM_GET_MSRS stops at the first
// of those, so it is skipped and the read goes on after it (cloud-hypervisor does the same).
bool read_msrs(int fd, const std::vector<uint32_t>& indices, std::vector<kvm_msr_entry>& out) {
    out.clear();
    for (size_t at = 0; at < indices.size();) {
        const size_t count = std::min(kMsrChunk, indices.size() - at);
        std::vector<kvm_msr_entry> chunk(count);
        for (size_t i = 0; i < count; ++i) chunk[i].index = indices[at + i];
        const int done = msr_io(fd, kGetMsrs, chunk.data(), count);
        if (done < 0) return false;
        out.insert(out.end(), chunk.begin(), chunk.begin() + done);
        at += size_t(done) + (size_t(done) < count ? 1 : 0);  // skip the one KVM refused
    }
    return true;
}

void write_msrs(int fd, std::vector<kvm_msr_entry> msrs, unsigned vcpu) {
    for (size_t at = 0; at < msrs.size();) {
        const size_t count = std::min(kMsrChunk, msrs.size() - at);
        const int done = msr_io(fd, kSetMsrs, msrs.data() + at, count);
        if (done < 0)
            throw SetupError(kExitKvm, fmt::format("KVM: KVM_SET_MSRS failed on vCPU {}: {}", vcpu, std::strerror(errno)));
        if (size_t(done) < count)
            throw SetupError(kExitKvm, fmt::format("KVM: vCPU {} refused the snapshot's MSR {:#x} = {:#x}", vcpu,
                                                   msrs[at + size_t(done)].index, msrs[at + size_t(done)].data));
        at += count;
    }
}

[[noreturn]] void fail(const char* what, unsigned vcpu) {
    throw SetupError(kExitKvm, fmt::format("KVM: {} failed on vCPU {}: {}", what, vcpu, std::strerror(errno)));
}

template <typename T>
void set(int fd, unsigned long request, const T& value, const char* what, unsigned vcpu) {
    if (xioctl(fd, request, &value) < 0) fail(what, vcpu);
}

// KVM_SET_TSC_KHZ where the snapshot's TSC frequency is not this host's (beyond the tolerance):
// before MSR_IA32_TSC is written, which KVM turns into an offset at the scaled rate.
void restore_tsc_khz(const Vcpu& vcpu, const KvmStateSupport& support, uint32_t saved_khz) {
    if (saved_khz == 0) return;
    int now = support.get_tsc_khz ? xioctl(vcpu.fd(), KVM_GET_TSC_KHZ, 0) : -1;
    if (now > 0 && std::abs(int64_t{now} - int64_t{saved_khz}) * 1'000'000 <= int64_t{saved_khz} * kTscTolerancePpm)
        return;
    if (!support.set_tsc_khz) {
        if (now <= 0) {
            log::info("KVM cannot report this host's TSC frequency; the snapshot's was {} kHz", saved_khz);
            return;
        }
        throw SetupError(kExitKvm, fmt::format("the snapshot's TSC ran at {} kHz, this host's runs at {} kHz, and KVM "
                                               "cannot scale it (no KVM_CAP_TSC_CONTROL)", saved_khz, now));
    }
    if (xioctl(vcpu.fd(), KVM_SET_TSC_KHZ, static_cast<unsigned long>(saved_khz)) < 0)
        throw SetupError(kExitKvm, fmt::format("KVM: cannot run vCPU {}'s TSC at the snapshot's {} kHz (this host: {} kHz): {}",
                                               vcpu.index(), saved_khz, now, std::strerror(errno)));
}

}  // namespace

KvmStateSupport KvmStateSupport::probe(const Kvm& kvm, const Vm& vm) {
    KvmStateSupport s;
    s.sregs2 = kvm.check_extension(KVM_CAP_SREGS2) > 0;
    const int xsave2 = vm.check_extension(KVM_CAP_XSAVE2);
    s.xsave2 = xsave2 >= int{sizeof(XsaveRegion)};
    s.xsave_size = s.xsave2 ? size_t(xsave2) : kvm.check_extension(KVM_CAP_XSAVE) > 0 ? sizeof(XsaveRegion) : 0;
    s.xcrs = kvm.check_extension(KVM_CAP_XCRS) > 0;
    s.get_tsc_khz = kvm.check_extension(KVM_CAP_GET_TSC_KHZ) > 0;
    s.set_tsc_khz = kvm.check_extension(KVM_CAP_TSC_CONTROL) > 0;
    s.msr_indices = kvm.msr_index_list();
    return s;
}

IoCompletion complete_pending_io(const Vcpu& vcpu) noexcept {
    kvm_run& run = vcpu.run();
    const uint8_t was = run.immediate_exit;
    run.immediate_exit = 1;
    const int r = ::ioctl(vcpu.fd(), KVM_RUN, 0);
    const int err = errno;
    run.immediate_exit = was;
    errno = err;
    if (r == 0) return IoCompletion::new_exit;
    return err == EINTR ? IoCompletion::complete : IoCompletion::failed;
}

std::string capture_vcpu_state(const Vcpu& vcpu, const KvmStateSupport& support, VcpuState& out) noexcept {
    const int fd = vcpu.fd();
    auto failed = [&](const char* what) {
        try {
            return fmt::format("{} failed on vCPU {}: {}", what, vcpu.index(), std::strerror(errno));
        } catch (...) {
            return std::string();
        }
    };
    try {
        VcpuState s;
        // Order as in Firecracker and cloud-hypervisor (vcpu save_state/state()): KVM_GET_MP_STATE
        // first, since it runs kvm_apic_accept_events(), which may change the vCPU and LAPIC state
        // read after it; KVM_GET_VCPU_EVENTS last, after the reads that may queue events.
        if (xioctl(fd, KVM_GET_MP_STATE, &s.mp_state) < 0) return failed("KVM_GET_MP_STATE");
        if (xioctl(fd, KVM_GET_REGS, &s.regs) < 0) return failed("KVM_GET_REGS");
        if (support.sregs2) {
            kvm_sregs2 sregs2{};
            if (xioctl(fd, KVM_GET_SREGS2, &sregs2) < 0) return failed("KVM_GET_SREGS2");
            s.sregs = sregs2;
        } else {
            kvm_sregs sregs{};
            if (xioctl(fd, KVM_GET_SREGS, &sregs) < 0) return failed("KVM_GET_SREGS");
            s.sregs = sregs;
        }
        if (support.xsave_size > 0) {
            s.xsave.assign(support.xsave_size, 0);
            if (xioctl(fd, support.xsave2 ? kGetXsave2 : kGetXsave, s.xsave.data()) < 0)
                return failed(support.xsave2 ? "KVM_GET_XSAVE2" : "KVM_GET_XSAVE");
        } else if (xioctl(fd, KVM_GET_FPU, &s.fpu) < 0) {
            return failed("KVM_GET_FPU");
        }
        s.has_xcrs = support.xcrs;
        if (s.has_xcrs && xioctl(fd, KVM_GET_XCRS, &s.xcrs) < 0) return failed("KVM_GET_XCRS");
        if (xioctl(fd, KVM_GET_DEBUGREGS, &s.debugregs) < 0) return failed("KVM_GET_DEBUGREGS");
        if (xioctl(fd, KVM_GET_LAPIC, &s.lapic) < 0) return failed("KVM_GET_LAPIC");
        if (support.get_tsc_khz) {
            const int khz = xioctl(fd, KVM_GET_TSC_KHZ, 0);
            if (khz < 0) return failed("KVM_GET_TSC_KHZ");
            s.tsc_khz = static_cast<uint32_t>(khz);
        }
        if (!read_msrs(fd, support.msr_indices, s.msrs)) return failed("KVM_GET_MSRS");
        if (s.msrs.size() > VcpuState::kMaxMsrs) return fmt::format("vCPU {} has {} MSRs", vcpu.index(), s.msrs.size());
        if (xioctl(fd, KVM_GET_VCPU_EVENTS, &s.events) < 0) return failed("KVM_GET_VCPU_EVENTS");
        out = std::move(s);
        return {};
    } catch (const std::bad_alloc&) {
        return "out of memory saving a vCPU";
    } catch (const std::exception& e) {
        return e.what();
    }
}

void restore_vcpu_state(const Vcpu& vcpu, const KvmStateSupport& support, const VcpuState& state) {
    const int fd = vcpu.fd();
    const unsigned i = vcpu.index();
    // The snapshot may need what this host's KVM lacks: refuse rather than drop state.
    const bool sregs2 = std::holds_alternative<kvm_sregs2>(state.sregs);
    if (sregs2 && !support.sregs2)
        throw SetupError(kExitKvm, "the snapshot holds KVM_GET_SREGS2 state and this host's KVM has no KVM_CAP_SREGS2");
    if (state.xsave.size() > support.xsave_size)
        throw SetupError(kExitKvm, fmt::format("the snapshot's XSAVE area is {} bytes, this host's KVM holds {}",
                                               state.xsave.size(), support.xsave_size));
    if (state.has_xcrs && !support.xcrs) throw SetupError(kExitKvm, "the snapshot holds XCRs and this host's KVM has no KVM_CAP_XCRS");

    // 1. The TSC rate before MSR_IA32_TSC is written (cloud-hypervisor set_state does the same).
    restore_tsc_khz(vcpu, support, state.tsc_khz);
    // 2. Registers. KVM_SET_REGS drops a pending exception (arch/x86/kvm/x86.c __set_regs; Firecracker
    //    restore_state says the same), so the events come back last, at 8.
    set(fd, KVM_SET_REGS, state.regs, "KVM_SET_REGS", i);
    // 3. Special registers: CR0/CR4/EFER, which MSRs and the XSAVE checks depend on, and the APIC
    //    base (xAPIC or x2APIC mode), which decides how KVM_SET_LAPIC reads the APIC ID (4).
    if (sregs2)
        set(fd, KVM_SET_SREGS2, std::get<kvm_sregs2>(state.sregs), "KVM_SET_SREGS2", i);
    else
        set(fd, KVM_SET_SREGS, std::get<kvm_sregs>(state.sregs), "KVM_SET_SREGS", i);
    if (!state.xsave.empty()) {
        // KVM_SET_XSAVE reads this host's whole XSAVE size; components past the snapshot's stay 0.
        std::vector<uint8_t> xsave(std::max(support.xsave_size, state.xsave.size()), 0);
        std::copy(state.xsave.begin(), state.xsave.end(), xsave.begin());
        if (xioctl(fd, kSetXsave, xsave.data()) < 0) fail("KVM_SET_XSAVE", i);
    } else {
        set(fd, KVM_SET_FPU, state.fpu, "KVM_SET_FPU", i);
    }
    if (state.has_xcrs) set(fd, KVM_SET_XCRS, state.xcrs, "KVM_SET_XCRS", i);
    set(fd, KVM_SET_DEBUGREGS, state.debugregs, "KVM_SET_DEBUGREGS", i);
    // 4. The LAPIC after the APIC base (3) and before MSR_IA32_TSC_DEADLINE (6): KVM ignores a
    //    deadline written while the LVT timer is not in TSC-deadline mode
    //    (arch/x86/kvm/lapic.c kvm_set_lapic_tscdeadline_msr; Firecracker restore_state).
    set(fd, KVM_SET_LAPIC, state.lapic, "KVM_SET_LAPIC", i);
    // 5. The MSRs in KVM's order (MSR_IA32_TSC before MSR_IA32_TSC_ADJUST, as KVM lists them), then
    // 6. MSR_IA32_TSC_DEADLINE: KVM arms the deadline timer against the guest TSC, so that must be
    //    restored first (Firecracker DEFERRED_MSRS).
    std::vector<kvm_msr_entry> msrs, deferred;
    for (const kvm_msr_entry& m : state.msrs) (m.index == kMsrTscDeadline ? deferred : msrs).push_back(m);
    write_msrs(fd, std::move(msrs), i);
    write_msrs(fd, std::move(deferred), i);
    // 7. The run state after the special registers: KVM_SET_SREGS makes a BSP found at the reset
    //    vector runnable (arch/x86/kvm/x86.c __set_sregs_common), and QEMU also puts it after them.
    set(fd, KVM_SET_MP_STATE, state.mp_state, "KVM_SET_MP_STATE", i);
    // 8. Pending exception, interrupt, NMI, SMI and interrupt shadow last: the calls above reset
    //    parts of them (2, 3), and KVM_SET_MP_STATE refuses INIT_RECEIVED while an INIT is latched.
    set(fd, KVM_SET_VCPU_EVENTS, state.events, "KVM_SET_VCPU_EVENTS", i);
}

}  // namespace minivmm
