// Clone safety for snapshots: two machines resumed from one snapshot hold the same TPM state,
// random number generator included, so without more entropy they would draw the same "random"
// nonces and keys (measured: tests/unit/test_tpm_stir_random.cpp). Stirring host entropy into
// each restored TPM makes them diverge:
//   TPM 2.0 TPM2_StirRandom (Part 3 §16.2): TPM_ST_NO_SESSIONS, TPM_CC_StirRandom 0x146,
//     TPM2B_SENSITIVE_DATA inData (u16 size, at most MAX_SYM_DATA = 128 bytes).
//   TPM 1.2 TPM_StirRandom (Part 3 §13.2): TPM_TAG_RQU_COMMAND, TPM_ORD_StirRandom 0x47,
//     UINT32 dataSize (< 256), the bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "devices/tpm_types.hpp"
#include "vmm/tpm/tpm_backend.hpp"

namespace minivmm {

inline constexpr uint32_t kTpm2CcStirRandom = 0x146;
inline constexpr uint32_t kTpm12OrdStirRandom = 0x47;  // (0x46 is TPM_ORD_GetRandom)
// What one command carries (TPM 2.0 MAX_SYM_DATA; TPM 1.2 allows up to 255).
inline constexpr size_t kMaxStirBytes = 128;
// What stir_random_from_host() draws from getrandom().
inline constexpr size_t kHostStirBytes = 32;

// The command with the first kMaxStirBytes bytes of `entropy`.
std::vector<uint8_t> make_stir_random(TpmVersion version, std::span<const uint8_t> entropy);

// Sends it at locality 0 (precondition: no command in flight) and checks the response: a
// well-formed header of the version's tag with return code 0. False with one log line otherwise.
bool stir_random(TpmBackend& tpm, std::span<const uint8_t> entropy) noexcept;

// stir_random() with kHostStirBytes from getrandom() (false if the host has none to give).
bool stir_random_from_host(TpmBackend& tpm) noexcept;

}  // namespace minivmm
