#include "vmm/tpm_slot.hpp"

#include <fmt/core.h>

#include "devices/tpm_crb.hpp"
#include "devices/tpm_crb_regs.hpp"
#include "devices/tpm_tis.hpp"
#include "vmm/base/error.hpp"
#include "vmm/base/log.hpp"
#include "vmm/base/platform.hpp"
#include "vmm/host/boot_timer.hpp"
#include "vmm/tpm/ek_ca_store.hpp"
#include "vmm/tpm/ek_manufacture.hpp"
#include "vmm/tpm/ek_manufacture12.hpp"
#include "vmm/tpm/libtpms_backend.hpp"
#include "vmm/tpm/managed_swtpm.hpp"
#include "vmm/tpm/swtpm_backend.hpp"
#include "vmm/tpm/tpm_firmware.hpp"
#include "vmm/tpm/tpm_ppi_actions.hpp"

namespace minivmm {

namespace {

// -tpm-state: the EK certificates, made on the directory's first use (and on the first start of a
// directory from a minivmm without them), before any firmware or guest runs (vmm/tpm/README.md
// "EK certificates").
void ensure_ek_certificates(LibtpmsBackend& tpm, const Config& config) {
    const double start = ms_since_start();
    std::optional<EkCa> ca;
    try {
        ca = config.tpm_ca ? load_user_ca(*config.tpm_ca) : state_dir_ca(tpm.state());
        publish_ca_certificate(tpm.state(), *ca);
    } catch (const EkCertificateError& e) {
        throw SetupError(kExitFile, e.what());
    }
    const std::string ca_file = tpm.state().file_path(TpmStateDir::kCaCertName);
    const bool tpm12 = tpm.version() == TpmVersion::v1_2;
    EkManufactureResult made;
    try {
        if (!tpm12) {
            made = manufacture_ek_certificates(tpm, *ca);
        } else {
            switch (manufacture_ek_certificate_tpm12(tpm, *ca)) {
            case Ek12Result::kept: made.kept = 1; break;
            case Ek12Result::issued: made.issued = 1; break;
            case Ek12Result::owned:
                log::warn("TPM 1.2 EK certificate: NV 0x1000f000 holds none signed by the CA in {}, and the TPM has an "
                          "owner, so its EK is not readable (TPM_ReadPubek is disabled): none made", ca_file);
                return;
            case Ek12Result::nv_writes_exhausted:
                log::warn("TPM 1.2 EK certificate: NV 0x1000f000 holds none signed by the CA in {}, and the TPM, which "
                          "has no owner, refuses more NV writes (TPM_MAXNVWRITES, 64 in its life): none made", ca_file);
                return;
            }
        }
    } catch (const std::runtime_error& e) {
        throw SetupError(kExitTpm, fmt::format("TPM state directory {}: making the EK certificate{}: {}",
                                               tpm.state_dir(), tpm12 ? "" : "s", e.what()));
    }
    const char* where = tpm12 ? "NV 0x1000f000" : "NV 0x01c00002 RSA, 0x01c0000a ECC";
    if (made.issued != 0)
        log::info("TPM EK certificates: {} made ({}), signed by the CA in {} ({:.0f} ms)", made.issued, where, ca_file,
                  ms_since_start() - start);
    else
        log::debug("TPM EK certificates: present and signed by the CA ({:.1f} ms)", ms_since_start() - start);
}

std::unique_ptr<TpmBackend> start_managed_swtpm(const Config& config, std::optional<std::pair<uid_t, gid_t>> runas,
                                                int& swtpm_pidfd) {
    ManagedSwtpm::Options options;
    options.state_dir = *config.tpm_swtpm;
    options.version = config.tpm_version;
    options.limits.start = std::chrono::seconds(config.tpm_start_timeout_s);
    if (runas) options.ids = ChildIds{runas->first, runas->second};
    std::unique_ptr<ManagedSwtpm> swtpm;
    try {
        swtpm = ManagedSwtpm::open(options);
    } catch (const std::runtime_error& e) {
        throw SetupError(kExitTpm, e.what());
    }
    log::info("TPM {} via the swtpm minivmm runs (pid {}), state in {}",
              config.tpm_version == TpmVersion::v2_0 ? "2.0" : "1.2", swtpm->pid(), *config.tpm_swtpm);
    swtpm_pidfd = swtpm->pidfd();
    return swtpm;
}

}  // namespace

std::unique_ptr<TpmBackend> open_tpm_backend(const Config& config, std::optional<std::pair<uid_t, gid_t>> runas,
                                             int& swtpm_pidfd) {
    std::unique_ptr<TpmBackend> tpm;
    swtpm_pidfd = -1;
    if (config.tpm_swtpm) {
        tpm = start_managed_swtpm(config, runas, swtpm_pidfd);
    } else if (config.tpm_socket) {
        try {
            SwtpmBackend::Limits limits;
            limits.start = std::chrono::seconds(config.tpm_start_timeout_s);
            tpm = SwtpmBackend::connect(*config.tpm_socket, limits);
        } catch (const std::runtime_error& e) {
            throw SetupError(kExitTpm, e.what());
        }
        log::info("TPM {} via swtpm at {}", tpm->version() == TpmVersion::v2_0 ? "2.0" : "1.2", *config.tpm_socket);
        if (config.tpm_interface == TpmInterface::crb && tpm->version() != TpmVersion::v2_0)
            throw SetupError(kExitTpm, fmt::format("-tpm-interface crb needs a TPM 2.0, and the swtpm at {} is a TPM 1.2 "
                                                   "(start it with --tpm2, or use -tpm-interface tis)",
                                                   *config.tpm_socket));
    } else if (config.tpm_state) {
        try {
            auto libtpms = std::make_unique<LibtpmsBackend>(*config.tpm_state, config.tpm_version);
            // -restore: the TPM takes the snapshot's state, its EK certificates with it; the
            // directory's own are seen to at its next start that powers the TPM on.
            if (!config.restore) ensure_ek_certificates(*libtpms, config);
            else if (config.tpm_ca)
                log::warn("-tpm-ca {}: not used by -restore (the TPM's EK certificates come with the snapshot)",
                          *config.tpm_ca);
            tpm = std::move(libtpms);
        } catch (const SetupError&) {
            throw;
        } catch (const std::runtime_error& e) {
            throw SetupError(kExitTpm, e.what());
        }
        log::info("TPM {} in-process (libtpms), state in {}", config.tpm_version == TpmVersion::v2_0 ? "2.0" : "1.2",
                  *config.tpm_state);
    }
    return tpm;
}

TpmSlot::TpmSlot(std::unique_ptr<TpmBackend> backend, sandbox::TpmIo io, int swtpm_pidfd) noexcept
    : backend_(std::move(backend)), io_(backend_ ? io : sandbox::TpmIo::none), swtpm_pidfd_(backend_ ? swtpm_pidfd : -1) {}

void TpmSlot::configure(const MachineSpec& spec) {
    if (!backend_) return;
    if (!spec.tpm || spec.tpm->version != backend_->version())
        throw SetupError(kExitInternal, "the machine's TPM does not match the TPM opened");
    // The CRB's buffer holds up to 8 KiB: a TPM with a larger buffer learns the limit at each power
    // cycle (QEMU tpm_crb_reset does the same), so no command or response outgrows it; a TPM
    // with a smaller one (libtpms 0.9: 4096) sets the size CMD_SIZE/RSP_SIZE read.
    if (spec.tpm_crb()) backend_->limit_buffer_size(crb::kMaxBufferSize);
    if (spec.tpm->ppi) ppi_ = std::make_unique<TpmPpi>(ppi_operations(backend_->version()));
}

TpmSlot::~TpmSlot() {
    if (backend_) backend_->shutdown();
}

void TpmSlot::warn_ppi_left_over() const noexcept {
    if (auto request = ppi_ ? ppi_->pending() : std::nullopt)
        log::warn("the guest's Physical Presence request {} ({}) was not carried out: the guest did not "
                  "reboot before minivmm exited", request->operation, ppi_operation_name(request->operation));
}

void TpmSlot::power_on(unsigned boot, bool as_firmware) {
    if (!backend_) return;
    if (!backend_->power_cycle()) {
        if (boot == 1) throw SetupError(kExitTpm, "the TPM could not be started (see above); not booting without it");
        log::error("boot {}: the TPM could not be restarted; the guest's TPM commands will fail", boot);
        return;
    }
    // The request the guest left through the Physical Presence Interface, carried out on the
    // power-cycled TPM, which is then power-cycled again for the firmware.
    const auto request = ppi_ ? ppi_->pending() : std::nullopt;
    if (request) carry_out_ppi(boot);
    if (!as_firmware) return;
    log::debug("boot {}: the TPM is power-cycled, {:.1f} ms after start", boot, ms_since_start());
    FirmwareTpmStart started = start_tpm_as_firmware(*backend_);
    if (!started.ok) throw SetupError(kExitTpm, fmt::format("boot {}: -bios none: {}", boot, started.error));
    banks_ = std::move(started.banks);
}

void TpmSlot::carry_out_ppi(unsigned boot) {
    const auto request = ppi_->pending();
    const uint32_t response = carry_out_ppi_request(*backend_, request->operation);
    ppi_->complete(response);
    const std::string what = fmt::format("boot {}: the guest's Physical Presence request {} ({})", boot,
                                         request->operation, ppi_operation_name(request->operation));
    if (response == ppi::kSuccess) log::info("{} was carried out: the TPM is cleared", what);
    else log::warn("{} failed (PPI response {:#x})", what, response);
    if (!backend_->power_cycle()) log::error("boot {}: the TPM could not be restarted after the PPI request", boot);
}

// SeaBIOS writes an event-log entry for each PCR it extends, so no extend means no event log.
void TpmSlot::check_boot(unsigned boot, const TpmWorker::Stats& s, bool firmware_less) {
    std::string trouble;
    if (s.failures != 0) trouble += fmt::format("; {} TPM command(s) got a TPM failure answer", s.failures);
    if (s.cancelled != 0)
        trouble += fmt::format("; the guest gave up on {} TPM command(s) while they executed (slow TPM? the slowest, "
                               "ordinal 0x{:x}, took {} ms)", s.cancelled, s.slowest_ordinal, s.slowest_ms);
    if (s.extends == 0 && !firmware_less)
        log::warn("boot {}: no PCR was extended: the firmware made no measurements and its TPM event log is empty "
                  "({} TPM commands{})", boot, s.commands, trouble);
    else if (!trouble.empty())
        log::warn("boot {}: measurements may be incomplete ({} PCR extends{})", boot, s.extends, trouble);
}

std::unique_ptr<TpmSlot::Attachment> TpmSlot::attach(const Wiring& wiring) {
    if (!backend_) return nullptr;
    return std::make_unique<Attachment>(*backend_, ppi_.get(), wiring);
}

TpmSlot::Attachment::Attachment(TpmBackend& backend, TpmPpi* ppi, const Wiring& w)
    : crb_(w.spec.tpm_crb()), device_lock_(w.device_lock), base_(w.spec.place(MachineSpec::Device::tpm).base),
      size_(w.spec.place(MachineSpec::Device::tpm).size), irq_line_(w.vm, platform::kTpmTisIrq) {
    std::mutex& lock = w.device_lock;
    worker_ = std::make_unique<TpmWorker>(backend, [this, &lock](std::span<const uint8_t> response) {
        std::lock_guard guard(lock);
        device_->command_completed(response);
        if (crb_registers_) crb_registers_->refresh();  // CTRL_START reads 0 from memory now
    });
    if (crb_) {
        if (backend.version() != TpmVersion::v2_0)  // open_tpm_backend and the CLI say so first
            throw SetupError(kExitTpm, "the CRB interface needs a TPM 2.0");
        const MachineSpec::Placement buffer = w.spec.place(MachineSpec::Device::tpm_crb_buffer);
        device_ = std::make_unique<TpmCrb>(*worker_, w.crb_buffer, buffer.base, static_cast<uint32_t>(buffer.size));
        if (w.crb_register_page.empty()) {
            w.mmio.insert(base_, size_, *device_);
        } else {  // reads from memory, writes exit (devices/register_mirror.hpp)
            crb_registers_ = std::make_unique<RegisterMirror>(*device_, w.crb_register_page, crb::kRegisterSpace,
                                                              crb::kChangingRegisters);
            w.mmio.insert(base_, size_, *crb_registers_);
        }
    } else {
        if (w.spec.tpm_irq())  // the TIS interrupt, as the DSDT lists it
            device_ = std::make_unique<TpmTis>(*worker_, &irq_line_, platform::kTpmTisIrq);
        else  // polled, as QEMU's DSDT describes it
            device_ = std::make_unique<TpmTis>(*worker_, nullptr);
        w.mmio.insert(base_, size_, *device_);
    }
    if (ppi) {
        const MachineSpec::Placement mailbox = w.spec.place(MachineSpec::Device::tpm_ppi);
        w.mmio.insert(mailbox.base, mailbox.size, *ppi);
    }
}

TpmSlot::Attachment::~Attachment() {
    worker_.reset();  // joined before the device it completes into goes
}

void TpmSlot::Attachment::before_dispatch(const kvm_run& run) noexcept {
    if (in_tpm(run) && !run.mmio.is_write) worker_->stall(kPollStall);
}

void TpmSlot::Attachment::after_dispatch(const kvm_run& run) noexcept {
    if (!in_tpm(run) || !run.mmio.is_write) return;
    bool trial = false;
    if (!crb_) {  // the CRB has no interrupt
        std::lock_guard guard(device_lock_);
        trial = device_->interrupt_on_trial();
    }
    worker_->stall(trial ? kTrialStall : kStartStall);
}

std::vector<TpmSlot::Attachment::MmioZone> TpmSlot::Attachment::coalescible_zones() const {
    std::vector<MmioZone> zones;
    if (crb_) {
        // Served from memory, the page's writes must exit: the page is re-rendered before the
        // guest's next read, which no longer exits to replay a queue.
        if (crb_registers_) return zones;
        // As MMIO, the whole register page: no CRB register write raises an interrupt or needs an
        // answer before the guest's next read of a register (Linux and SeaBIOS read back every
        // write: LOC_STATE, CTRL_REQ, CTRL_START), and that read's exit replays the writes first.
        // The buffer is RAM and needs no exit at all.
        zones.push_back({base_, static_cast<uint32_t>(size_)});
        return zones;
    }
    for (uint64_t loc = 0; loc < size_ / 0x1000; ++loc) {
        const uint64_t page = base_ + loc * 0x1000;
        zones.push_back({page + tis::kRegDataFifo, 4});
        zones.push_back({page + tis::kRegXDataFifo, tis::kRegXDataFifoEnd + 4 - tis::kRegXDataFifo});
    }
    return zones;
}

}  // namespace minivmm
