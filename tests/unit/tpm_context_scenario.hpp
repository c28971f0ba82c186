// What tpm2-tools does through /dev/tpm0 (no resource manager) around a snapshot, against a real
// backend: `tpm2_createprimary -C o -G ecc256:ecdsa-sha256 -a 'fixedtpm|fixedparent|
// sensitivedataorigin|userwithauth|sign' -c key.ctx` (TPM2_CreatePrimary of an ECC P-256 ECDSA
// signing key WITHOUT noDA, then TPM2_ContextSave; the object stays loaded), and later `tpm2_sign
// -c key.ctx` (TPM2_ContextLoad of that context, TPM2_Sign with a password session). The first use
// of a DA-protected object's authValue after a TPM start answers TPM_RC_RETRY once (libtpms
// SessionProcess.c CheckLockedOut, USE_DA_USED: it first records the DA use in NV); tpm2-tss
// resubmits such a command, and so does sign() here, counting the retries.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "tpm_command.hpp"

namespace minivmm::testing {

constexpr uint32_t kRcRetry = 0x922;       // TPM_RC_RETRY (TPM 2.0 Part 2, 6.6.3: RC_WARN + 0x022)
constexpr uint32_t kRcAttributesP2 = 0x2C2;  // TPM_RC_ATTRIBUTES (RC_FMT1 + 0x002) of parameter 2

// objectAttributes (TPM 2.0 Part 2, 8.3): fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth.
constexpr uint32_t kAttrBase = 0x00000072;
constexpr uint32_t kAttrRestricted = 1u << 16, kAttrSign = 1u << 18;

inline uint32_t rc_of(const std::vector<uint8_t>& r) { return r.size() >= 10 ? be32(r, 6) : 0xFFFFFFFF; }

// TPM2_CreatePrimary (owner hierarchy, empty auth) of an ECC NIST P-256 key with ECDSA-SHA256;
// `aes128cfb`: a symmetric AES-128-CFB (else TPM_ALG_NULL). Returns the response (handle at 10).
inline std::vector<uint8_t> create_ecc_primary(TpmBackend& tpm, uint32_t attributes, bool aes128cfb = false) {
    Cmd pub(0, 0);
    pub.u16(0x0023).u16(0x000B).u32(attributes).u16(0);
    if (aes128cfb) pub.u16(0x0006).u16(128).u16(0x0043);
    else pub.u16(0x0010);
    pub.u16(0x0018).u16(0x000B).u16(0x0003).u16(0x0010).u16(0).u16(0);
    const std::vector<uint8_t> all = pub.done();
    const std::vector<uint8_t> tpmt(all.begin() + 10, all.end());  // without the builder's header
    return run(tpm, Cmd(0x8002, 0x131).u32(0x40000001).password_session().u16(4).u16(0).u16(0)
                        .u16(static_cast<uint16_t>(tpmt.size())).bytes(tpmt).u16(0).u32(0).done());
}

// TPM2_ContextSave: the TPMS_CONTEXT (as TPM2_ContextLoad takes it), or {} with the code in rc.
inline std::vector<uint8_t> context_save(TpmBackend& tpm, uint32_t handle, uint32_t& rc) {
    auto r = run(tpm, Cmd(0x8001, 0x162).u32(handle).done());
    rc = rc_of(r);
    return rc == 0 ? std::vector<uint8_t>(r.begin() + 10, r.end()) : std::vector<uint8_t>{};
}

// TPM2_ContextLoad: the new handle, or 0 with the code in rc.
inline uint32_t context_load(TpmBackend& tpm, const std::vector<uint8_t>& context, uint32_t& rc) {
    auto r = run(tpm, Cmd(0x8001, 0x161).bytes(context).done());
    rc = rc_of(r);
    return rc == 0 ? be32(r, 10) : 0;
}

inline const std::vector<uint8_t> kSignedDigest(32, 0x42);

struct Signed {
    uint32_t rc = 0;                 // the last response's code
    unsigned retries = 0;            // TPM_RC_RETRY answers before it
    std::vector<uint8_t> signature;  // TPMT_SIGNATURE, on success
};

// TPM2_Sign of kSignedDigest with ECDSA-SHA256 (a NULL hash-check ticket), password session with
// empty auth; resubmitted on TPM_RC_RETRY as tpm2-tss does (at most 3 times).
inline Signed sign(TpmBackend& tpm, uint32_t handle) {
    const auto cmd = Cmd(0x8002, 0x15D).u32(handle).password_session().u16(32).bytes(kSignedDigest)
                         .u16(0x0018).u16(0x000B).u16(0x8024).u32(0x40000007).u16(0).done();
    Signed s;
    std::vector<uint8_t> r;
    for (;;) {
        r = run(tpm, cmd);
        s.rc = rc_of(r);
        if (s.rc != kRcRetry || s.retries == 3) break;
        ++s.retries;
    }
    if (s.rc == 0 && r.size() >= 14 && 14 + be32(r, 10) <= r.size())
        s.signature.assign(r.begin() + 14, r.begin() + 14 + be32(r, 10));  // parameterSize, then the signature
    return s;
}

// TPM2_VerifySignature of kSignedDigest with the key at `handle`: its response code.
inline uint32_t verify(TpmBackend& tpm, uint32_t handle, const std::vector<uint8_t>& signature) {
    return rc_of(run(tpm, Cmd(0x8001, 0x177).u32(handle).u16(32).bytes(kSignedDigest).bytes(signature).done()));
}

}  // namespace minivmm::testing
