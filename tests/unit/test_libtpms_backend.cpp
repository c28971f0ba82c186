// LibtpmsBackend with the real libtpms: TPM 2.0 and 1.2 commands through execute(), power cycles,
// locality, tpmEstablished, cancel, persistence across instances, and the start-up errors for a
// corrupt, truncated or other-version state and a locked directory.
#include <doctest/doctest.h>

#include "temp_dir.hpp"

#include <libtpms/tpm_library.h>
#include <libtpms/tpm_tis.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "tpm_command.hpp"
#include "vmm/tpm/libtpms_backend.hpp"

using namespace minivmm;
using testing::TempDir;
namespace fs = std::filesystem;

namespace {

using testing::slurp;
using testing::spit;

using testing::be16;
using testing::be32;
using testing::Cmd;

std::vector<uint8_t> run(TpmBackend& tpm, const std::vector<uint8_t>& command, uint8_t locality = 0) {
    std::vector<uint8_t> response(tpm.buffer_size());
    size_t n = tpm.execute(locality, command, response);
    response.resize(n);
    REQUIRE(n >= 10);
    CHECK(be32(response, 2) == n);  // the size field matches
    return response;
}
uint32_t rc_of(const std::vector<uint8_t>& response) { return be32(response, 6); }

// TPM 2.0 commands and codes (Part 2 §6.5, §6.6).
constexpr uint16_t kStNoSessions = 0x8001, kStSessions = 0x8002;
constexpr uint32_t kRcSuccess = 0, kRcInitialize = 0x100, kRcFailure = 0x101, kRcCommandSize = 0x142,
                   kRcLocality = 0x907, kRcCanceled = 0x909;
constexpr uint32_t kOwner = 0x40000001, kNvIndex = 0x01500020;

std::vector<uint8_t> tpm2_startup() { return Cmd(kStNoSessions, 0x144).u16(0 /* SU_CLEAR */).done(); }
std::vector<uint8_t> tpm2_get_random(uint16_t n) { return Cmd(kStNoSessions, 0x17B).u16(n).done(); }
std::vector<uint8_t> tpm2_pcr_reset(uint32_t pcr) { return Cmd(kStSessions, 0x13D).u32(pcr).password_session().done(); }
std::vector<uint8_t> tpm2_nv_define(uint16_t size) {
    // TPMS_NV_PUBLIC: index, nameAlg SHA-256, TPMA_NV_OWNERWRITE|OWNERREAD, empty policy, size.
    return Cmd(kStSessions, 0x12A).u32(kOwner).password_session().u16(0)
        .u16(14).u32(kNvIndex).u16(0x000B).u32(0x00020002).u16(0).u16(size).done();
}
std::vector<uint8_t> tpm2_nv_write(const std::vector<uint8_t>& data) {
    return Cmd(kStSessions, 0x137).u32(kOwner).u32(kNvIndex).password_session()
        .u16(static_cast<uint16_t>(data.size())).bytes(data).u16(0).done();
}
std::vector<uint8_t> tpm2_nv_read(uint16_t size) {
    return Cmd(kStSessions, 0x14E).u32(kOwner).u32(kNvIndex).password_session().u16(size).u16(0).done();
}

// TPM 1.2 commands (TPM 1.2 Part 3) and codes (Part 2 §16).
constexpr uint16_t kTagRquCommand = 0x00C1;
constexpr uint32_t kTpm12Success = 0, kTpm12FailRc = 0x09, kTpm12InvalidPostInit = 0x26, kTpm12BadLocality = 0x3D,
                   kTpm12BadParamSizeRc = 0x19;
std::vector<uint8_t> tpm12_startup() { return Cmd(kTagRquCommand, 0x99).u16(1 /* TPM_ST_CLEAR */).done(); }
std::vector<uint8_t> tpm12_get_random(uint32_t n) { return Cmd(kTagRquCommand, 0x46).u32(n).done(); }
std::vector<uint8_t> tpm12_reset_establishment() { return Cmd(kTagRquCommand, 0x4000000B).done(); }

std::vector<uint8_t> random_bytes_tpm2(const std::vector<uint8_t>& r) {
    REQUIRE(rc_of(r) == kRcSuccess);
    uint16_t n = be16(r, 10);
    REQUIRE(r.size() == 12u + n);
    return {r.begin() + 12, r.end()};
}

// Sets the established flag the way a locality-4 _TPM_Hash_Start sequence does (TIS 1.3 §5.5.3);
// the TIS interface has no such path to libtpms, so the test calls libtpms directly.
void hash_start_sequence(TpmBackend& tpm) {
    run(tpm, tpm.version() == TpmVersion::v2_0 ? tpm2_get_random(1) : tpm12_get_random(1), 4);  // locality 4
    REQUIRE(TPM_IO_Hash_Start() == 0);
    const unsigned char data[] = "measured";
    REQUIRE(TPM_IO_Hash_Data(data, sizeof(data)) == 0);
    REQUIRE(TPM_IO_Hash_End() == 0);
}

std::string start_error(const std::string& dir, TpmVersion version) {
    try {
        LibtpmsBackend tpm(dir, version);
    } catch (const std::exception& e) {
        return e.what();
    }
    return {};
}

}  // namespace

TEST_CASE("libtpms TPM 2.0: Startup, GetRandom, power cycles") {
    TempDir tmp;
    LibtpmsBackend tpm(tmp.sub("st"), TpmVersion::v2_0);
    CHECK(tpm.version() == TpmVersion::v2_0);
    CHECK(tpm.buffer_size() == 4096);
    CHECK(tpm.state_dir() == tmp.sub("st"));
    CHECK(fs::exists(tmp.sub("st/tpm2-00.permall")));  // a fresh TPM was manufactured and saved

    REQUIRE(tpm.power_cycle());
    CHECK(rc_of(run(tpm, tpm2_get_random(8))) == kRcInitialize);  // before TPM2_Startup
    CHECK(rc_of(run(tpm, tpm2_startup())) == kRcSuccess);
    CHECK(rc_of(run(tpm, tpm2_startup())) == kRcInitialize);  // already started
    auto r1 = random_bytes_tpm2(run(tpm, tpm2_get_random(32)));
    auto r2 = random_bytes_tpm2(run(tpm, tpm2_get_random(32)));
    CHECK(r1.size() == 32);
    CHECK(r1 != r2);

    for (int cycle = 0; cycle < 2; ++cycle) {
        CAPTURE(cycle);
        REQUIRE(tpm.power_cycle());
        CHECK(rc_of(run(tpm, tpm2_get_random(8))) == kRcInitialize);  // the power cycle really reset it
        CHECK(rc_of(run(tpm, tpm2_startup())) == kRcSuccess);
        CHECK(random_bytes_tpm2(run(tpm, tpm2_get_random(16))).size() == 16);
    }
}

TEST_CASE("libtpms: command size bounds and short response buffers") {
    TempDir tmp;
    LibtpmsBackend tpm(tmp.path, TpmVersion::v2_0);
    REQUIRE(tpm.power_cycle());
    std::vector<uint8_t> response(4096);
    std::vector<uint8_t> tiny = {0x80, 0x01, 0, 0, 0};
    size_t n = tpm.execute(0, tiny, response);
    REQUIRE(n == 10);
    CHECK(rc_of({response.begin(), response.begin() + 10}) == kRcCommandSize);
    std::vector<uint8_t> huge(4097, 0);
    n = tpm.execute(0, huge, response);
    CHECK(rc_of({response.begin(), response.begin() + static_cast<long>(n)}) == kRcCommandSize);
    std::vector<uint8_t> small(9);
    CHECK(tpm.execute(0, tpm2_startup(), small) == 0);
    // A garbage command of legal size is libtpms's business: an error response, no crash.
    std::vector<uint8_t> garbage = {0x12, 0x34, 0, 0, 0, 12, 0xde, 0xad, 0xbe, 0xef, 1, 2};
    CHECK(rc_of(run(tpm, garbage)) != kRcSuccess);
    CHECK(rc_of(run(tpm, tpm2_startup())) == kRcSuccess);  // still healthy
}

TEST_CASE("libtpms TPM 2.0: the locality reaches libtpms") {
    TempDir tmp;
    LibtpmsBackend tpm(tmp.path, TpmVersion::v2_0);
    REQUIRE(tpm.power_cycle());
    REQUIRE(rc_of(run(tpm, tpm2_startup())) == kRcSuccess);
    // PC Client PCR 20 may be reset from localities 2 and 4 (libtpms PCR.c s_initAttributes;
    // locality 4 resets nothing on a DRTM TPM), PCR 16 (debug) from localities 0-3.
    CHECK(rc_of(run(tpm, tpm2_pcr_reset(20), 0)) == kRcLocality);
    CHECK(rc_of(run(tpm, tpm2_pcr_reset(20), 1)) == kRcLocality);
    CHECK(rc_of(run(tpm, tpm2_pcr_reset(20), 2)) == kRcSuccess);
    CHECK(rc_of(run(tpm, tpm2_pcr_reset(20), 3)) == kRcLocality);
    CHECK(rc_of(run(tpm, tpm2_pcr_reset(16), 0)) == kRcSuccess);
    CHECK(rc_of(run(tpm, tpm2_pcr_reset(16), 4)) == kRcLocality);
}

TEST_CASE("libtpms TPM 2.0: tpmEstablished and its reset") {
    TempDir tmp;
    LibtpmsBackend tpm(tmp.path, TpmVersion::v2_0);
    REQUIRE(tpm.power_cycle());
    REQUIRE(rc_of(run(tpm, tpm2_startup())) == kRcSuccess);
    CHECK_FALSE(tpm.established());
    hash_start_sequence(tpm);
    CHECK(tpm.established());
    tpm.reset_established(0);  // refused: only localities 3 and 4 may reset it
    CHECK(tpm.established());
    tpm.reset_established(2);
    CHECK(tpm.established());
    tpm.reset_established(3);
    CHECK_FALSE(tpm.established());
    hash_start_sequence(tpm);
    tpm.reset_established(4);
    CHECK_FALSE(tpm.established());
}

TEST_CASE("libtpms TPM 2.0: cancel while idle does not cancel the next command") {
    TempDir tmp;
    LibtpmsBackend tpm(tmp.path, TpmVersion::v2_0);
    REQUIRE(tpm.power_cycle());
    tpm.cancel();
    auto r = run(tpm, tpm2_startup());
    CHECK(rc_of(r) == kRcSuccess);
    CHECK(rc_of(r) != kRcCanceled);
    tpm.cancel();
    tpm.cancel();
    CHECK(random_bytes_tpm2(run(tpm, tpm2_get_random(4))).size() == 4);
}

TEST_CASE("libtpms TPM 1.2: Startup, GetRandom, power cycles, locality, established") {
    TempDir tmp;
    LibtpmsBackend tpm(tmp.path, TpmVersion::v1_2);
    CHECK(tpm.version() == TpmVersion::v1_2);
    CHECK(tpm.buffer_size() == 4096);
    CHECK(fs::exists(tmp.sub("tpm-00.permall")));
    CHECK_FALSE(fs::exists(tmp.sub("tpm2-00.permall")));
    for (int cycle = 0; cycle < 3; ++cycle) {
        CAPTURE(cycle);
        REQUIRE(tpm.power_cycle());
        CHECK(rc_of(run(tpm, tpm12_get_random(8))) == kTpm12InvalidPostInit);  // before TPM_Startup
        CHECK(rc_of(run(tpm, tpm12_startup())) == kTpm12Success);
        CHECK(rc_of(run(tpm, tpm12_startup())) == kTpm12InvalidPostInit);
        auto r = run(tpm, tpm12_get_random(16));
        REQUIRE(rc_of(r) == kTpm12Success);
        CHECK(be16(r, 0) == 0x00C4);
        CHECK(be32(r, 10) == 16);
        CHECK(r.size() == 14 + 16);
    }
    std::vector<uint8_t> response(4096);
    std::vector<uint8_t> tiny = {0x00, 0xC1, 0, 0};
    REQUIRE(tpm.execute(0, tiny, response) == 10);
    CHECK(rc_of({response.begin(), response.begin() + 10}) == kTpm12BadParamSizeRc);

    // TSC_ResetEstablishmentBit needs locality 3 or 4 (TPM 1.2 Part 3 §6.5): the locality is seen.
    hash_start_sequence(tpm);
    CHECK(tpm.established());
    CHECK(rc_of(run(tpm, tpm12_reset_establishment(), 0)) == kTpm12BadLocality);
    CHECK(tpm.established());
    CHECK(rc_of(run(tpm, tpm12_reset_establishment(), 3)) == kTpm12Success);
    CHECK_FALSE(tpm.established());  // refreshed after the command
    hash_start_sequence(tpm);
    tpm.reset_established(1);
    CHECK(tpm.established());
    tpm.reset_established(4);
    CHECK_FALSE(tpm.established());

    tpm.cancel();  // not supported by libtpms for 1.2: a no-op
    CHECK(rc_of(run(tpm, tpm12_get_random(4))) == kTpm12Success);
}

TEST_CASE("libtpms: one instance per process") {
    TempDir tmp;
    auto first = std::make_unique<LibtpmsBackend>(tmp.sub("a"), TpmVersion::v2_0);
    CHECK(start_error(tmp.sub("b"), TpmVersion::v2_0).find("only one in-process libtpms TPM") == 0);
    CHECK_FALSE(fs::exists(tmp.sub("b")));  // refused before touching anything
    REQUIRE(first->power_cycle());
    CHECK(rc_of(run(*first, tpm2_startup())) == kRcSuccess);  // the first one is unharmed
    first.reset();
    LibtpmsBackend second(tmp.sub("b"), TpmVersion::v1_2);  // free again, even for the other version
    REQUIRE(second.power_cycle());
    CHECK(rc_of(run(second, tpm12_startup())) == kTpm12Success);
}

TEST_CASE("libtpms: shutdown saves the volatile state, the next power-on discards it") {
    TempDir tmp;
    {
        LibtpmsBackend tpm(tmp.path, TpmVersion::v2_0);
        REQUIRE(tpm.power_cycle());
        REQUIRE(rc_of(run(tpm, tpm2_startup())) == kRcSuccess);
        tpm.shutdown();
        CHECK_FALSE(tpm.running());
        CHECK(fs::exists(tmp.sub("tpm2-00.volatilestate")));
        CHECK(rc_of(run(tpm, tpm2_get_random(4))) == kRcFailure);  // fails fast afterwards
        CHECK_FALSE(tpm.power_cycle());
        tpm.shutdown();  // twice is harmless
    }
    LibtpmsBackend tpm(tmp.path, TpmVersion::v2_0);  // checks and loads the volatile state
    REQUIRE(tpm.power_cycle());
    CHECK_FALSE(fs::exists(tmp.sub("tpm2-00.volatilestate")));
    CHECK(rc_of(run(tpm, tpm2_startup())) == kRcSuccess);  // not resumed: a fresh power-on
}

TEST_CASE("libtpms TPM 2.0: an NV index survives the backend (with and without clean shutdown)") {
    TempDir tmp;
    const std::vector<uint8_t> secret = {'m', 'i', 'n', 'i', 'v', 'm', 'm', '-', 'n', 'v', 0x00, 0xff, 0x5a, 0xa5, 1, 2};
    for (bool clean : {false, true}) {
        CAPTURE(clean);
        fs::remove_all(tmp.sub("st"));
        {
            LibtpmsBackend tpm(tmp.sub("st"), TpmVersion::v2_0);
            REQUIRE(tpm.power_cycle());
            REQUIRE(rc_of(run(tpm, tpm2_startup())) == kRcSuccess);
            REQUIRE(rc_of(run(tpm, tpm2_nv_define(16))) == kRcSuccess);
            REQUIRE(rc_of(run(tpm, tpm2_nv_write(secret))) == kRcSuccess);
            if (clean) tpm.shutdown();  // else: destroyed as if the process had died
        }
        LibtpmsBackend tpm(tmp.sub("st"), TpmVersion::v2_0);
        REQUIRE(tpm.power_cycle());
        REQUIRE(rc_of(run(tpm, tpm2_startup())) == kRcSuccess);
        auto r = run(tpm, tpm2_nv_read(16));
        REQUIRE(rc_of(r) == kRcSuccess);
        // parameterSize, then TPM2B_MAX_NV_BUFFER.
        REQUIRE(be16(r, 14) == 16);
        CHECK(std::vector<uint8_t>(r.begin() + 16, r.begin() + 32) == secret);
        CHECK(rc_of(run(tpm, tpm2_nv_define(16))) != kRcSuccess);  // the index is still defined
    }
}

TEST_CASE("libtpms: corrupt, truncated, garbage and other-version state is refused at start-up") {
    TempDir tmp;
    const std::string dir = tmp.sub("mytpm"), permall = dir + "/tpm2-00.permall";
    {
        LibtpmsBackend tpm(dir, TpmVersion::v2_0);
        REQUIRE(tpm.power_cycle());
        REQUIRE(rc_of(run(tpm, tpm2_startup())) == kRcSuccess);
        REQUIRE(rc_of(run(tpm, tpm2_nv_define(8))) == kRcSuccess);
    }
    const auto good = slurp(permall);
    REQUIRE(good.size() > 1000);

    auto flipped = good;
    flipped[good.size() / 2] ^= 0x10;
    spit(permall, flipped);
    CHECK(start_error(dir, TpmVersion::v2_0) ==
          "TPM state file " + permall + " is corrupt (checksum mismatch); move it away to start a fresh TPM");

    spit(permall, std::vector<uint8_t>(good.begin(), good.begin() + 700));
    CHECK(start_error(dir, TpmVersion::v2_0) ==
          "TPM state file " + permall + " is corrupt (truncated: 700 bytes); move it away to start a fresh TPM");

    // A well-formed file whose content libtpms cannot use.
    std::vector<uint8_t> junk(4000, 0x5a);
    spit(permall, tpmstate::encode_file(TpmVersion::v2_0, junk));
    CHECK(start_error(dir, TpmVersion::v2_0).find("libtpms could not start TPM 2.0 from the state in " + dir) == 0);

    spit(permall, good);
    CHECK(start_error(dir, TpmVersion::v2_0) == "");  // intact again: starts

    // The same directory as TPM 1.2, and a 1.2 state used as 2.0.
    CHECK(start_error(dir, TpmVersion::v1_2) ==
          "TPM state directory " + dir + " holds TPM 2.0 state (tpm2-00.permall), not TPM 1.2; use -tpm-version 2.0 "
                                         "or another -tpm-state directory");
    const std::string dir12 = tmp.sub("tpm12");
    { LibtpmsBackend tpm(dir12, TpmVersion::v1_2); }
    CHECK(start_error(dir12, TpmVersion::v2_0) ==
          "TPM state directory " + dir12 + " holds TPM 1.2 state (tpm-00.permall), not TPM 2.0; use -tpm-version 1.2 "
                                           "or another -tpm-state directory");
    fs::rename(dir12 + "/tpm-00.permall", dir12 + "/tpm2-00.permall");  // renamed by hand: the header knows
    CHECK(start_error(dir12, TpmVersion::v2_0) ==
          "TPM state file " + dir12 + "/tpm2-00.permall holds TPM 1.2 state, not TPM 2.0; use -tpm-version 1.2 or "
                                      "another -tpm-state directory");
}

TEST_CASE("libtpms: a locked state directory is refused") {
    TempDir tmp;
    TpmStateDir holder(tmp.path);
    CHECK(start_error(tmp.path, TpmVersion::v2_0) == "TPM state directory " + tmp.path.string() +
                                                         " is in use by another minivmm (pid " +
                                                         std::to_string(::getpid()) + ")");
    CHECK_FALSE(fs::exists(tmp.sub("tpm2-00.permall")));
}

TEST_CASE("libtpms TPM 2.0: a state write failing at run time fails the command, not the VMM") {
    TempDir tmp;
    const std::string dir = tmp.sub("gone");
    LibtpmsBackend tpm(dir, TpmVersion::v2_0);
    REQUIRE(tpm.power_cycle());
    REQUIRE(rc_of(run(tpm, tpm2_startup())) == kRcSuccess);
    fs::remove_all(dir);  // every later write fails (ENOENT under the removed directory)
    // libtpms treats a failed NV commit like broken NV: it enters failure mode (TPM 2.0 Part 1
    // §12.2.3); commands are still answered, with TPM_RC_FAILURE.
    CHECK(rc_of(run(tpm, tpm2_nv_define(8))) == kRcFailure);
    CHECK(rc_of(run(tpm, tpm2_get_random(4))) == kRcFailure);
    tpm.shutdown();  // the volatile state cannot be written either: logged, no crash
    CHECK_FALSE(tpm.running());
}

TEST_CASE("libtpms: TPM_SaveState / Shutdown(STATE) survive a power cycle and a new backend") {
    TempDir tmp;
    SUBCASE("TPM 1.2: tpm-00.savestate is written, used by TPM_Startup(ST_STATE), then deleted") {
        {
            LibtpmsBackend tpm(tmp.path, TpmVersion::v1_2);
            REQUIRE(tpm.power_cycle());
            REQUIRE(rc_of(run(tpm, tpm12_startup())) == kTpm12Success);
            CHECK(rc_of(run(tpm, Cmd(kTagRquCommand, 0x98).done())) == kTpm12Success);  // TPM_SaveState
            CHECK(fs::exists(tmp.sub("tpm-00.savestate")));
        }
        LibtpmsBackend tpm(tmp.path, TpmVersion::v1_2);
        REQUIRE(tpm.power_cycle());
        CHECK(rc_of(run(tpm, Cmd(kTagRquCommand, 0x99).u16(2 /* TPM_ST_STATE */).done())) == kTpm12Success);
        CHECK_FALSE(fs::exists(tmp.sub("tpm-00.savestate")));  // consumed (tpm_nvram_deletename)
        REQUIRE(tpm.power_cycle());
        CHECK(rc_of(run(tpm, Cmd(kTagRquCommand, 0x99).u16(2).done())) != kTpm12Success);  // nothing saved now
    }
    SUBCASE("TPM 2.0: Shutdown(STATE) then Startup(STATE)") {
        {
            LibtpmsBackend tpm(tmp.path, TpmVersion::v2_0);
            REQUIRE(tpm.power_cycle());
            REQUIRE(rc_of(run(tpm, tpm2_startup())) == kRcSuccess);
            CHECK(rc_of(run(tpm, Cmd(kStNoSessions, 0x145).u16(1 /* SU_STATE */).done())) == kRcSuccess);
        }
        LibtpmsBackend tpm(tmp.path, TpmVersion::v2_0);
        REQUIRE(tpm.power_cycle());
        CHECK(rc_of(run(tpm, Cmd(kStNoSessions, 0x144).u16(1 /* SU_STATE */).done())) == kRcSuccess);
        REQUIRE(tpm.power_cycle());  // no orderly shutdown this time: TPM_RC_VALUE for SU_STATE
        CHECK(rc_of(run(tpm, Cmd(kStNoSessions, 0x144).u16(1).done())) != kRcSuccess);
        CHECK(rc_of(run(tpm, tpm2_startup())) == kRcSuccess);
    }
}
