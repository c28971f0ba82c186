// The EK certificate of the in-process TPM 1.2: what swtpm_setup does for a TPM 1.2
// (src/swtpm_setup/swtpm.c, the swtpm12 class) without taking ownership or locking the NV:
//   TPM_Startup(ST_CLEAR); TPM_ReadPubek, and TPM_CreateEndorsementKeyPair (RSA 2048, TPM 1.2
//   Part 3 §14.1) when it answers TPM_NO_ENDORSEMENT; the certificate (vmm/tpm/ek_certificate.hpp,
//   the TCG Credential Profiles for TPM 1.2 profile) in NV index TPM_NV_INDEX_EKCert 0x1000F000,
//   defined with TPM_NV_DefineSpace and written with TPM_NV_WriteValue without authorization,
//   which a TPM allows while TPM_PERMANENT_FLAGS.nvLocked is FALSE (Part 3 §20.1, §20.2: it is
//   until someone defines TPM_NV_INDEX_LOCK; swtpm_setup only does with --lock-nvram).
// Permission TPM_NV_PER_OWNERREAD | TPM_NV_PER_OWNERWRITE, as swtpm's: while nvLocked is FALSE
// anybody reads it; once it is TRUE, the owner.
// The index holds the certificate behind the 7-byte header of the TCG PC Client Specific
// Implementation Specification for Conventional BIOS 1.21 §7.4.5 (as swtpm_cert --add-header):
//   TCG_PCCLIENT_STORED_CERT { tag 0x1001, certType 0 (TCG_FULL_CERT), certSize u16 }
//   TCG_FULL_CERT { tag 0x1002, cert[certSize - 2] (DER) }
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <vector>

#include "vmm/tpm/ek_certificate.hpp"
#include "vmm/tpm/tpm_backend.hpp"

namespace minivmm {

namespace ek12 {

inline constexpr uint32_t kCertIndex = 0x1000F000;              // TPM_NV_INDEX_EKCert (with the D bit)
inline constexpr uint32_t kCertPermission = 0x00020000 | 0x02;  // TPM_NV_PER_OWNERREAD | OWNERWRITE
inline constexpr uint32_t kNoEndorsement = 0x23;                // TPM_NO_ENDORSEMENT
inline constexpr uint32_t kDisabledCmd = 0x08;                  // TPM_DISABLED_CMD: readPubek is FALSE

// The certificate with its TCG_PCCLIENT_STORED_CERT / TCG_FULL_CERT header.
std::vector<uint8_t> wrap_stored_cert(std::span<const uint8_t> der);
// What the header holds as the certificate, or nothing when the header is not exactly that (other
// tags or type, a certSize that does not match the bytes after it, padding, too short).
std::vector<uint8_t> unwrap_stored_cert(std::span<const uint8_t> stored);

// The EK's public key in the response of TPM_ReadPubek or TPM_CreateEndorsementKeyPair
// (header, TPM_PUBKEY, TPM_DIGEST checksum; TPM 1.2 Part 2 §10.5, Part 3 §14.1, §14.2): an RSA
// 2048 key, whose checksum must be SHA-1(TPM_PUBKEY || antiReplay). Throws std::runtime_error.
EkPublic parse_pubek(std::span<const uint8_t> response, std::span<const uint8_t, 20> anti_replay, const char* what);

// TPM_ReadPubek: the EK, or nullopt with `refused` set when the TPM has none (TPM_NO_ENDORSEMENT)
// or has an owner (TPM_DISABLED_CMD: TPM_TakeOwnership clears readPubek, Part 3 §14.2). Throws
// std::runtime_error for any other answer.
std::optional<EkPublic> read_pubek(TpmBackend& tpm, uint32_t& refused);
// TPM_CreateEndorsementKeyPair with TPM_ALG_RSA, TPM_ES_RSAESOAEP_SHA1_MGF1, TPM_SS_NONE, 2048 bits.
EkPublic create_ek(TpmBackend& tpm);
// The whole contents of NV index `index` (TPM_GetCapability(TPM_CAP_NV_INDEX) for its size, then
// TPM_NV_ReadValue without authorization), or nothing when it is not defined.
std::vector<uint8_t> read_nv(TpmBackend& tpm, uint32_t index);
// An unowned TPM counts each of these commands (the delete, the define, the write) and refuses
// more than TPM_MAX_NV_WRITE_NOOWNER (64) over its life (Part 3 §20.1, §20.2): TPM_MAXNVWRITES.
class NvWritesExhausted : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};
// Deletes `index` if it exists (TPM_NV_DefineSpace with size 0), defines it for `data` with
// kCertPermission and writes it with one TPM_NV_WriteValue. Throws NvWritesExhausted or
// std::runtime_error.
void store_nv(TpmBackend& tpm, uint32_t index, std::span<const uint8_t> data);
// TPM_CAP_PROP_MANUFACTURER and TPM_CAP_VERSION_VAL as the certificate's TPM attributes.
TpmIdentity identity(TpmBackend& tpm);

}  // namespace ek12

enum class Ek12Result {
    kept,       // a certificate signed by the CA is there
    issued,     // made now
    owned,      // none or a bad one, and the TPM has an owner: TPM_ReadPubek is refused, nothing made
    nv_writes_exhausted,  // none or a bad one, and the unowned TPM refuses more NV writes (TPM_MAXNVWRITES)
};

// Starts the TPM (TPM_Startup(ST_CLEAR); the caller power-cycles it before the guest runs) and
// makes sure TPM_NV_INDEX_EKCert holds a certificate signed by `ca`; anything else (missing, cut
// short, never written, another CA's) is replaced. Throws std::runtime_error with one line.
Ek12Result manufacture_ek_certificate_tpm12(TpmBackend& tpm, const EkCa& ca);

}  // namespace minivmm
