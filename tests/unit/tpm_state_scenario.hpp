// What the snapshot tests of both real backends (swtpm, libtpms) do to a TPM: start it, put state
// in it that lives only in its volatile state (PCR 16 extended; TPM 2.0: a transient HMAC key made
// with TPM2_CreatePrimary, used with TPM2_Sign; TPM 1.2: an OIAP session), then check a TPM restored from a snapshot,
// WITHOUT TPM_Startup, still has all of it. Plus GetRandom for the clone-safety tests.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "tpm_command.hpp"

namespace minivmm::testing {

struct VolatileMarks {
    std::vector<uint8_t> pcr16;   // PCR 16's value after the extend
    uint32_t handle = 0;          // TPM 2.0: the transient key; TPM 1.2: the OIAP session
    std::vector<uint8_t> hmac;    // TPM 2.0: TPM2_Sign (an HMAC) with that key
};

inline std::vector<uint8_t> run_ok(TpmBackend& tpm, const std::vector<uint8_t>& command) {
    std::vector<uint8_t> r = run(tpm, command);
    REQUIRE(r.size() >= 10);
    CHECK(be32(r, 2) == r.size());
    INFO("command code " << be32(command, 6));
    REQUIRE(be32(r, 6) == 0);
    return r;
}

inline void startup(TpmBackend& tpm) {
    if (tpm.version() == TpmVersion::v2_0) run_ok(tpm, Cmd(0x8001, 0x144).u16(0).done());
    else run_ok(tpm, Cmd(0x00C1, 0x99).u16(1).done());
}

inline std::vector<uint8_t> read_pcr16(TpmBackend& tpm) {
    if (tpm.version() == TpmVersion::v1_2) {
        auto r = run_ok(tpm, Cmd(0x00C1, 0x15).u32(16).done());  // TPM_PCRRead
        return std::vector<uint8_t>(r.begin() + 10, r.end());
    }
    // TPM2_PCR_Read, SHA-256 bank, PCR 16 (sizeofSelect 3, bit 0 of byte 2).
    auto r = run_ok(tpm, Cmd(0x8001, 0x17E).u32(1).u16(0x000B).u8(3).u8(0).u8(0).u8(1).done());
    REQUIRE(r.size() == 62);
    return std::vector<uint8_t>(r.begin() + 30, r.end());
}

// TPM2_Sign with the HMAC key over a fixed digest (its scheme, a NULL hash-check ticket): the
// signature is the key's HMAC, the same whenever the same key signs.
inline std::vector<uint8_t> tpm2_hmac(TpmBackend& tpm, uint32_t handle) {
    const std::vector<uint8_t> digest(32, 0x42);
    auto r = run_ok(tpm, Cmd(0x8002, 0x15D).u32(handle).password_session().u16(32).bytes(digest)
                             .u16(0x0010).u16(0x8024).u32(0x40000007).u16(0).done());
    REQUIRE(r.size() > 14);
    return std::vector<uint8_t>(r.begin() + 14, r.end());  // after parameterSize
}

// The TPM must be running (started). `fill`: the bytes of the digest PCR 16 is extended with.
inline VolatileMarks make_volatile_state(TpmBackend& tpm, uint8_t fill = 0x5A) {
    VolatileMarks m;
    if (tpm.version() == TpmVersion::v1_2) {
        run_ok(tpm, Cmd(0x00C1, 0x14).u32(16).bytes(std::vector<uint8_t>(20, fill)).done());  // TPM_Extend
        auto oiap = run_ok(tpm, Cmd(0x00C1, 0x0A).done());                                    // TPM_OIAP
        m.handle = be32(oiap, 10);
    } else {
        run_ok(tpm, Cmd(0x8002, 0x182).u32(16).password_session().u32(1).u16(0x000B)
                        .bytes(std::vector<uint8_t>(32, fill)).done());  // TPM2_PCR_Extend
        // TPM2_CreatePrimary in the owner hierarchy: an HMAC key (KEYEDHASH, SHA-256; fixedTPM,
        // fixedParent, sensitiveDataOrigin, userWithAuth, noDA (else its first use answers TPM_RC_RETRY:
        // the DA-used marker), sign), transient: volatile state only.
        const std::vector<uint8_t> pub = Cmd(0, 0).u16(0x0008).u16(0x000B).u32(0x00040472).u16(0).u16(0x0005)
                                             .u16(0x000B).u16(0).done();
        const std::vector<uint8_t> tpmt(pub.begin() + 10, pub.end());  // without the builder's header
        auto r = run_ok(tpm, Cmd(0x8002, 0x131).u32(0x40000001).password_session().u16(4).u16(0).u16(0)
                                 .u16(static_cast<uint16_t>(tpmt.size())).bytes(tpmt).u16(0).u32(0).done());
        m.handle = be32(r, 10);
        CHECK((m.handle >> 24) == 0x80);  // a transient object
        m.hmac = tpm2_hmac(tpm, m.handle);
    }
    m.pcr16 = read_pcr16(tpm);
    CHECK(m.pcr16 != std::vector<uint8_t>(m.pcr16.size(), 0));
    return m;
}

// On a restored TPM, with no TPM_Startup: the same PCR 16, the volatile object still usable.
inline void check_volatile_state(TpmBackend& tpm, const VolatileMarks& m) {
    CHECK(read_pcr16(tpm) == m.pcr16);
    if (tpm.version() == TpmVersion::v1_2) {
        // TPM_GetCapability(TPM_CAP_HANDLE, TPM_RT_AUTH): the session is still loaded.
        auto r = run_ok(tpm, Cmd(0x00C1, 0x65).u32(0x14).u32(4).u32(0x02).done());
        REQUIRE(r.size() >= 16);
        bool found = false;
        for (size_t i = 0, n = be16(r, 14); i < n; ++i) found = found || be32(r, 16 + 4 * i) == m.handle;
        CHECK(found);
    } else {
        CHECK(tpm2_hmac(tpm, m.handle) == m.hmac);
    }
}

inline std::vector<uint8_t> get_random16(TpmBackend& tpm) {
    const bool tpm2 = tpm.version() == TpmVersion::v2_0;
    auto r = run_ok(tpm, tpm2 ? Cmd(0x8001, 0x17B).u16(16).done() : Cmd(0x00C1, 0x46).u32(16).done());
    REQUIRE(r.size() == (tpm2 ? 28u : 30u));
    return std::vector<uint8_t>(r.begin() + (tpm2 ? 12 : 14), r.end());
}

}  // namespace minivmm::testing
