// swtpm's state-blob transfer on the control channel as pure functions (swtpm include/swtpm/
// tpm_ioctl.h ptm_getstate / ptm_setstate; src/swtpm/ctrlchannel.c ctrlchannel_return_state and
// ctrlchannel_receive_state; QEMU backends/tpm/tpm_emulator.c tpm_emulator_get_state_blob).
//
// CMD_GET_STATEBLOB request: u32 state_flags (PTM_STATE_FLAG_DECRYPTED, as QEMU asks), u32 type,
// u32 offset. Success reply: u32 res, u32 state_flags, u32 totlength, u32 length, then `length`
// blob bytes. swtpm on a socket sends everything from `offset` at once (totlength = length =
// blob size - offset); the CUSE variant sends at most PTM_STATE_BLOB_SIZE per reply and expects
// the rest to be asked for. StateBlobAssembler handles both: it asks again at the next offset
// until it has the first reply's totlength, and refuses any reply that would not progress or that
// promises more than the first one did.
// CMD_SET_STATEBLOB request: u32 state_flags, u32 type, u32 length, then the blob (on a socket
// the whole blob follows the header; swtpm reads until it has `length`); reply: u32 res.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vmm/tpm/swtpm_protocol.hpp"

namespace minivmm::swtpm {

// PTM_BLOB_TYPE_* and PTM_STATE_FLAG_* (tpm_ioctl.h); PTM_INIT_FLAG_DELETE_VOLATILE for CMD_INIT.
inline constexpr uint32_t kBlobPermanent = 1, kBlobVolatile = 2, kBlobSaveState = 3;
inline constexpr uint32_t kStateFlagDecrypted = 1, kStateFlagEncrypted = 2;
inline constexpr uint32_t kInitFlagDeleteVolatile = 1;
// The largest blob swtpm accepts in CMD_SET_STATEBLOB (ctrlchannel_receive_state).
inline constexpr uint32_t kMaxStateBlob = 512 * 1024;

// "permanent", "volatile", "savestate" (swtpm's names), or "type N".
std::string blob_type_name(uint32_t type);

CtrlRequest encode_get_stateblob(uint32_t type, uint32_t offset) noexcept;
// Header and blob, to be sent in one write.
std::vector<uint8_t> encode_set_stateblob(uint32_t type, uint32_t flags, std::span<const uint8_t> blob);

struct StateBlobHeader {
    uint32_t flags = 0;
    uint32_t totlength = 0;
    uint32_t length = 0;
};
// The 12 bytes after ptm_res of a successful CMD_GET_STATEBLOB reply.
bool parse_stateblob_header(std::span<const uint8_t> payload, StateBlobHeader& out) noexcept;

// Collects one blob from one or more CMD_GET_STATEBLOB replies.
class StateBlobAssembler {
public:
    // Where the next CMD_GET_STATEBLOB should start.
    uint32_t offset() const noexcept { return static_cast<uint32_t>(data_.size()); }
    // Checks a reply's header; false (with the reason in `why`) if it is malformed: a blob over
    // kMaxStateBlob, length > totlength, a later reply whose flags differ, that promises more
    // than the first one or that brings nothing while bytes are missing.
    bool accept(const StateBlobHeader& header, std::string& why);
    // Where the `length` bytes of the accepted reply go (read exactly that many).
    std::span<uint8_t> body() noexcept { return std::span<uint8_t>(data_).subspan(pending_at_); }
    bool complete() const noexcept { return started_ && data_.size() == total_; }
    uint32_t flags() const noexcept { return flags_; }
    std::vector<uint8_t> take() noexcept { return std::move(data_); }

private:
    bool started_ = false;
    uint32_t total_ = 0;
    uint32_t flags_ = 0;
    size_t pending_at_ = 0;
    std::vector<uint8_t> data_;
};

}  // namespace minivmm::swtpm
