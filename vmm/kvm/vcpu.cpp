#include "vmm/kvm/vcpu.hpp"

#include <signal.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

#include <fmt/core.h>

#include "vmm/kvm/exit_handler.hpp"
#include "vmm/base/log.hpp"

namespace minivmm {

namespace {

// Reads guest-physical bytes from RAM or from the BIOS flash alias (where SeaBIOS starts).
bool read_guest(const VcpuContext& ctx, uint64_t gpa, std::span<uint8_t> out) {
    if (ctx.memory.read(gpa, out)) return true;
    if (!ctx.bios) return false;
    const auto& rom = ctx.bios->bytes();
    uint64_t base = ctx.bios->flash_base();
    if (gpa >= base && gpa - base <= rom.size() && out.size() <= rom.size() - (gpa - base)) {
        std::memcpy(out.data(), rom.data() + (gpa - base), out.size());
        return true;
    }
    return false;
}

}  // namespace

void install_vcpu_kick_handler() {
    struct sigaction sa {};
    sa.sa_handler = [](int) {};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return with EINTR
    if (::sigaction(kVcpuKickSignal, &sa, nullptr) != 0) throw std::runtime_error("cannot install the SIGUSR1 handler");
}

std::string describe_fatal_exit(const VcpuContext& ctx, const char* reason) noexcept {
    try {
        const kvm_run& run = ctx.vcpu.run();
        std::string text = fmt::format("{} ({}) on vCPU {}", exit_reason_name(run.exit_reason), reason, ctx.vcpu.index());
        if (run.exit_reason == KVM_EXIT_INTERNAL_ERROR)
            text += fmt::format(", suberror {}", run.internal.suberror);
        if (run.exit_reason == KVM_EXIT_FAIL_ENTRY)
            text += fmt::format(", hardware entry failure reason {:#x}", run.fail_entry.hardware_entry_failure_reason);
        kvm_regs regs{};
        kvm_sregs sregs{};
        if (!ctx.vcpu.get_regs(regs) || !ctx.vcpu.get_sregs(sregs)) return text + " (registers unavailable)";
        const char* mode = !(sregs.cr0 & 1) ? "real mode" : (sregs.efer & (1u << 10)) ? "long mode" : "protected mode";
        text += fmt::format(": RIP {:#x} (CS {:#06x} base {:#x}, {}, CPL {}), RSP {:#x}, RFLAGS {:#x}, CR0 {:#x}",
                            regs.rip, sregs.cs.selector, sregs.cs.base, mode, sregs.cs.dpl, regs.rsp, regs.rflags, sregs.cr0);
        uint64_t linear = sregs.cs.base + regs.rip;
        if (!(sregs.efer & (1u << 10))) linear &= 0xFFFF'FFFF;
        uint64_t phys = linear;
        if ((sregs.cr0 & 0x8000'0000u) && !ctx.vcpu.translate(linear, phys)) return text + ", instruction not mapped";
        uint8_t bytes[15];
        if (!read_guest(ctx, phys, bytes)) return text + fmt::format(", instruction at {:#x} outside guest memory", phys);
        text += fmt::format(", instruction bytes at {:#x}:", phys);
        for (uint8_t b : bytes) text += fmt::format(" {:02x}", b);
        return text;
    } catch (...) {
        return "fatal KVM exit (no details: out of memory)";
    }
}

void run_vcpu(const VcpuContext& ctx) noexcept {
    kvm_run& run = ctx.vcpu.run();
    while (!ctx.stop.load(std::memory_order_acquire) && !ctx.events.pending()) {
        int r = ::ioctl(ctx.vcpu.fd(), KVM_RUN, 0);
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                run.immediate_exit = 0;
                continue;  // kicked: the loop condition says whether to stop
            }
            ctx.events.post(MachineEvents::Kind::fatal,
                            fmt::format("KVM_RUN failed on vCPU {}: {}", ctx.vcpu.index(), std::strerror(errno)));
            return;
        }
        // Queued writes first, then the wait: a CRB's CTRL_START waits in the ring until the
        // poll that follows it, and must reach the TPM before the wait for its answer.
        if (ctx.waits && ctx.coalesced && ctx.coalesced->pending()) {
            std::lock_guard lock(ctx.device_lock);
            ctx.coalesced->drain(ctx.mmio, ctx.stats);
        }
        if (ctx.waits) ctx.waits->before_dispatch(run);
        ExitOutcome outcome;
        {
            std::lock_guard lock(ctx.device_lock);
            if (ctx.coalesced) ctx.coalesced->drain(ctx.mmio, ctx.stats);
            if (ctx.stats) ctx.stats->count(run, ctx.pio, ctx.mmio);
            outcome = handle_exit(run, ctx.vcpu.run_size(), ctx.pio, ctx.mmio);
        }
        if (ctx.waits && outcome.action == ExitAction::resume) ctx.waits->after_dispatch(run);
        switch (outcome.action) {
        case ExitAction::resume:
            break;
        case ExitAction::reset:
            ctx.events.post(MachineEvents::Kind::reset, fmt::format("{} on vCPU {}", outcome.reason, ctx.vcpu.index()));
            return;
        case ExitAction::poweroff:
            ctx.events.post(MachineEvents::Kind::poweroff, outcome.reason);
            return;
        case ExitAction::fatal:
            ctx.events.post(MachineEvents::Kind::fatal, describe_fatal_exit(ctx, outcome.reason));
            return;
        }
    }
}

}  // namespace minivmm
