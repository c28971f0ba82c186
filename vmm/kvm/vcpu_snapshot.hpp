// Taking a vCPU's KVM state out (capture) and putting it into a new vCPU of another VM (restore),
// with the order each needs; the state itself and its encoding are in vmm/kvm/vcpu_state.hpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vmm/kvm/kvm.hpp"
#include "vmm/kvm/vcpu_state.hpp"

namespace minivmm {

// What this host's KVM offers for a vCPU's state, probed once at set-up (throws SetupError).
struct KvmStateSupport {
    bool sregs2 = false;        // KVM_CAP_SREGS2: KVM_GET/SET_SREGS2
    size_t xsave_size = 0;      // 0: no KVM_CAP_XSAVE (KVM_GET_FPU); 4096: KVM_GET_XSAVE; more: KVM_CAP_XSAVE2
    bool xsave2 = false;        // KVM_GET_XSAVE2 (KVM_CAP_XSAVE2 on the VM)
    bool xcrs = false;          // KVM_CAP_XCRS
    bool get_tsc_khz = false;   // KVM_CAP_GET_TSC_KHZ
    bool set_tsc_khz = false;   // KVM_CAP_TSC_CONTROL: KVM_SET_TSC_KHZ scales the guest's TSC
    std::vector<uint32_t> msr_indices;  // KVM_GET_MSR_INDEX_LIST, in KVM's order

    static KvmStateSupport probe(const Kvm& kvm, const Vm& vm);
};

// Finishes the MMIO or port I/O a vCPU last exited for. Documentation/virt/kvm/api.rst (struct
// kvm_run, KVM_EXIT_IO/KVM_EXIT_MMIO): "the corresponding operations are complete (and guest state
// is consistent) only after userspace has re-entered the kernel with KVM_RUN"; with
// kvm_run.immediate_exit set, KVM_RUN completes them and returns EINTR without running the guest
// (the kernel's own selftests do this before saving state: vcpu_run_complete_io()). Until then an
// OUT's RIP still points at the OUT and an IN's data is not in RAX.
//
// Call it after the vCPU's thread left its KVM_RUN loop, before capture_vcpu_state(): on that
// thread, or on any thread once it has stopped. KVM serializes vCPU ioctls on the vCPU's mutex;
// api.rst asks for vCPU ioctls on the creating thread only for speed ("the first ioctl after
// switching threads could see a performance impact"), which minivmm already departs from.
//
// complete: done (also when nothing was pending). new_exit: finishing it needed another exit (a
// string I/O or an MMIO access split across pages): serve kvm_run's new exit like any other, then
// call again. failed: errno says why. kvm_run.immediate_exit is left as it was found.
enum class IoCompletion { complete, new_exit, failed };
IoCompletion complete_pending_io(const Vcpu& vcpu) noexcept;

// Reads the vCPU's state. The vCPU must be out of KVM_RUN with its I/O completed, and every other
// vCPU of the VM stopped too (api.rst: KVM_GET_VCPU_EVENTS is not safe while others run; a running
// vCPU could also still send this one an IPI). Returns "" or what failed; never throws.
std::string capture_vcpu_state(const Vcpu& vcpu, const KvmStateSupport& support, VcpuState& out) noexcept;

// Puts `state` into a vCPU created for the restore with its CPUID already set (KVM checks MSRs
// and XSAVE components against the guest CPUID), before it first runs. Throws
// SetupError(kExitKvm) naming what KVM refused: a restore is part of the machine's set-up.
// Then restore_vm_state() (vmm/kvm/vm_snapshot.hpp) once every vCPU is restored.
void restore_vcpu_state(const Vcpu& vcpu, const KvmStateSupport& support, const VcpuState& state);

}  // namespace minivmm
