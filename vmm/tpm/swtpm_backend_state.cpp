// SwtpmBackend's snapshots: the TPM's state blobs over the control channel (QEMU
// backends/tpm/tpm_emulator.c tpm_emulator_get_state_blob(s), tpm_emulator_set_state_blob(s),
// tpm_emulator_post_load; the messages in vmm/tpm/swtpm_stateblob.hpp).
#include <fmt/core.h>

#include "vmm/base/log.hpp"
#include "vmm/tpm/swtpm_backend.hpp"
#include "vmm/tpm/swtpm_stateblob.hpp"

namespace minivmm {

using swtpm::CtrlCmd;
using swtpm::CtrlReply;
using swtpm::IoResult;

namespace {

struct PartRef {
    uint32_t type;
    TpmStatePart TpmStateBlob::*part;
};
constexpr PartRef kParts[] = {
    {swtpm::kBlobPermanent, &TpmStateBlob::permanent},
    {swtpm::kBlobVolatile, &TpmStateBlob::volatile_state},
    {swtpm::kBlobSaveState, &TpmStateBlob::save_state},
};

}  // namespace

bool SwtpmBackend::has_caps(uint32_t caps, std::string_view what) const noexcept {
    if ((caps_ & caps) == caps) return true;
    try {
        log::error("swtpm at {}: cannot {} the TPM state: swtpm lacks {} (capabilities 0x{:x})", path_, what,
                   swtpm::cap_names(caps & ~caps_), caps_);
    } catch (...) {
    }
    return false;
}

bool SwtpmBackend::save_state(std::vector<uint8_t>& out) noexcept {
    if (!has_caps(swtpm::kCapGetStateBlob, "save")) return false;
    std::lock_guard lock(ctrl_mutex_);
    if (failed()) {
        log::error("swtpm at {}: cannot save the TPM state: swtpm is not responding", path_);
        return false;
    }
    try {
        TpmStateBlob state;
        bool not_running = false;
        if (!get_state_locked(state, not_running)) {
            if (not_running) log::error("swtpm at {}: cannot save the TPM state: the TPM is not running", path_);
            return false;
        }
        // swtpm 0.8+ gave up its state-directory lock with the savestate blob (for a migration's
        // destination); this TPM goes on running, so it takes the lock back (QEMU
        // tpm_emulator_lock_storage: 300 tries of 10 ms).
        if (caps_ & swtpm::kCapLockStorage) {
            CtrlReply reply(CtrlCmd::lock_storage);
            if (run_ctrl_locked(CtrlCmd::lock_storage, swtpm::encode_ctrl_u32(CtrlCmd::lock_storage, 300), reply, true) &&
                reply.result() != swtpm::kPtmSuccess)
                log::warn("swtpm at {}: CMD_LOCK_STORAGE after saving the state failed with {}", path_,
                          swtpm::ptm_result_text(reply.result()));
        }
        out = encode_tpm_state_blob(state);
        return true;
    } catch (...) {
        log::error("swtpm at {}: out of memory saving the TPM state", path_);
        return false;
    }
}

bool SwtpmBackend::get_state_locked(TpmStateBlob& out, bool& not_running) {
    out.version = version_;
    for (const PartRef& p : kParts)
        if (!get_part_locked(p.type, out.*p.part, not_running)) return false;
    if (out.permanent.data.empty()) {
        log::error("swtpm at {}: CMD_GET_STATEBLOB returned no permanent state", path_);
        return false;
    }
    return true;
}

// One blob, in as many replies as swtpm sends it.
bool SwtpmBackend::get_part_locked(uint32_t type, TpmStatePart& out, bool& not_running) {
    const std::string name = swtpm::blob_type_name(type);
    swtpm::StateBlobAssembler blob;
    do {
        CtrlReply reply(CtrlCmd::get_stateblob);
        if (!run_ctrl_locked(CtrlCmd::get_stateblob, swtpm::encode_get_stateblob(type, blob.offset()), reply, true))
            return false;  // logged: swtpm is gone
        const uint32_t res = reply.result();
        swtpm::StateBlobHeader header;
        if (res != swtpm::kPtmSuccess && !(res & swtpm::kPtmNonFatal)) {
            // Failures from ctrlchannel_return_state carry the 12 header bytes too, sent with the result.
            swtpm::drain_pending(ctrl_.get());
            not_running = res == swtpm::kPtmBadOrdinal;
            if (!not_running)
                log::error("swtpm at {}: CMD_GET_STATEBLOB ({}) failed with {}", path_, name,
                           swtpm::ptm_result_text(res));
            return false;
        }
        swtpm::parse_stateblob_header(reply.payload(), header);  // complete: 12 bytes
        if (res != swtpm::kPtmSuccess) {
            // Non-fatal (TPM_RETRY): no such blob, as a TPM 2.0's savestate. It carries no bytes.
            if (header.length != 0 || blob.offset() != 0) {
                mark_dead(fmt::format("CMD_GET_STATEBLOB ({}) answered {} with {} bytes", name,
                                      swtpm::ptm_result_text(res), header.length));
                return false;
            }
            out = {};
            return true;
        }
        std::string why;
        if (!blob.accept(header, why)) {
            mark_dead(fmt::format("malformed CMD_GET_STATEBLOB ({}) reply: {}", name, why));
            return false;
        }
        const IoResult io = swtpm::recv_exact(ctrl_.get(), blob.body(), swtpm::Clock::now() + limits_.start);
        if (!io.ok()) {
            mark_dead(fmt::format("reading the {} state blob ({} bytes): {}", name, header.length, io.describe()));
            return false;
        }
    } while (!blob.complete());
    out.flags = blob.flags() & swtpm::kStateFlagEncrypted;
    out.data = blob.take();
    return true;
}

// CMD_SET_STATEBLOB for each non-empty part (an empty one is skipped, as QEMU does); the TPM is stopped.
bool SwtpmBackend::set_state_blobs_locked(const TpmStateBlob& state) noexcept {
    for (const PartRef& p : kParts) {
        const TpmStatePart& part = state.*p.part;
        if (part.data.empty()) continue;
        try {
            const std::vector<uint8_t> request = swtpm::encode_set_stateblob(p.type, part.flags, part.data);
            const auto deadline = swtpm::Clock::now() + limits_.start;
            CtrlReply reply(CtrlCmd::set_stateblob);
            IoResult io = swtpm::send_all(ctrl_.get(), request, deadline);
            if (io.ok()) io = await_answer(ctrl_.get(), deadline, "CMD_SET_STATEBLOB");
            if (io.ok()) io = swtpm::recv_ctrl_reply(ctrl_.get(), reply, deadline);
            if (!io.ok()) {
                mark_dead(fmt::format("CMD_SET_STATEBLOB ({}) failed: {}", swtpm::blob_type_name(p.type), io.describe()));
                return false;
            }
            if (reply.result() != swtpm::kPtmSuccess) {
                log::error("swtpm at {}: CMD_SET_STATEBLOB ({}, {} bytes) failed with {}", path_,
                           swtpm::blob_type_name(p.type), part.data.size(), swtpm::ptm_result_text(reply.result()));
                return false;
            }
        } catch (...) {
            log::error("swtpm at {}: out of memory restoring the TPM state", path_);
            return false;
        }
    }
    return true;
}

bool SwtpmBackend::restore_state(std::span<const uint8_t> bytes) noexcept {
    TpmStateBlob state;
    if (!parse_tpm_state_blob(bytes, state)) {
        log::error("swtpm at {}: the TPM state to restore is malformed ({} bytes); the TPM is unchanged", path_,
                   bytes.size());
        return false;
    }
    if (state.version != version_) {
        log::error("swtpm at {}: the TPM state to restore is a TPM {}'s, this swtpm is a TPM {}; the TPM is unchanged",
                   path_, state.version == TpmVersion::v2_0 ? "2.0" : "1.2", version_ == TpmVersion::v2_0 ? "2.0" : "1.2");
        return false;
    }
    if (!has_caps(swtpm::kCapGetStateBlob | swtpm::kCapSetStateBlob | swtpm::kCapStop | swtpm::kCapInit, "restore"))
        return false;
    std::lock_guard lock(ctrl_mutex_);
    if (failed()) {
        log::error("swtpm at {}: cannot restore the TPM state: swtpm is not responding", path_);
        return false;
    }
    try {
        // The state to go back to if swtpm refuses this one (a fresh swtpm is started first).
        TpmStateBlob previous;
        bool not_running = false;
        if (!get_state_locked(previous, not_running)) {
            if (!not_running || !start_locked(nullptr) || !get_state_locked(previous, not_running)) {
                log::error("swtpm at {}: cannot restore the TPM state: the current state could not be saved first", path_);
                return false;
            }
        }
        if (start_locked(&state)) return true;
        if (failed()) return false;
        log::error("swtpm at {}: swtpm refused the restored state or the TPM did not start from it; going back to the previous one", path_);
        if (!start_locked(&previous)) log::error("swtpm at {}: the previous TPM state could not be restored either", path_);
        return false;
    } catch (...) {
        log::error("swtpm at {}: out of memory restoring the TPM state", path_);
        return false;
    }
}

}  // namespace minivmm
