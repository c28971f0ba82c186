// TpmSlot and TpmSlot::Attachment snapshots. The slot's blob, format version 1:
//   u8 1, bool TPM present; if present: u8 TPM version (1 = 1.2, 2 = 2.0), bytes the backend's
//   state (vmm/tpm/tpm_state_blob.hpp), bool PPI mailbox present, [bytes its state].
// The attachment's blob: u8 1, u8 interface (0 TIS, 1 CRB), bytes the device's state.
#include <chrono>

#include "devices/tpm_crb.hpp"
#include "devices/tpm_tis.hpp"
#include "vmm/base/log.hpp"
#include "vmm/tpm/tpm_state_blob.hpp"
#include "vmm/tpm/tpm_stir_random.hpp"
#include "vmm/tpm_slot.hpp"

namespace minivmm {

namespace {

constexpr uint8_t kFormat = 1;
// Three parts of at most kMaxTpmStatePart each, and their framing.
constexpr size_t kMaxBackendBlob = 3 * kMaxTpmStatePart + 64;
constexpr size_t kMaxDeviceBlob = 64 * 1024;

uint8_t version_code(TpmVersion v) { return v == TpmVersion::v2_0 ? 2 : 1; }

}  // namespace

bool TpmSlot::save_state(StateWriter& out) noexcept {
    try {
        out.u8(kFormat);
        out.boolean(backend_ != nullptr);
        if (!backend_) return true;
        std::vector<uint8_t> tpm;
        if (!backend_->save_state(tpm)) {
            log::error("the TPM's state could not be saved (see above, or this TPM backend cannot save it)");
            return false;
        }
        out.u8(version_code(backend_->version()));
        out.bytes(tpm);
        out.boolean(ppi_ != nullptr);
        if (ppi_) out.bytes(saved_state(*ppi_));
        return true;
    } catch (...) {
        log::error("out of memory saving the TPM's state");
        return false;
    }
}

bool TpmSlot::restore_state(std::span<const uint8_t> blob, bool stir) noexcept {
    try {
        StateReader in(blob);
        uint8_t format = 0, version = 0;
        bool present = false, has_ppi = false;
        std::vector<uint8_t> tpm, ppi;
        in.u8(format);
        in.boolean(present);
        if (present) {
            in.u8(version);
            in.bytes(tpm, kMaxBackendBlob);
            in.boolean(has_ppi);
            if (has_ppi) in.bytes(ppi, kMaxDeviceBlob);
        }
        if (!in.finished() || format != kFormat) {
            log::error("the snapshot's TPM state is malformed");
            return false;
        }
        if (present != (backend_ != nullptr) || (backend_ && version != version_code(backend_->version())) ||
            has_ppi != (ppi_ != nullptr)) {
            log::error("the snapshot's TPM ({}) does not match this machine's ({})",
                       !present ? "none" : version == 2 ? "2.0" : "1.2",
                       !backend_ ? "none" : backend_->version() == TpmVersion::v2_0 ? "2.0" : "1.2");
            return false;
        }
        if (!backend_) return true;
        const std::vector<uint8_t> ppi_before = ppi_ ? saved_state(*ppi_) : std::vector<uint8_t>{};
        if (ppi_ && !ppi_->load_state(ppi)) {
            log::error("the snapshot's TPM Physical Presence mailbox is malformed");
            return false;
        }
        if (!backend_->restore_state(tpm)) {
            if (ppi_) ppi_->load_state(ppi_before);
            return false;
        }
        if (stir) stir_random_from_host(*backend_);
        return true;
    } catch (...) {
        log::error("out of memory restoring the TPM's state");
        return false;
    }
}

bool TpmSlot::Attachment::quiesce(std::chrono::milliseconds limit) noexcept {
    return worker_->wait_idle(std::chrono::duration_cast<std::chrono::microseconds>(limit));
}

bool TpmSlot::Attachment::save_state(StateWriter& out) const {
    auto* device = dynamic_cast<const SavesState*>(device_.get());
    const bool outstanding = crb_ ? static_cast<const TpmCrb&>(*device_).command_outstanding()
                                  : static_cast<const TpmTis&>(*device_).command_outstanding();
    if (device == nullptr || outstanding) {
        log::error("the TPM interface's state cannot be saved while a TPM command executes");
        return false;
    }
    out.u8(kFormat);
    out.u8(crb_ ? 1 : 0);
    out.bytes(saved_state(*device));
    return true;
}

bool TpmSlot::Attachment::load_state(std::span<const uint8_t> blob) noexcept {
    try {
        StateReader in(blob);
        uint8_t format = 0, interface = 0;
        std::vector<uint8_t> state;
        in.u8(format);
        in.u8(interface);
        in.bytes(state, kMaxDeviceBlob);
        auto* device = dynamic_cast<SavesState*>(device_.get());
        if (!in.finished() || format != kFormat || interface != (crb_ ? 1 : 0) || device == nullptr ||
            !device->load_state(state)) {
            log::error("the snapshot's TPM interface state is malformed or for another interface");
            return false;
        }
        if (crb_registers_) crb_registers_->refresh();
        return true;
    } catch (...) {
        log::error("out of memory restoring the TPM interface's state");
        return false;
    }
}

}  // namespace minivmm
