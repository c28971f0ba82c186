// The TPM's one owner. A TpmSlot lives for the whole run: the host backend (an swtpm process or
// libtpms in-process), the Physical Presence mailbox, and what the TPM goes through at every
// power-on (a power cycle, then the PPI request the last boot left) and at exit (the backend is
// shut down; a PPI request never carried out is reported). attach() gives one machine its TPM: the
// worker thread, the TIS or CRB device on the MMIO bus with its interrupt, the register page and
// the coalesced zones, the completion under the device lock, and the vCPU's waits around TPM
// accesses (ExitWaits). A guest reset destroys the attachment with its machine; the slot stays.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "devices/bus.hpp"
#include "devices/device_state.hpp"
#include "devices/register_mirror.hpp"
#include "devices/tpm_port.hpp"
#include "devices/tpm_ppi.hpp"
#include "firmware/tcg_event_log.hpp"
#include "vmm/base/guest_memory.hpp"
#include "vmm/cli.hpp"
#include "vmm/machine_spec.hpp"
#include "vmm/host/sandbox.hpp"
#include "vmm/kvm/kvm.hpp"
#include "vmm/kvm/vcpu.hpp"
#include "vmm/tpm/tpm_backend.hpp"
#include "vmm/tpm/tpm_worker.hpp"

namespace minivmm {

// The backend -tpm-swtpm, -tpm-sock or -tpm-state asks for, started, connected or opened and
// checked against -tpm-interface; nullptr without a TPM. -tpm-swtpm runs swtpm as `runas` if
// given (minivmm is root until confine()), else as minivmm's user; `swtpm_pidfd` is set to its
// pidfd. Throws SetupError (kExitTpm) with the reason.
std::unique_ptr<TpmBackend> open_tpm_backend(const Config& config, std::optional<std::pair<uid_t, gid_t>> runas,
                                             int& swtpm_pidfd);

class TpmSlot {
public:
    // `backend` nullptr: no TPM (every call below is then a no-op); `io` is what its threads do on
    // the host (swtpm's sockets or libtpms's state files). From here on the backend is shut down
    // at exit whatever happens.
    // `swtpm_pidfd`: the pidfd of the swtpm minivmm runs (-tpm-swtpm), valid while the backend
    // lives, or -1; the sandbox lets the main thread wait for and signal only that process.
    TpmSlot(std::unique_ptr<TpmBackend> backend, sandbox::TpmIo io, int swtpm_pidfd = -1) noexcept;
    ~TpmSlot();  // shuts the backend down
    // How the machine presents the TPM (spec.tpm): with the CRB the backend learns the buffer's
    // 8 KiB limit here; with the PPI the mailbox is made. Before the first power_on().
    void configure(const MachineSpec& spec);
    // At exit: a request the guest made through the PPI but never rebooted for is dropped; say so.
    void warn_ppi_left_over() const noexcept;
    TpmSlot(const TpmSlot&) = delete;
    TpmSlot& operator=(const TpmSlot&) = delete;

    bool present() const noexcept { return backend_ != nullptr; }
    std::optional<TpmVersion> version() const noexcept {
        return backend_ ? std::optional(backend_->version()) : std::nullopt;
    }
    // What the sandbox must let the TPM's threads do (vmm/host/README.md "Sandbox").
    sandbox::TpmIo sandbox_io() const noexcept { return io_; }
    int swtpm_pidfd() const noexcept { return swtpm_pidfd_; }

    // Before machine `boot` is built: power-cycle the TPM (SeaBIOS fails if TPM2_Startup finds it
    // started; QEMU: tpm_tis_reset), then carry out the guest's PPI request, if any. A TPM that
    // does not come up on boot 1 throws SetupError: the guest would boot without measurements.
    // -bios none (`as_firmware`): then also starts it as SeaBIOS would (start_tpm_as_firmware,
    // vmm/tpm/tpm_firmware.hpp) and records its active PCR banks; a failure throws SetupError.
    void power_on(unsigned boot, bool as_firmware = false);
    // The active PCR banks the last power_on(…, true) found.
    const std::vector<tcg_log::Algorithm>& firmware_banks() const noexcept { return banks_; }
    // After machine `boot` ran: warns loudly when the firmware made no measurements or the TPM
    // failed, so a nightly run does not take such a boot for a good one.
    // With `firmware_less`, minivmm made the measurements itself, so the guest's own commands
    // need not include any extend.
    static void check_boot(unsigned boot, const TpmWorker::Stats& stats, bool firmware_less = false);

    // Snapshots (tpm_slot_state.cpp has the format): the TPM's own state (TpmBackend::save_state)
    // and the PPI mailbox, which outlive guest resets like the slot; the interface's registers
    // belong to the machine's Attachment (below), which a reset rebuilds.
    // save_state() precondition: no TPM command in flight: the vCPUs are paused and
    // Attachment::quiesce() returned true (or no machine is attached). Without a TPM it writes a
    // blob that says so. False (logged) if the backend cannot save; `out` may then hold a part.
    bool save_state(StateWriter& out) noexcept;
    // In place of power_on() for the machine being resumed, while it is built (restore_machine,
    // vmm/snapshot_restore.hpp: attach() reads only the backend's version, buffer size and
    // established flag meanwhile, each thread-safe): the backend takes
    // the saved TPM (running, no TPM_Startup), the PPI mailbox its registers; then, with `stir`,
    // TPM_StirRandom with host entropy (vmm/tpm/tpm_stir_random.hpp), so machines resumed from
    // one snapshot do not draw the same random numbers (a failed stir is logged, not fatal).
    // False (logged) for a blob this slot could not have written (no TPM / another version / a
    // PPI mismatch) or that the backend refuses; the TPM and the mailbox are then unchanged.
    bool restore_state(std::span<const uint8_t> blob, bool stir = true) noexcept;

    class Attachment;
    struct Wiring {
        const MachineSpec& spec;  // where the TPM and its PPI mailbox are (devices())
        Vm& vm;
        Bus& mmio;
        std::mutex& device_lock;  // held for every device call (devices/device.hpp)
        const GuestMemory& crb_buffer;  // the CRB's buffer RAM; empty unless CRB
        // The host page behind a read-only KVM slot at the CRB's register page, or empty (no CRB,
        // or KVM has no read-only slots): the registers are then plain MMIO.
        std::span<uint8_t> crb_register_page;
    };
    // One machine's TPM; nullptr without a TPM. Throws SetupError on set-up errors.
    std::unique_ptr<Attachment> attach(const Wiring& wiring);

private:
    void carry_out_ppi(unsigned boot);

    std::unique_ptr<TpmBackend> backend_;
    sandbox::TpmIo io_;
    int swtpm_pidfd_;
    std::vector<tcg_log::Algorithm> banks_;  // -bios none: the TPM's active PCR banks
    std::unique_ptr<TpmPpi> ppi_;  // outlives guest resets: a request made before a reboot runs at the next boot
};

class TpmSlot::Attachment final : public ExitWaits {
public:
    Attachment(TpmBackend& backend, TpmPpi* ppi, const Wiring& w);
    ~Attachment();

    // A guest read of the TPM while a command executes is a poll for its end: the vCPU waits
    // (without the device lock) up to kPollStall for the response, so the poll finds it ready
    // instead of the guest sleeping and polling again (Linux tpm_try_transmit sleeps 1 ms per
    // miss). A TPM on LPC stalls the bus the same way, with "long wait" SYNC cycles (Intel Low Pin
    // Count Interface Specification 1.1, SYNC field). The bound keeps a slow command (key
    // generation) from holding the vCPU.
    static constexpr std::chrono::microseconds kPollStall{2000};
    void before_dispatch(const kvm_run& run) noexcept override;
    // After the TIS write that started a command (tpmGo) the vCPU waits up to kStartStall, so a
    // command that is not slow has completed, and raised its interrupt, before the guest runs on.
    // Linux 6.4+ tests the TIS interrupt with one command and sleeps only 1 ms after tpmGo before
    // it gives up on the interrupt and polls for good (drivers/char/tpm/tpm_tis_core.c
    // tpm_tis_send); swtpm's round trip on a loaded host, or one scheduler time slice, is longer.
    // The guest loses nothing: it waits for that command anyway, and a slow one (key generation)
    // costs the vCPU this bound once. The command that tests the interrupt (the first since the
    // guest enabled it, TpmFrontend::interrupt_on_trial) is waited for up to kTrialStall: a TPM
    // that misses that 1 ms loses its interrupt until the next boot, and a loaded host's swtpm
    // missed 10 ms (CI, tis-irq-linux, Linux 6.12 under nested TCG).
    static constexpr std::chrono::microseconds kStartStall{10000};
    static constexpr std::chrono::microseconds kTrialStall{1000000};
    void after_dispatch(const kvm_run& run) noexcept override;

    // Guest-physical ranges where the TPM device takes only writes that may wait in KVM's
    // coalesced MMIO ring (vmm/kvm/coalesced_mmio.hpp): the TIS data FIFOs, or the CRB's register page.
    struct MmioZone {
        uint64_t base;
        uint32_t size;
    };
    std::vector<MmioZone> coalescible_zones() const;

    // Snapshots. quiesce(): waits up to `limit` (without the device lock: the completion takes it)
    // for the command in flight to finish and reach the device; true when none is with the TPM.
    // The vCPUs must be paused first, or the guest may start another.
    bool quiesce(std::chrono::milliseconds limit) noexcept;
    // The interface's registers, format: u8 1, u8 interface (0 TIS, 1 CRB), the device's blob
    // (TpmTis / TpmCrb::save_state; the CRB's buffer is guest RAM). Under the device lock, after
    // quiesce(); false if a command is outstanding (nothing written).
    bool save_state(StateWriter& out) const;
    // Under the device lock, on the attachment of the machine being resumed (after
    // TpmSlot::restore_state): all or nothing; the TIS drives its IRQ line to the restored level,
    // the CRB's register page served from memory is re-rendered.
    bool load_state(std::span<const uint8_t> blob) noexcept;

    TpmWorker& worker() noexcept { return *worker_; }
    TpmWorker::Stats stats() const noexcept { return worker_->stats(); }

private:
    bool in_tpm(const kvm_run& run) const noexcept {
        return run.exit_reason == KVM_EXIT_MMIO && run.mmio.phys_addr - base_ < size_;
    }

    bool crb_;
    std::mutex& device_lock_;
    uint64_t base_, size_;  // the TIS's 5 localities or the CRB's register page
    KvmIrqLine irq_line_;  // ISA IRQ 13; raised only by a TIS with -tpm-irq on
    // The worker runs backend commands off the vCPU threads and completes them into the device
    // under the device lock; declared after the device so it is destroyed (joined) first.
    std::unique_ptr<TpmFrontend> device_;
    std::unique_ptr<RegisterMirror> crb_registers_;  // the CRB's register page served from memory
    std::unique_ptr<TpmWorker> worker_;
};

}  // namespace minivmm
