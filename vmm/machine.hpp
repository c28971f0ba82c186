// One power-on of the virtual PC: the KVM VM, guest RAM and BIOS copies, every device, the
// ACPI tables and fw_cfg contents, and the vCPU threads. A guest reset destroys the Machine and
// builds a new one, so every reset returns to exactly the power-on state; only what outlives a
// power cycle (the disk, the host console) is passed in from outside.
#pragma once

#include <poll.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "devices/block_backend.hpp"
#include "firmware/bios_image.hpp"
#include "devices/bus.hpp"
#include "vmm/machine_spec.hpp"
#include "vmm/base/guest_memory.hpp"
#include "vmm/kernel_boot.hpp"
#include "vmm/pvh_kernel.hpp"
#include "vmm/kvm/kvm.hpp"
#include "vmm/kvm/vcpu_snapshot.hpp"
#include "vmm/kvm/machine_events.hpp"
#include "vmm/base/memory_map.hpp"
#include "vmm/kvm/coalesced_mmio.hpp"
#include "vmm/kvm/exit_stats.hpp"
#include "vmm/tpm/tpm_worker.hpp"
#include "vmm/snapshot_file.hpp"
#include "vmm/tpm_slot.hpp"

namespace minivmm {

struct MachineOptions {
    const MachineSpec& spec;
    const Kvm& kvm;
    const BiosImage* bios;           // nullptr: -bios none (spec.firmware false)
    TpmSlot& tpm;                    // outlives the machine; attached to each one (present() false: no TPM)
    BlockBackend* disk = nullptr;    // nullptr: no disk (a -kernel boot), no virtio-blk device
    ByteSink* serial_out = nullptr;  // nullptr: -serial none
    ByteSink* debug_out = nullptr;   // nullptr: no debug console (port 0x402 unmapped)
    const KernelBoot* kernel = nullptr;  // -kernel; nullptr: boot from the disk
    const PvhKernel* pvh = nullptr;      // -bios none: the kernel's ELF, entered through PVH; nullptr: not that way
    // -restore: the snapshot, whose RAM regions are mapped (not copied); the machine is built
    // without entering firmware or kernel and takes its state with Machine::restore(); the first
    // machine only. nullptr: a power-on.
    const SnapshotFile* restore = nullptr;
    // What this KVM offers for saving and restoring vCPU state, probed once before the sandbox (it
    // asks /dev/kvm); nullptr: no snapshots (no -control, no -restore).
    const KvmStateSupport* kvm_state = nullptr;
};

class Machine;

// What Machine::run polls besides the machine's events and the signals: the control socket
// (vmm/machine_control.hpp), which main owns across guest resets.
class RunControl {
public:
    virtual ~RunControl() = default;
    // Appends the descriptors to poll (POLLIN).
    virtual void add_poll_fds(std::vector<pollfd>& fds) = 0;
    // After poll: `fds` are the ones add_poll_fds appended, with their revents. Serves what is
    // ready; may pause, resume or save `machine`. true: the client asked to quit.
    virtual bool serve(std::span<const pollfd> fds, Machine& machine) noexcept = 0;
};

class MachineDevices;  // machine_devices.hpp

class Machine {
public:
    explicit Machine(const MachineOptions& options);  // throws SetupError
    ~Machine();
    // -restore (built with options.restore), before run(): the machine's part of the snapshot's
    // state (vmm/machine_snapshot.cpp). Throws SnapshotError.
    void restore(std::span<const uint8_t> state);
    Machine(const Machine&) = delete;
    Machine& operator=(const Machine&) = delete;

    struct Result {
        MachineEvents::Kind kind = MachineEvents::Kind::none;
        std::string message;
        int signal = 0;  // set when a signal on signal_fd ended the run
    };
    // Runs every vCPU until the machine posts an event, a signal arrives on signal_fd or `control`
    // (optional) is asked to quit.
    Result run(int signal_fd, RunControl* control = nullptr);

    // The control socket's commands (vmm/machine_snapshot.cpp), from the thread that called run().
    // pause: every vCPU out of KVM_RUN with its I/O completed, the disk's I/O thread stopped, the
    // TPM's command in flight finished. resume: the vCPUs run again.
    void pause() noexcept;
    void resume();
    bool paused() const noexcept { return paused_; }
    // "" when save() can write a snapshot now (paused, the TPM and every vCPU's access finished, no
    // reset or power-off pending), else why not.
    std::string ready_to_save() const noexcept;
    // Paused only: writes the snapshot (state = `preamble`, then the machine's state) into `fd`.
    // Returns "" or one line saying what failed.
    std::string save(int fd, std::span<const uint8_t> preamble) noexcept;

    // Host console input for COM1; takes the device lock; returns how many bytes the UART accepted.
    size_t serial_input(std::span<const uint8_t> bytes) noexcept;
    MachineEvents& events() noexcept { return events_; }
    // What the TPM did during this power-on (for the end-of-boot check); nullopt without a TPM.
    std::optional<TpmWorker::Stats> tpm_stats() const noexcept;
    // -exit-stats: every vCPU's counts merged (ExitStats::lines); empty without the option.
    // After run() returned.
    std::vector<std::string> exit_stats_lines(unsigned boot) const;
    // Every generated ACPI table by signature, for -dump-acpi.
    const std::vector<std::pair<std::string, std::vector<uint8_t>>>& acpi_dumps() const noexcept;

private:
    void map_memory();
    void map_tpm_crb_buffer();
    void create_vcpus();
    void enter_without_firmware();
    void coalesce_tpm_fifo();
    void stop_vcpus() noexcept;
    void start_vcpus();
    void map_restored_memory();
    void restore_state(StateReader& state);  // throws SnapshotError
    std::vector<uint8_t> machine_state() const;
    void serve_exit(Vcpu& vcpu) noexcept;  // an exit met while completing a paused vCPU's I/O

    const MachineOptions& options_;
    Vm vm_;
    Mapping low_ram_, high_ram_, flash_;
    uint64_t ram_below_4g_ = 0, ram_above_4g_ = 0;
    GuestMemory memory_;
    Mapping tpm_crb_buffer_;      // -tpm-interface crb only
    Mapping tpm_crb_registers_;   // the same, where KVM has read-only slots: the register page
    GuestMemory tpm_crb_memory_;  // that buffer alone, for the CRB device
    MachineEvents events_;
    mutable std::mutex device_lock_;
    Bus pio_{"port I/O"};
    Bus mmio_{"MMIO"};
    std::unique_ptr<MachineDevices> devices_;
    std::vector<std::unique_ptr<Vcpu>> vcpus_;
    std::optional<CoalescedMmioRing> coalesced_;  // in vCPU 0's mapping
    std::vector<ExitStats> exit_stats_;           // one per vCPU with -exit-stats, else empty
    std::vector<std::thread> threads_;
    std::atomic<bool> stop_{false};
    bool paused_ = false;
    bool tpm_quiet_ = true;    // the last pause found no TPM command in flight
    bool io_complete_ = true;  // the last pause completed every vCPU's port and MMIO access
};

}  // namespace minivmm
