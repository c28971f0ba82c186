// A TPM 2.0 key made through /dev/tpm0 before a snapshot still signs after it, with the REAL
// libtpms (the same backend going on; restored into a fresh backend; restored into the state
// directory its own process left, after the TPM2_Startup minivmm's EK step sends; through
// TpmSlot::restore_state with the TPM2_StirRandom) and a real swtpm: TPM2_ContextLoad of the
// context TPM2_ContextSave gave before the save answers TPM_RC_SUCCESS, TPM2_Sign with the loaded
// copy succeeds (after at most one TPM_RC_RETRY: the first DA-protected use, see
// tpm_context_scenario.hpp), and the key still loaded from before the save verifies the signature.
// Also the template tpm2-tools 5.4 sends for `tpm2_createprimary -G ecc256:ecdsa-sha256` WITHOUT
// -a, which the TPM refuses (the Linux snapshot check's key was never made: tests/linux/init).
#include <doctest/doctest.h>

#include <cstdio>
#include <memory>
#include <vector>

#include "swtpm_process.hpp"
#include "temp_dir.hpp"
#include "tpm_context_scenario.hpp"
#include "tpm_state_scenario.hpp"
#include "vmm/tpm/libtpms_backend.hpp"
#include "vmm/tpm/swtpm_backend.hpp"
#include "vmm/tpm_slot.hpp"

using namespace minivmm;
using namespace minivmm::testing;
using namespace std::chrono_literals;

namespace {

struct KeyBefore {
    uint32_t handle = 0;           // the key, still loaded when the TPM is saved
    std::vector<uint8_t> context;  // its TPMS_CONTEXT (tpm2-tools' key.ctx)
    std::vector<uint8_t> pcr16;
};

// The guest's steps before the save: TPM2_Startup, tpm2_pcrextend 16, tpm2_createprimary.
KeyBefore make_key(TpmBackend& tpm) {
    startup(tpm);
    run_ok(tpm, Cmd(0x8002, 0x182).u32(16).password_session().u32(1).u16(0x000B)
                    .bytes(std::vector<uint8_t>(32, 0x5A)).done());  // TPM2_PCR_Extend
    const auto r = create_ecc_primary(tpm, kAttrBase | kAttrSign);
    REQUIRE(rc_of(r) == 0);
    KeyBefore k;
    k.handle = be32(r, 10);
    uint32_t rc = 0;
    k.context = context_save(tpm, k.handle, rc);
    REQUIRE(rc == 0);
    k.pcr16 = read_pcr16(tpm);
    return k;
}

// The guest's steps after the restore: tpm2_pcrread 16, tpm2_sign -c key.ctx.
void check_key_signs(TpmBackend& tpm, const KeyBefore& k, const char* how) {
    CAPTURE(how);
    CHECK(read_pcr16(tpm) == k.pcr16);
    uint32_t rc = 0;
    const uint32_t loaded = context_load(tpm, k.context, rc);
    CHECK(rc == 0);
    REQUIRE(loaded != 0);
    CHECK(loaded != k.handle);  // a second copy: the saved key is still loaded
    const Signed s = sign(tpm, loaded);
    std::printf("%s: TPM2_ContextLoad 0x%x -> handle 0x%x, TPM2_Sign 0x%x after %u TPM_RC_RETRY\n", how, rc, loaded,
                s.rc, s.retries);
    CHECK(s.rc == 0);
    CHECK(s.retries <= 1);
    CHECK(verify(tpm, k.handle, s.signature) == 0);
    std::vector<uint8_t> forged = s.signature;
    REQUIRE(forged.size() > 8);
    forged[8] ^= 1;  // in r: the check above is not one that always passes
    CHECK(verify(tpm, k.handle, forged) != 0);
}

std::vector<uint8_t> saved(TpmBackend& tpm) {
    std::vector<uint8_t> blob;
    REQUIRE(tpm.save_state(blob));
    return blob;
}

}  // namespace

TEST_CASE("tpm2-tools' -G ecc256:ecdsa-sha256 template without -a is refused: TPM_RC_ATTRIBUTES") {
    // tpm2-tools 5.4 (tpm2_createprimary -Q -C o -G ecc256:ecdsa-sha256, traced with
    // TSS2_LOG=tcti+trace) sends objectAttributes 0x00010072: restricted, neither sign nor decrypt
    // (its default restricted|decrypt minus decrypt for the signing scheme), AES-128-CFB. libtpms
    // PublicAttributesValidation (Object_spt.c): "a restricted key cannot have both SET or both
    // CLEAR" (TPM 2.0 Part 1, 27.2: restricted keys are signing or decryption keys).
    TempDir dir;
    LibtpmsBackend tpm(dir.path.string(), TpmVersion::v2_0);
    REQUIRE(tpm.power_cycle());
    startup(tpm);
    CHECK(rc_of(create_ecc_primary(tpm, kAttrBase | kAttrRestricted, true)) == kRcAttributesP2);
    // With -a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign' (tests/linux/init) it is made.
    CHECK(rc_of(create_ecc_primary(tpm, kAttrBase | kAttrSign)) == 0);
}

TEST_CASE("libtpms: a key's context saved before a snapshot loads and signs after it") {
    SUBCASE("no snapshot: the same TPM goes on") {
        TempDir dir;
        LibtpmsBackend tpm(dir.path.string(), TpmVersion::v2_0);
        REQUIRE(tpm.power_cycle());
        const KeyBefore k = make_key(tpm);
        check_key_signs(tpm, k, "libtpms, no snapshot");
    }
    SUBCASE("restored into a fresh backend and state directory") {
        std::vector<uint8_t> blob;
        KeyBefore k;
        {
            TempDir dir;
            LibtpmsBackend tpm(dir.path.string(), TpmVersion::v2_0);
            REQUIRE(tpm.power_cycle());
            k = make_key(tpm);
            blob = saved(tpm);
        }
        TempDir dir;
        LibtpmsBackend tpm(dir.path.string(), TpmVersion::v2_0);
        REQUIRE(tpm.restore_state(blob));
        check_key_signs(tpm, k, "libtpms, fresh backend");
    }
    SUBCASE("restored into its own state directory, after a TPM2_Startup there (the restoring process)") {
        std::vector<uint8_t> blob;
        KeyBefore k;
        TempDir dir;
        {
            LibtpmsBackend tpm(dir.path.string(), TpmVersion::v2_0);  // ends without shutdown, as SIGKILL
            REQUIRE(tpm.power_cycle());
            k = make_key(tpm);
            blob = saved(tpm);
        }
        LibtpmsBackend tpm(dir.path.string(), TpmVersion::v2_0);
        startup(tpm);  // what manufacture_ek_certificates sends before the restore
        REQUIRE(tpm.restore_state(blob));
        check_key_signs(tpm, k, "libtpms, same directory after TPM2_Startup");
    }
    SUBCASE("through TpmSlot::restore_state, stirred") {
        std::vector<uint8_t> blob;
        KeyBefore k;
        {
            TempDir dir;
            auto backend = std::make_unique<LibtpmsBackend>(dir.path.string(), TpmVersion::v2_0);
            TpmBackend& tpm = *backend;  // owned by the slot
            TpmSlot slot(std::move(backend), sandbox::TpmIo::none);
            slot.power_on(1);
            k = make_key(tpm);
            StateWriter w;
            REQUIRE(slot.save_state(w));
            blob = w.data();
        }
        TempDir dir;
        auto backend = std::make_unique<LibtpmsBackend>(dir.path.string(), TpmVersion::v2_0);
        TpmBackend& tpm = *backend;
        TpmSlot slot(std::move(backend), sandbox::TpmIo::none);
        REQUIRE(slot.restore_state(blob));  // stir = true: TPM2_StirRandom after the restore
        check_key_signs(tpm, k, "libtpms, TpmSlot with TPM2_StirRandom");
    }
}

TEST_CASE("swtpm: a key's context saved before a snapshot loads and signs in the restored swtpm") {
    if (!swtpm_available("test_tpm_context_snapshot")) return;
    std::vector<uint8_t> blob;
    KeyBefore k;
    {
        SwtpmProcess proc(true);
        auto tpm = SwtpmBackend::connect(proc.sock, 10000ms);
        REQUIRE(tpm->power_cycle());
        k = make_key(*tpm);
        blob = saved(*tpm);
    }
    SwtpmProcess proc(true);
    auto tpm = SwtpmBackend::connect(proc.sock, 10000ms);
    REQUIRE(tpm->restore_state(blob));
    check_key_signs(*tpm, k, "swtpm, second process");
}
