// The vCPU exit handler: a pure function of one kvm_run exit and the two buses. It holds no
// KVM file descriptor, so tests feed it synthetic exits of any shape. Everything in kvm_run is
// guest- or kernel-provided and is validated before use (size, count, data offset).
#pragma once

#include <linux/kvm.h>

#include <cstddef>
#include <cstdint>

#include "devices/bus.hpp"

namespace minivmm {

enum class ExitAction {
    resume,    // handled; enter the guest again
    reset,     // the guest asked for a reset (triple fault, KVM system event)
    poweroff,  // KVM system event "shutdown"
    fatal,     // KVM cannot go on (emulation failure, failed entry, malformed or unknown exit)
};

struct ExitOutcome {
    ExitAction action = ExitAction::resume;
    const char* reason = "";  // static text for fatal/reset outcomes
};

// `run_size` is the size of the kvm_run mapping (the I/O data lives inside it at data_offset).
// The caller serialises device access (the machine's device lock) around this call.
ExitOutcome handle_exit(kvm_run& run, size_t run_size, Bus& pio, Bus& mmio) noexcept;

// A readable name for a KVM exit reason, e.g. "KVM_EXIT_INTERNAL_ERROR".
const char* exit_reason_name(uint32_t reason) noexcept;

}  // namespace minivmm
