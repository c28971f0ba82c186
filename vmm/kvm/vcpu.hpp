// The vCPU thread body: KVM_RUN in a loop, each exit handed to the pure exit handler under the
// machine's device lock, until the machine posts an event or is told to stop. Fatal exits are
// described with the register state and the bytes of the faulting instruction.
#pragma once

#include <atomic>
#include <mutex>
#include <string>

#include "firmware/bios_image.hpp"
#include "devices/bus.hpp"
#include "vmm/kvm/coalesced_mmio.hpp"
#include "vmm/kvm/exit_stats.hpp"
#include "vmm/base/guest_memory.hpp"
#include "vmm/kvm/kvm.hpp"
#include "vmm/kvm/machine_events.hpp"

namespace minivmm {

// Bounded waits around an exit's dispatch, without the device lock, so the machine can let work
// the guest waits for finish first (TpmSlot::Attachment: a TPM command): before a read that polls for
// it, and after the write that started it.
class ExitWaits {
public:
    virtual void before_dispatch(const kvm_run& run) noexcept = 0;
    virtual void after_dispatch(const kvm_run& run) noexcept = 0;

protected:
    ~ExitWaits() = default;
};

struct VcpuContext {
    Vcpu& vcpu;
    Bus& pio;
    Bus& mmio;
    std::mutex& device_lock;
    MachineEvents& events;
    const GuestMemory& memory;
    const BiosImage* bios;  // nullptr: no firmware (-bios none)
    const std::atomic<bool>& stop;
    ExitWaits* waits = nullptr;              // optional
    CoalescedMmioRing* coalesced = nullptr;  // optional: replayed before every exit is served
    ExitStats* stats = nullptr;              // optional (-exit-stats): this vCPU's counts
};

// Runs until ctx.stop is set (the caller kicks the thread with SIGUSR1 and sets
// kvm_run.immediate_exit) or an event is posted. Never throws.
void run_vcpu(const VcpuContext& ctx) noexcept;

// "KVM_EXIT_INTERNAL_ERROR (KVM could not emulate an instruction) on vCPU 0 at RIP ..., bytes ..."
std::string describe_fatal_exit(const VcpuContext& ctx, const char* reason) noexcept;

// Installs the (empty) SIGUSR1 handler used to kick vCPUs out of KVM_RUN.
void install_vcpu_kick_handler();
inline constexpr int kVcpuKickSignal = 10;  // SIGUSR1

}  // namespace minivmm
