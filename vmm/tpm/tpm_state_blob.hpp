// The TPM's whole state as one snapshot blob (TpmBackend::save_state / restore_state): the three
// state blobs libtpms and swtpm know (swtpm include/swtpm/tpm_ioctl.h PTM_BLOB_TYPE_PERMANENT,
// _VOLATILE, _SAVESTATE; libtpms TPMLIB_STATE_PERMANENT, _VOLATILE, _SAVE_STATE), each with the
// flags swtpm reported for it (PTM_STATE_FLAG_ENCRYPTED when swtpm keeps its state encrypted).
// The parts are libtpms's own blobs, so one backend's blob restores into the other (same TPM
// version) unless a part is encrypted.
//
// Encoding (devices/device_state.hpp's StateWriter: little-endian):
//   4 bytes "MVTS", u8 format version (1), u8 TPM version (1 = 1.2, 2 = 2.0),
//   then for permanent, volatile, save state: u32 flags, u32 length, length bytes.
// A snapshot is a file a user may be handed: parse_tpm_state_blob() checks everything and never
// reads outside the input; each part is at most kMaxTpmStatePart bytes (swtpm refuses a larger
// CMD_SET_STATEBLOB: ctrlchannel.c "Unreasonable large state").
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "devices/tpm_types.hpp"

namespace minivmm {

inline constexpr size_t kMaxTpmStatePart = 512 * 1024;
inline constexpr uint8_t kTpmStateBlobFormat = 1;
// PTM_STATE_FLAG_ENCRYPTED (tpm_ioctl.h): the part is encrypted with swtpm's key.
inline constexpr uint32_t kTpmStatePartEncrypted = 2;

struct TpmStatePart {
    uint32_t flags = 0;
    std::vector<uint8_t> data;
    bool operator==(const TpmStatePart&) const = default;
};

struct TpmStateBlob {
    TpmVersion version = TpmVersion::v2_0;
    TpmStatePart permanent;
    TpmStatePart volatile_state;
    TpmStatePart save_state;
    bool operator==(const TpmStateBlob&) const = default;
};

std::vector<uint8_t> encode_tpm_state_blob(const TpmStateBlob& blob);
// False for anything encode_tpm_state_blob() could not have written: wrong magic or format
// version, unknown TPM version, an empty permanent part (every running TPM has one), a part over
// kMaxTpmStatePart, flags other than kTpmStatePartEncrypted, a short or over-long input.
bool parse_tpm_state_blob(std::span<const uint8_t> bytes, TpmStateBlob& out);

}  // namespace minivmm
