// Machine: pause, resume, save to a snapshot and restore from one (README "Snapshots";
// vmm/snapshot_file.hpp for the file). The machine's part of the state blob, in this order:
//   u8 format (1); bytes: the VM's in-kernel devices (vmm/kvm/vm_state.hpp); u32 vCPU count, then
//   bytes per vCPU (vmm/kvm/vcpu_state.hpp); bytes: every device (MachineDevices::save_state,
//   the TPM's interface included); bytes: the disk's -snapshot overlay.
// The TPM's own state, which outlives the machine as its TpmSlot does, comes before it
// (vmm/machine_control.cpp writes it; restore_machine in vmm/snapshot_restore.cpp restores it while the
// machine is built).
// Guest RAM is the file's RAM regions: low RAM, high RAM if any, the CRB's buffer if any, in
// guest-address order.
#include <fmt/core.h>

#include "vmm/base/log.hpp"
#include "vmm/kvm/exit_handler.hpp"
#include "vmm/kvm/vcpu.hpp"
#include "vmm/kvm/vcpu_snapshot.hpp"
#include "vmm/kvm/vm_snapshot.hpp"
#include "vmm/machine.hpp"
#include "vmm/machine_devices.hpp"
#include "vmm/snapshot_file.hpp"

namespace minivmm {

namespace {

constexpr uint8_t kMachineFormat = 1;
// How long a pause waits for the TPM's command in flight (TPM 2.0 key generation: seconds).
constexpr std::chrono::milliseconds kTpmQuiesceLimit{30000};

}  // namespace

void Machine::pause() noexcept {
    if (paused_) return;
    stop_vcpus();  // joins them; the disk's I/O thread stopped after the request in hand
    paused_ = true;
    // A vCPU that exited for port I/O or MMIO finishes it when it next enters KVM_RUN: do that now,
    // with immediate_exit, so the registers KVM gives are the ones after the instruction (api.rst,
    // "KVM_RUN": "the operation is complete only after userspace re-enters the kernel").
    io_complete_ = true;
    for (auto& vcpu : vcpus_) {
        IoCompletion done = complete_pending_io(*vcpu);
        // An access that needed another exit (a string I/O): served like any exit, then again.
        for (int i = 0; done == IoCompletion::new_exit && i < 64; ++i) {
            serve_exit(*vcpu);
            done = complete_pending_io(*vcpu);
        }
        if (done != IoCompletion::complete) {
            log::warn("vCPU {}: its last port or MMIO access could not be completed for a save", vcpu->index());
            io_complete_ = false;
        }
    }
    // Writes KVM queued in the coalesced ring reach their device before anything is saved.
    if (coalesced_) {
        std::lock_guard lock(device_lock_);
        coalesced_->drain(mmio_);
    }
    // The TPM command in flight, if any, completes into its device (a stalled swtpm: save refuses).
    tpm_quiet_ = !devices_->tpm() || devices_->tpm()->quiesce(kTpmQuiesceLimit);
}

void Machine::serve_exit(Vcpu& vcpu) noexcept {
    std::lock_guard lock(device_lock_);
    if (coalesced_) coalesced_->drain(mmio_);
    const ExitOutcome outcome = handle_exit(vcpu.run(), vcpu.run_size(), pio_, mmio_);
    // What the exit asked for is posted as the vCPU loop would (a save then refuses: ready_to_save).
    if (outcome.action == ExitAction::reset)
        events_.post(MachineEvents::Kind::reset, fmt::format("{} on vCPU {}", outcome.reason, vcpu.index()));
    else if (outcome.action == ExitAction::poweroff)
        events_.post(MachineEvents::Kind::poweroff, outcome.reason);
    else if (outcome.action == ExitAction::fatal)
        events_.post(MachineEvents::Kind::fatal, fmt::format("vCPU {}: {}", vcpu.index(), outcome.reason));
}

std::string Machine::ready_to_save() const noexcept {
    if (!paused_) return "the machine is running (pause it first)";
    if (!options_.kvm_state) return "snapshots need -control";
    if (events_.pending()) return "the guest is resetting, powering off or stopped";
    if (!tpm_quiet_) return "the TPM did not finish its command in flight";
    if (!io_complete_) return "a vCPU's port or MMIO access could not be completed";
    return {};
}

void Machine::resume() {
    if (!paused_) return;
    stop_.store(false, std::memory_order_release);
    try {
        start_vcpus();
    } catch (...) {
        stop_vcpus();  // none half-running while status says paused
        throw;
    }
    paused_ = false;
    // The disk's I/O thread stopped between two requests of a queue whose notification it had
    // taken: what the guest queued meanwhile is served now, not at its next notify.
    std::lock_guard lock(device_lock_);
    devices_->resume_io_queues();
}

std::vector<uint8_t> Machine::machine_state() const {
    StateWriter w;
    w.u8(kMachineFormat);
    {
        VmState vm;
        if (std::string error = capture_vm_state(vm_, vm); !error.empty()) throw SnapshotError(error);
        StateWriter out;
        vm.save(out);
        w.bytes(out.data());
    }
    w.u32(static_cast<uint32_t>(vcpus_.size()));
    for (const auto& vcpu : vcpus_) {
        VcpuState state;
        if (std::string error = capture_vcpu_state(*vcpu, *options_.kvm_state, state); !error.empty())
            throw SnapshotError(fmt::format("vCPU {}: {}", vcpu->index(), error));
        StateWriter out;
        state.save(out);
        w.bytes(out.data());
    }
    {
        std::lock_guard lock(device_lock_);
        StateWriter devices;
        if (!devices_->save_state(devices)) throw SnapshotError("the TPM has a command outstanding");
        w.bytes(devices.data());
    }
    {
        StateWriter disk;
        if (options_.disk) options_.disk->save_state(disk);
        w.bytes(disk.data());
    }
    return w.data();
}

std::string Machine::save(int fd, std::span<const uint8_t> preamble) noexcept {
    if (std::string why = ready_to_save(); !why.empty()) return why;
    try {
        std::vector<uint8_t> state(preamble.begin(), preamble.end());
        const std::vector<uint8_t> machine = machine_state();
        state.insert(state.end(), machine.begin(), machine.end());
        std::vector<SnapshotRamSource> ram{{0, {low_ram_.data(), low_ram_.size()}}};
        if (ram_above_4g_) ram.push_back({platform::kHighMemoryBase, {high_ram_.data(), high_ram_.size()}});
        if (tpm_crb_buffer_.size())
            ram.push_back({options_.spec.place(MachineSpec::Device::tpm_crb_buffer).base,
                           {tpm_crb_buffer_.data(), tpm_crb_buffer_.size()}});
        write_snapshot(fd, ram, state);
        return {};
    } catch (const std::exception& e) {
        return e.what();
    }
}

// -restore, after the constructor and the TPM's restore: the RAM is already the snapshot's
// (map_memory); the devices exist as at power-on. Every part is checked before the next is loaded; SnapshotError names the part.
void Machine::restore(std::span<const uint8_t> state) {
    if (TpmSlot::Attachment* tpm = devices_->tpm()) tpm->worker().refresh_established();
    StateReader r(state);
    restore_state(r);
}

void Machine::restore_state(StateReader& r) {
    uint8_t format = 0;
    r.u8(format);
    if (!r.ok() || format != kMachineFormat) throw SnapshotError("the machine's state has another format");
    std::vector<uint8_t> blob;
    auto part = [&](const char* what, size_t max) -> std::vector<uint8_t>& {
        if (!r.bytes(blob, max)) throw SnapshotError(fmt::format("the {} state is cut short", what));
        return blob;
    };
    VmState vm_state;
    {
        StateReader in(part("VM", 1 << 20));
        if (!vm_state.load(in) || !in.finished()) throw SnapshotError("the VM's state is malformed");
    }
    uint32_t cpus = 0;
    r.u32(cpus);
    if (!r.ok() || cpus != vcpus_.size())
        throw SnapshotError(fmt::format("the snapshot has {} vCPUs, this machine {}", cpus, vcpus_.size()));
    std::vector<VcpuState> vcpu_states(cpus);
    for (uint32_t i = 0; i < cpus; ++i) {
        StateReader in(part("vCPU", 4 << 20));
        if (!vcpu_states[i].load(in) || !in.finished()) throw SnapshotError(fmt::format("vCPU {}'s state is malformed", i));
    }
    std::vector<uint8_t> devices = part("devices", 64u << 20);
    {
        StateReader in(part("disk overlay", kSnapshotMaxState));
        if (options_.disk ? !options_.disk->load_state(in) || !in.finished() : !blob.empty())
            throw SnapshotError("the disk's -snapshot overlay in the snapshot does not fit this disk");
    }
    if (!r.finished()) throw SnapshotError("the machine's state has bytes after its end");
    // KVM first: every vCPU, then the in-kernel devices and the clock (vmm/kvm/vm_snapshot.hpp
    // says why in that order); then the devices, whose interrupt lines go to their restored level
    // on the restored irqchip (a line already at that level makes no new interrupt).
    for (uint32_t i = 0; i < cpus; ++i) restore_vcpu_state(*vcpus_[i], *options_.kvm_state, vcpu_states[i]);
    restore_vm_state(vm_, vm_state);
    StateReader in(devices);
    std::lock_guard lock(device_lock_);
    if (std::string error = devices_->load_state(in); !error.empty()) throw SnapshotError(error);
}

}  // namespace minivmm
