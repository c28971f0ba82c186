// LibtpmsBackend's snapshots: TPMLIB_GetState / TPMLIB_SetState (libtpms man page
// TPMLIB_GetState(3): the permanent blob must be set first; a set blob hides the file of that
// type and is handed to the TPM by the next TPMLIB_MainInit; a running TPM's state is returned).
#include <cstdlib>

#include <libtpms/tpm_error.h>
#include <libtpms/tpm_library.h>
#include <libtpms/tpm_nvfilename.h>

#include "vmm/base/log.hpp"
#include "vmm/tpm/libtpms_backend.hpp"
#include "vmm/tpm/tpm_state_blob.hpp"

namespace minivmm {

namespace {

struct PartRef {
    TPMLIB_StateType type;
    TpmStatePart TpmStateBlob::*part;
    const char* name;
};
constexpr PartRef kParts[] = {
    {TPMLIB_STATE_PERMANENT, &TpmStateBlob::permanent, "permanent"},
    {TPMLIB_STATE_VOLATILE, &TpmStateBlob::volatile_state, "volatile"},
    {TPMLIB_STATE_SAVE_STATE, &TpmStateBlob::save_state, "save"},
};

// The running TPM's state. The save state exists only between TPM_SaveState and the next
// TPM_Startup (TPM 1.2) and is left empty when libtpms has none.
bool get_state(TpmVersion version, TpmStateBlob& out) {
    out.version = version;
    for (const PartRef& p : kParts) {
        unsigned char* buffer = nullptr;
        uint32_t length = 0;
        const TPM_RESULT rc = TPMLIB_GetState(p.type, &buffer, &length);
        TpmStatePart& part = out.*p.part;
        part = {};
        if (rc == TPM_SUCCESS && buffer != nullptr) part.data.assign(buffer, buffer + length);
        std::free(buffer);
        if (rc != TPM_SUCCESS && p.type != TPMLIB_STATE_SAVE_STATE) {
            log::error("libtpms: TPMLIB_GetState ({} state) failed with error 0x{:x}", p.name, rc);
            return false;
        }
    }
    return !out.permanent.data.empty();
}

// Hands the parts to the stopped TPM for its next TPMLIB_MainInit; an empty part hides the file.
TPM_RESULT set_state(const TpmStateBlob& state) {
    for (const PartRef& p : kParts) {
        const std::vector<uint8_t>& data = (state.*p.part).data;
        const TPM_RESULT rc =
            TPMLIB_SetState(p.type, data.empty() ? nullptr : data.data(), static_cast<uint32_t>(data.size()));
        if (rc != TPM_SUCCESS) {
            log::error("libtpms: TPMLIB_SetState refused the {} state ({} bytes): error 0x{:x}", p.name, data.size(), rc);
            return rc;
        }
    }
    return TPM_SUCCESS;
}

}  // namespace

bool LibtpmsBackend::save_state(std::vector<uint8_t>& out) noexcept {
    std::lock_guard lock(mutex_);
    if (!running()) {
        log::error("libtpms: cannot save the TPM state: the TPM is not running");
        return false;
    }
    try {
        TpmStateBlob state;
        if (!get_state(version_, state)) return false;
        out = encode_tpm_state_blob(state);
        return true;
    } catch (...) {
        log::error("libtpms: out of memory saving the TPM state");
        return false;
    }
}

bool LibtpmsBackend::restore_state(std::span<const uint8_t> bytes) noexcept {
    try {
        TpmStateBlob state;
        if (!parse_tpm_state_blob(bytes, state)) {
            log::error("libtpms: the TPM state to restore is malformed ({} bytes); the TPM is unchanged", bytes.size());
            return false;
        }
        if (state.version != version_ || (state.permanent.flags | state.volatile_state.flags | state.save_state.flags)) {
            log::error("libtpms: the TPM state to restore is {}; the TPM is unchanged",
                       state.version != version_ ? "another TPM version's" : "encrypted by swtpm");
            return false;
        }
        std::lock_guard lock(mutex_);
        if (shut_down_.load(std::memory_order_acquire)) return false;
        // The state to go back to if libtpms refuses this one (none if the TPM is not running:
        // then its files, which are left alone until the new state runs).
        TpmStateBlob previous;
        const bool have_previous = running() && get_state(version_, previous);
        stop_locked();
        if (set_state(state) == TPM_SUCCESS) {
            if (uint32_t rc = start_locked(); rc == TPM_SUCCESS) {
                if (persist_restored_locked(state)) return true;
                stop_locked();
            } else {
                log::error("libtpms: the TPM did not start from the restored state (TPMLIB_MainInit error 0x{:x})", rc);
            }
        }
        // libtpms dropped the refused blobs (or MainInit consumed them): the previous state goes back.
        if (have_previous && set_state(previous) != TPM_SUCCESS) log::error("libtpms: the previous TPM state was refused");
        if (uint32_t rc = start_locked(); rc != TPM_SUCCESS)
            log::error("libtpms: the previous TPM could not be started again (error 0x{:x}); the guest's TPM commands fail",
                       rc);
        else if (!have_previous)
            log::warn("libtpms: the TPM was started from {} after the refused restore", dir_.path());
        return false;
    } catch (...) {
        log::error("libtpms: out of memory restoring the TPM state");
        return false;
    }
}

// The restored TPM's files, as libtpms writes them itself: its permanent state (NV), its save
// state if any; no volatile state file (that is written at a clean shutdown only).
bool LibtpmsBackend::persist_restored_locked(const TpmStateBlob& state) {
    std::string err = dir_.write(state_file_name(version_, TPM_PERMANENT_ALL_NAME), version_, state.permanent.data);
    const std::string save_name = state_file_name(version_, TPM_SAVESTATE_NAME);
    if (err.empty())
        err = state.save_state.data.empty() ? dir_.remove(save_name)
                                            : dir_.write(save_name, version_, state.save_state.data);
    if (err.empty()) err = dir_.remove(state_file_name(version_, TPM_VOLATILESTATE_NAME));
    if (!err.empty()) log::error("{}; the restored TPM state is not used", err);
    return err.empty();
}

}  // namespace minivmm
