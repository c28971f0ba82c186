// The TPM side of the EK certificates: what a TPM manufacturer does once per TPM (TCG EK
// Credential Profile for TPM Family 2.0, version 2.x): create the endorsement keys from the
// profile's default templates, L-1 (RSA 2048) and L-2 (ECC NIST P-256), and store a certificate
// for each in its NV index, 0x01C00002 (RSA) and 0x01C0000A (ECC) (§2.2.1.4 "Low Range"), where
// `tpm2_getekcertificate` and `tpm2_nvread` find them. swtpm_setup --create-ek-cert does the same
// for swtpm (src/swtpm_setup/swtpm.c: the templates, NV_DefineSpace, chunked NV_Write).
//
// Commands (TPM 2.0 Part 3): TPM2_Startup(CLEAR), TPM2_GetCapability(TPM_PROPERTIES),
// TPM2_CreatePrimary(TPM_RH_ENDORSEMENT), TPM2_FlushContext, TPM2_NV_ReadPublic, TPM2_NV_Read
// (index authorization, empty), TPM2_NV_UndefineSpace / TPM2_NV_DefineSpace / TPM2_NV_Write with
// platform authorization (empty after TPM2_Startup(CLEAR), until firmware sets it).
// NV index attributes, as swtpm's: PPWRITE | WRITEDEFINE | PPREAD | OWNERREAD | AUTHREAD | NO_DA |
// PLATFORMCREATE (Part 2 §13.4): only the platform writes it, everybody reads it. Not write-locked,
// so that a later start can replace a certificate that no longer verifies.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vmm/tpm/ek_certificate.hpp"
#include "vmm/tpm/tpm_backend.hpp"

namespace minivmm {

namespace ek {

inline constexpr uint32_t kRsaCertIndex = 0x01C00002;
inline constexpr uint32_t kEccCertIndex = 0x01C0000A;
inline constexpr uint32_t kCertIndexAttributes = 0x42072001;
// PolicyA_SHA256 (EK Credential Profile §B.3.3): PolicySecret(TPM_RH_ENDORSEMENT), the
// authPolicy of both default EK templates.
inline constexpr uint8_t kPolicyA[32] = {0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xB3, 0xF8, 0x1A, 0x90, 0xCC,
                                         0x8D, 0x46, 0xA5, 0xD7, 0x24, 0xFD, 0x52, 0xD7, 0x6E, 0x06, 0x52,
                                         0x0B, 0x64, 0xF2, 0xA1, 0xDA, 0x1B, 0x33, 0x14, 0x69, 0xAA};

// TPMT_PUBLIC of template L-1 / L-2 (EK Credential Profile §B.3.3, §B.3.4).
std::vector<uint8_t> ek_template(EkPublic::Type type);
// The EK's public key in TPM2_CreatePrimary's response (header, handle, parameterSize,
// TPM2B_PUBLIC outPublic, ...). Checks the type against `type`; throws std::runtime_error on a
// malformed response. Every field is bounds-checked (fuzzed: tests/fuzz/fuzz_ek_manufacture.cpp).
EkPublic parse_create_primary(std::span<const uint8_t> response, EkPublic::Type type);

// One command at locality 0, checked: the response, or std::runtime_error naming `what` and the
// TPM_RC.
std::vector<uint8_t> send_checked(TpmBackend& tpm, const std::vector<uint8_t>& command, const char* what);

// TPM2_CreatePrimary with the EK template, then TPM2_FlushContext.
EkPublic create_ek(TpmBackend& tpm, EkPublic::Type type);
// The whole contents of NV index `index`, or nothing when it is not defined or was never written.
std::vector<uint8_t> read_nv(TpmBackend& tpm, uint32_t index);
// Undefines `index` if it exists, defines it for `data` and writes it in chunks of at most
// TPM_PT_NV_BUFFER_MAX bytes. Throws std::runtime_error.
void store_nv(TpmBackend& tpm, uint32_t index, std::span<const uint8_t> data);
// TPM_PT_MANUFACTURER and TPM_PT_FIRMWARE_VERSION_1 as the certificate's TPM attributes.
TpmIdentity identity(TpmBackend& tpm);

}  // namespace ek

struct EkManufactureResult {
    unsigned issued = 0;  // certificates made now
    unsigned kept = 0;    // certificates already there, signed by the CA
};

// Starts the TPM (TPM2_Startup(CLEAR); the caller power-cycles it before the guest runs) and makes
// sure both EK certificate indices hold a certificate signed by `ca`: one that does not (missing,
// never written, cut short by a kill during the write, or signed by another CA) is replaced by a
// new certificate for the TPM's EK. A kill at any point leaves an index that the next start
// replaces, never a silently missing certificate. Throws std::runtime_error with one line.
EkManufactureResult manufacture_ek_certificates(TpmBackend& tpm, const EkCa& ca);

}  // namespace minivmm
