#include "vmm/kvm/exit_handler.hpp"

#include <span>

#include "vmm/base/log.hpp"

namespace minivmm {

namespace {

ExitOutcome handle_io(kvm_run& run, size_t run_size, Bus& pio) noexcept {
    // A copy: the data area may overlap the exit fields themselves (a malformed data_offset), and
    // input data written there must not change the size, count or port of the loop below.
    const auto io = run.io;
    if (io.size != 1 && io.size != 2 && io.size != 4) return {ExitAction::fatal, "port I/O exit with an invalid size"};
    if (io.count == 0) return {ExitAction::resume, ""};
    // String I/O (rep ins/outs) arrives as `count` consecutive elements: split it into single
    // accesses so devices only ever see 1, 2 or 4 bytes.
    uint64_t bytes = uint64_t{io.size} * io.count;
    if (io.data_offset > run_size || bytes > run_size - io.data_offset)
        return {ExitAction::fatal, "port I/O exit data lies outside the kvm_run area"};
    auto* data = reinterpret_cast<uint8_t*>(&run) + io.data_offset;
    for (uint32_t i = 0; i < io.count; ++i) {
        std::span<uint8_t> element(data + size_t{i} * io.size, io.size);
        if (io.direction == KVM_EXIT_IO_OUT)
            pio.write(io.port, element);
        else
            pio.read(io.port, element);
    }
    return {ExitAction::resume, ""};
}

ExitOutcome handle_mmio(kvm_run& run, Bus& mmio) noexcept {
    auto& m = run.mmio;  // data[] is inside the struct: len and is_write are read before any write
    if (m.len == 0 || m.len > sizeof(m.data)) return {ExitAction::fatal, "MMIO exit with an invalid length"};
    std::span<uint8_t> data(m.data, m.len);
    if (m.is_write)
        mmio.write(m.phys_addr, data);
    else
        mmio.read(m.phys_addr, data);
    return {ExitAction::resume, ""};
}

}  // namespace

ExitOutcome handle_exit(kvm_run& run, size_t run_size, Bus& pio, Bus& mmio) noexcept {
    switch (run.exit_reason) {
    case KVM_EXIT_IO:
        return handle_io(run, run_size, pio);
    case KVM_EXIT_MMIO:
        return handle_mmio(run, mmio);
    case KVM_EXIT_HLT:   // only without an in-kernel LAPIC; harmless to resume
    case KVM_EXIT_INTR:  // a signal kicked the vCPU; the runner checks why
        return {ExitAction::resume, ""};
    case KVM_EXIT_SHUTDOWN:
        // Triple fault: on a PC this resets the processor (SeaBIOS's last-resort reboot).
        return {ExitAction::reset, "triple fault"};
    case KVM_EXIT_SYSTEM_EVENT:
        switch (run.system_event.type) {
        case KVM_SYSTEM_EVENT_RESET:
            return {ExitAction::reset, "KVM system event reset"};
        case KVM_SYSTEM_EVENT_SHUTDOWN:
            return {ExitAction::poweroff, "KVM system event shutdown"};
        default:
            return {ExitAction::fatal, "KVM system event (crash or unknown)"};
        }
    case KVM_EXIT_INTERNAL_ERROR:
        switch (run.internal.suberror) {
        case KVM_INTERNAL_ERROR_EMULATION:
            return {ExitAction::fatal, "KVM could not emulate an instruction"};
        case KVM_INTERNAL_ERROR_SIMUL_EX:
            return {ExitAction::fatal, "KVM internal error: exception while delivering an exception"};
        case KVM_INTERNAL_ERROR_DELIVERY_EV:
            return {ExitAction::fatal, "KVM internal error: exception during event delivery"};
        default:
            return {ExitAction::fatal, "KVM internal error"};
        }
    case KVM_EXIT_FAIL_ENTRY:
        return {ExitAction::fatal, "KVM could not enter the guest (invalid vCPU state)"};
    default:
        return {ExitAction::fatal, "unexpected KVM exit"};
    }
}

const char* exit_reason_name(uint32_t reason) noexcept {
    switch (reason) {
    case KVM_EXIT_UNKNOWN: return "KVM_EXIT_UNKNOWN";
    case KVM_EXIT_EXCEPTION: return "KVM_EXIT_EXCEPTION";
    case KVM_EXIT_IO: return "KVM_EXIT_IO";
    case KVM_EXIT_HYPERCALL: return "KVM_EXIT_HYPERCALL";
    case KVM_EXIT_DEBUG: return "KVM_EXIT_DEBUG";
    case KVM_EXIT_HLT: return "KVM_EXIT_HLT";
    case KVM_EXIT_MMIO: return "KVM_EXIT_MMIO";
    case KVM_EXIT_IRQ_WINDOW_OPEN: return "KVM_EXIT_IRQ_WINDOW_OPEN";
    case KVM_EXIT_SHUTDOWN: return "KVM_EXIT_SHUTDOWN";
    case KVM_EXIT_FAIL_ENTRY: return "KVM_EXIT_FAIL_ENTRY";
    case KVM_EXIT_INTR: return "KVM_EXIT_INTR";
    case KVM_EXIT_INTERNAL_ERROR: return "KVM_EXIT_INTERNAL_ERROR";
    case KVM_EXIT_SYSTEM_EVENT: return "KVM_EXIT_SYSTEM_EVENT";
    default: return "KVM_EXIT_(other)";
    }
}

}  // namespace minivmm
