// A real-KVM check of vmm/kvm/{vcpu,vm}_snapshot.hpp: a VM of minivmm's layout (in-kernel irqchip,
// PIT, GSI routing, one vCPU with minivmm's CPUID) runs a small real-mode program that programs the
// PIC, reads the TSC, and loops 10 times: IN from port 0x501 (answered here), fold it and the PIC's
// mask (read from KVM's PIC) into SI, write the counter to RAM, OUT it to port 0x500. It is run once
// to the end, then again but stopped at the 4th IN or OUT exit, saved (through the snapshot encoding),
// restored into a second VM and finished there: the OUTs, RAM and registers must match the whole
// run. A control saves without completing the pending I/O first: that must NOT match, or the check
// could not see the fault it is for. Prints what this host's KVM supports.
//
// usage: kvm_snapshot_check [/dev/kvm]     exit 0 pass, 1 fail, 77 no /dev/kvm
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "vmm/base/error.hpp"
#include "vmm/base/platform.hpp"
#include "vmm/kvm/cpuid.hpp"
#include "vmm/kvm/kvm.hpp"
#include "vmm/kvm/vcpu_snapshot.hpp"
#include "vmm/kvm/vm_snapshot.hpp"

using namespace minivmm;

namespace {

// The program (GNU as, .code16; assembled bytes with their offsets from 0x1000):
constexpr uint8_t kProgram[] = {
    0xb0, 0x11, 0xe6, 0x20,              // 00 mov al,0x11; out 0x20,al   PIC ICW1 (in KVM)
    0xb0, 0x08, 0xe6, 0x21,              // 04 ICW2 vector base 8
    0xb0, 0x04, 0xe6, 0x21,              // 08 ICW3
    0xb0, 0x01, 0xe6, 0x21,              // 0c ICW4
    0xb0, 0xa5, 0xe6, 0x21,              // 10 OCW1: mask 0xA5
    0x0f, 0x31,                          // 14 rdtsc
    0x66, 0xa3, 0x10, 0x30,              // 16 mov [0x3010],eax
    0x66, 0x89, 0x16, 0x14, 0x30,        // 1a mov [0x3014],edx
    0x31, 0xc0,                          // 1f xor ax,ax
    0xbb, 0x00, 0x20,                    // 21 mov bx,0x2000
    0xb9, 0x0a, 0x00,                    // 24 mov cx,10
    0xbe, 0x34, 0x12,                    // 27 mov si,0x1234
    0x40,                                // 2a loop: inc ax
    0x89, 0x07,                          // 2b mov [bx],ax
    0x83, 0xc3, 0x02,                    // 2d add bx,2
    0x50,                                // 30 push ax
    0xba, 0x01, 0x05, 0xed,              // 31 mov dx,0x501; in ax,dx     exits here
    0x31, 0xc6, 0xd1, 0xc6,              // 35 xor si,ax; rol si,1
    0xe4, 0x21, 0xb4, 0x00, 0x01, 0xc6,  // 39 in al,0x21 (PIC mask); mov ah,0; add si,ax
    0x58,                                // 3f pop ax
    0xba, 0x00, 0x05, 0xef,              // 40 mov dx,0x500; out dx,ax    exits here
    0x49, 0x75, 0xe3,                    // 44 dec cx; jnz loop
    0x89, 0x36, 0x00, 0x30,              // 47 mov [0x3000],si
    0x0f, 0x31,                          // 4b rdtsc
    0x66, 0xa3, 0x18, 0x30,              // 4d mov [0x3018],eax
    0x66, 0x89, 0x16, 0x1c, 0x30,        // 51 mov [0x301c],edx
    0xba, 0x02, 0x05, 0xee,              // 56 mov dx,0x502; out dx,al    done
    0xeb, 0xfe,                          // 5a jmp $
};
constexpr uint64_t kCode = 0x1000, kRamSize = 2 << 20;
constexpr uint16_t kPortOut = 0x500, kPortIn = 0x501, kPortDone = 0x502;

int failures = 0;
void check(bool ok, const std::string& what) {
    fmt::print("{} {}\n", ok ? "ok  " : "FAIL", what);
    if (!ok) ++failures;
}

// One VM as vmm/machine.cpp builds it, with 2 MiB of RAM at 0 and one vCPU.
struct Guest {
    Vm vm;
    Mapping ram = Mapping::anonymous(kRamSize);
    std::unique_ptr<Vcpu> vcpu;
    explicit Guest(const Kvm& kvm) : vm(kvm) {
        vm.set_identity_map_addr(platform::kKvmIdentityMapAddr);
        vm.set_tss_addr(platform::kKvmTssAddr);
        vm.create_irqchip();
        vm.set_pc_gsi_routing(platform::kIoApicPins);
        vm.create_pit();
        vm.set_memory(0, 0, kRamSize, ram.data(), false);
        vcpu = std::make_unique<Vcpu>(kvm, vm, 0);
        vcpu->set_cpuid(cpuid_for(kvm.supported_cpuid(), 0, 1));
        vcpu->set_lapic_virtual_wire();
    }
    void start() {
        std::memcpy(ram.data() + kCode, kProgram, sizeof kProgram);
        kvm_sregs sregs{};
        if (!vcpu->get_sregs(sregs)) throw std::runtime_error("KVM_GET_SREGS failed");
        for (kvm_segment* s : {&sregs.cs, &sregs.ds, &sregs.es, &sregs.ss}) {
            s->selector = 0;
            s->base = 0;
        }
        vcpu->set_sregs(sregs);
        kvm_regs regs{};
        regs.rip = kCode;
        regs.rflags = 2;
        regs.rsp = 0x8000;
        vcpu->set_regs(regs);
    }
    uint16_t u16(uint64_t gpa) const { return static_cast<uint16_t>(ram.data()[gpa] | ram.data()[gpa + 1] << 8); }
    uint64_t u64(uint64_t gpa) const {
        uint64_t v;
        std::memcpy(&v, ram.data() + gpa, 8);
        return v;
    }
};

// The ports' side: answers the INs from a counter, records the OUTs. Part of the snapshot too.
struct Ports {
    uint16_t ins = 0;
    std::vector<uint16_t> outs;
    bool done = false;
};

enum class StopAt { end, in, out };

// Runs until the program's last OUT, or until the n-th exit of kind `at` has been served (its
// data given to KVM, the instruction not yet completed). Returns false on anything unexpected.
bool run(Guest& g, Ports& p, StopAt at = StopAt::end, int n = 0) {
    kvm_run& run = g.vcpu->run();
    int seen = 0;
    while (!p.done) {
        if (::ioctl(g.vcpu->fd(), KVM_RUN, 0) < 0) {
            fmt::print("KVM_RUN: {}\n", std::strerror(errno));
            return false;
        }
        if (run.exit_reason != KVM_EXIT_IO || run.io.count != 1) {
            fmt::print("unexpected exit {}\n", run.exit_reason);
            return false;
        }
        uint8_t* data = reinterpret_cast<uint8_t*>(&run) + run.io.data_offset;
        const bool in = run.io.direction == KVM_EXIT_IO_IN;
        if (in && run.io.port == kPortIn && run.io.size == 2) {
            const uint16_t v = static_cast<uint16_t>(0x1111 * ++p.ins ^ 0x0F0F);
            std::memcpy(data, &v, 2);
        } else if (!in && run.io.port == kPortOut && run.io.size == 2) {
            p.outs.push_back(static_cast<uint16_t>(data[0] | data[1] << 8));
        } else if (!in && run.io.port == kPortDone) {
            p.done = true;
        } else {
            fmt::print("unexpected {} port {:#x} size {}\n", in ? "IN" : "OUT", run.io.port, run.io.size);
            return false;
        }
        if (at != StopAt::end && (at == StopAt::in) == in && ++seen == n) return true;
    }
    return true;
}

struct Outcome {
    std::vector<uint16_t> outs;
    std::vector<uint16_t> ram;  // the counters at 0x2000 and SI at 0x3000
    kvm_regs regs{};
    uint64_t tsc_start = 0, tsc_end = 0;
};

Outcome outcome(Guest& g, const Ports& p) {
    Outcome o;
    o.outs = p.outs;
    for (uint64_t a = 0x2000; a < 0x2014; a += 2) o.ram.push_back(g.u16(a));
    o.ram.push_back(g.u16(0x3000));
    g.vcpu->get_regs(o.regs);
    o.tsc_start = g.u64(0x3010);
    o.tsc_end = g.u64(0x3018);
    return o;
}

bool same(const Outcome& a, const Outcome& b) {
    return a.outs == b.outs && a.ram == b.ram && a.regs.rip == b.regs.rip && a.regs.rbx == b.regs.rbx &&
           a.regs.rcx == b.regs.rcx && a.regs.rsi == b.regs.rsi && a.regs.rsp == b.regs.rsp;
}

template <typename T>
bool bytes_equal(const T& a, const T& b) {
    return std::memcmp(&a, &b, sizeof a) == 0;
}

// What the restored vCPU and VM read back, before running, against what was saved.
void compare_readback(const Guest& g, const KvmStateSupport& support, const VcpuState& saved, const VmState& vm_saved) {
    VcpuState now;
    VmState vm_now;
    const std::string e1 = capture_vcpu_state(*g.vcpu, support, now), e2 = capture_vm_state(g.vm, vm_now);
    check(e1.empty() && e2.empty(), "the restored VM captures again " + e1 + e2);
    check(bytes_equal(now.regs, saved.regs), "regs read back equal");
    check(now.sregs.index() == saved.sregs.index() &&
              (now.sregs.index() == 0 ? bytes_equal(std::get<0>(now.sregs), std::get<0>(saved.sregs))
                                      : bytes_equal(std::get<1>(now.sregs), std::get<1>(saved.sregs))),
          "special registers read back equal");
    check(now.xsave == saved.xsave && bytes_equal(now.xcrs, saved.xcrs), "XSAVE and XCRs read back equal");
    check(bytes_equal(now.lapic, saved.lapic), "LAPIC reads back equal");
    check(bytes_equal(now.events, saved.events) && now.mp_state.mp_state == saved.mp_state.mp_state &&
              bytes_equal(now.debugregs, saved.debugregs),
          "events, MP state and debug registers read back equal");
    // Clocks run on while the vCPU waits, so they must only have gone forward: MSR_IA32_TSC (0x10),
    // and Hyper-V's VP runtime (0x40000010: the vCPU thread's CPU time) and reference counter
    // (0x40000020: the KVM clock), both in 100 ns units (arch/x86/kvm/hyperv.c; seen nested on
    // kvm-amd). Every other MSR must be what was saved.
    auto clock = [](uint32_t index) { return index == 0x10 || index == 0x40000010 || index == 0x40000020; };
    std::string msr_diffs;
    bool same_set = now.msrs.size() == saved.msrs.size();
    for (size_t i = 0; same_set && i < now.msrs.size(); ++i) {
        same_set = now.msrs[i].index == saved.msrs[i].index;
        const bool wrong = clock(now.msrs[i].index) ? now.msrs[i].data < saved.msrs[i].data : now.msrs[i].data != saved.msrs[i].data;
        if (same_set && wrong)
            msr_diffs += fmt::format(" {:#x}: {:#x} -> {:#x}", now.msrs[i].index, saved.msrs[i].data, now.msrs[i].data);
    }
    check(same_set, fmt::format("the same {} MSRs read back", saved.msrs.size()));
    auto tsc = [](const VcpuState& s) {
        for (const kvm_msr_entry& m : s.msrs)
            if (m.index == 0x10) return uint64_t{m.data};
        return uint64_t{0};
    };
    // Written from the snapshot, the guest TSC goes on from there (not from the host's or 0).
    const uint64_t second = uint64_t{saved.tsc_khz ? saved.tsc_khz : 1'000'000} * 1000;
    check(tsc(now) >= tsc(saved) && tsc(now) - tsc(saved) < second,
          fmt::format("MSR_IA32_TSC continues from the saved {:#x} (+{} cycles)", tsc(saved), tsc(now) - tsc(saved)));
    check(msr_diffs.empty(), "MSRs read back equal (clocks: not behind)" + msr_diffs);
    check(bytes_equal(vm_now.pic_master, vm_saved.pic_master) && bytes_equal(vm_now.pic_slave, vm_saved.pic_slave) &&
              bytes_equal(vm_now.ioapic, vm_saved.ioapic),
          "PICs and IOAPIC read back equal");
    bool pit = vm_now.pit.flags == vm_saved.pit.flags;
    for (int c = 0; c < 3; ++c) {
        kvm_pit_channel_state a = vm_now.pit.channels[c], b = vm_saved.pit.channels[c];
        a.count_load_time = b.count_load_time = 0;  // host time of the last load: restarts at restore
        pit = pit && bytes_equal(a, b);
    }
    check(pit, "PIT reads back equal");
    check(vm_now.clock_ns >= vm_saved.clock_ns && vm_now.clock_ns - vm_saved.clock_ns < 1'000'000'000,
          fmt::format("KVM clock continues from the saved value (+{} ns)", int64_t(vm_now.clock_ns - vm_saved.clock_ns)));
}

// Runs to the n-th `at` exit, saves (completing the I/O first unless `complete` is false),
// restores into a second VM and finishes there.
// `rip_at_exit`: where KVM left RIP at the exit, before completing it.
Outcome snapshot_run(const Kvm& kvm, const KvmStateSupport& support, StopAt at, int n, bool complete, bool verbose,
                     uint64_t* rip_at_exit = nullptr) {
    Guest first(kvm);
    first.start();
    Ports ports;
    if (!run(first, ports, at, n)) throw std::runtime_error("the first VM did not reach the snapshot point");
    if (rip_at_exit) {
        kvm_regs regs{};
        first.vcpu->get_regs(regs);
        *rip_at_exit = regs.rip;
    }
    if (complete && complete_pending_io(*first.vcpu) != IoCompletion::complete)
        throw std::runtime_error(fmt::format("complete_pending_io: {}", std::strerror(errno)));
    VcpuState vcpu_state;
    VmState vm_state;
    std::string err = capture_vcpu_state(*first.vcpu, support, vcpu_state);
    if (err.empty()) err = capture_vm_state(first.vm, vm_state);
    if (!err.empty()) throw std::runtime_error("capture: " + err);
    StateWriter out;  // through the encoding, as a snapshot file would carry it
    vcpu_state.save(out);
    vm_state.save(out);
    if (verbose)
        fmt::print("     snapshot: {} bytes, {} MSRs, XSAVE {} bytes, TSC {} kHz, clock {} ns, clock flags {:#x}\n",
                   out.data().size(), vcpu_state.msrs.size(), vcpu_state.xsave.size(), vcpu_state.tsc_khz,
                   vm_state.clock_ns, vm_state.clock_flags);
    StateReader in(out.data());
    VcpuState vcpu_loaded;
    VmState vm_loaded;
    if (!vcpu_loaded.load(in) || !vm_loaded.load(in) || !in.finished()) throw std::runtime_error("the snapshot does not load");

    Guest second(kvm);
    std::memcpy(second.ram.data(), first.ram.data(), kRamSize);
    restore_vcpu_state(*second.vcpu, support, vcpu_loaded);
    restore_vm_state(second.vm, vm_loaded);
    if (verbose) compare_readback(second, support, vcpu_loaded, vm_loaded);
    if (!run(second, ports)) throw std::runtime_error("the restored VM did not finish");
    return outcome(second, ports);
}

// A snapshot from a host whose TSC runs 10% faster: KVM_SET_TSC_KHZ where KVM can scale the TSC
// (KVM_CAP_TSC_CONTROL), else restore_vcpu_state() refuses with SetupError.
void check_tsc_rate(const Kvm& kvm, const KvmStateSupport& support) {
    Guest first(kvm);
    first.start();
    VcpuState state;
    const std::string err = capture_vcpu_state(*first.vcpu, support, state);
    if (!err.empty() || state.tsc_khz == 0) {
        fmt::print("     no TSC frequency to check ({})\n", err.empty() ? "KVM_GET_TSC_KHZ missing" : err);
        return;
    }
    state.tsc_khz += state.tsc_khz / 10;
    Guest second(kvm);
    std::string refusal;
    try {
        restore_vcpu_state(*second.vcpu, support, state);
    } catch (const SetupError& e) {
        refusal = e.what();
    }
    if (support.set_tsc_khz)
        check(refusal.empty() && ::ioctl(second.vcpu->fd(), KVM_GET_TSC_KHZ, 0) == int(state.tsc_khz),
              "a snapshot's other TSC rate is set with KVM_SET_TSC_KHZ " + refusal);
    else
        check(refusal.find("cannot scale") != std::string::npos, "a snapshot's other TSC rate is refused: " + refusal);
}

void report_support(const Kvm& kvm, const Vm& vm, const KvmStateSupport& s) {
    fmt::print("KVM: SREGS2 {}, XSAVE {} bytes{}, XCRS {}, GET_TSC_KHZ {}, TSC_CONTROL {}, ADJUST_CLOCK {:#x}, "
               "VCPU_EVENTS {}, DEBUGREGS {}, {} MSRs listed\n",
               s.sregs2, s.xsave_size, s.xsave2 ? " (XSAVE2)" : "", s.xcrs, s.get_tsc_khz, s.set_tsc_khz,
               vm.check_extension(KVM_CAP_ADJUST_CLOCK), kvm.check_extension(KVM_CAP_VCPU_EVENTS),
               kvm.check_extension(KVM_CAP_DEBUGREGS), s.msr_indices.size());
}

}  // namespace

int main(int argc, char** argv) {
    const char* path = argc > 1 ? argv[1] : "/dev/kvm";
    if (::access(path, F_OK) != 0) {
        fmt::print("SKIP: no {}\n", path);
        return 77;
    }
    try {
        const Kvm kvm = Kvm::open(path);
        Guest golden_vm(kvm);
        const KvmStateSupport support = KvmStateSupport::probe(kvm, golden_vm.vm);
        report_support(kvm, golden_vm.vm, support);
        golden_vm.start();
        Ports ports;
        check(run(golden_vm, ports) && ports.outs.size() == 10, "the program runs to its end in one VM");
        const Outcome golden = outcome(golden_vm, ports);
        fmt::print("     OUTs {:#x}..{:#x}, SI {:#x}\n", golden.outs.front(), golden.outs.back(), golden.ram.back());

        for (auto [at, name] : {std::pair{StopAt::in, "IN"}, std::pair{StopAt::out, "OUT"}}) {
            const Outcome o = snapshot_run(kvm, support, at, 4, true, at == StopAt::in);
            check(same(o, golden), fmt::format("saved at the 4th {} exit and restored in a second VM: the same OUTs, "
                                               "RAM and registers as the run in one VM", name));
            // Saved and restored, the TSC resumes where it stopped: forward, and by far less than
            // the 10^11 cycles (30 s at 3 GHz) a TSC restarted at 0 or taken from the host would jump.
            check(o.tsc_end > o.tsc_start && o.tsc_end - o.tsc_start < 100'000'000'000ull,
                  fmt::format("the guest TSC continues across the restore (+{} cycles; one VM: +{})",
                              o.tsc_end - o.tsc_start, golden.tsc_end - golden.tsc_start));
            uint64_t rip = 0;
            const Outcome control = snapshot_run(kvm, support, at, 4, false, false, &rip);
            // KVM's instruction emulator (which kvm_pvm uses for port I/O) finishes an OUT before
            // the exit, RIP past it (arch/x86/kvm/x86.c x86_emulate_instruction); VMX/SVM's fast
            // path leaves RIP on it until the completion. Only then is there something to lose.
            const uint64_t insn = kCode + (at == StopAt::in ? 0x34 : 0x43);
            if (rip != insn)
                fmt::print("     this KVM left RIP at {:#x}, past the {} at {:#x}: it completed it before the exit\n",
                           rip, name, insn);
            else
                check(!same(control, golden), fmt::format("control: saved at the {} exit without completing it, "
                                                          "the restored VM goes wrong (the check sees it)", name));
        }
        check_tsc_rate(kvm, support);
    } catch (const std::exception& e) {
        fmt::print("FAIL {}\n", e.what());
        return 1;
    }
    fmt::print("{}\n", failures ? fmt::format("{} checks failed", failures) : "all checks passed");
    return failures ? 1 : 0;
}
