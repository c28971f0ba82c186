// minivmm-testhooks' TPM backends over the real libtpms. CannedRandomBackend (the floor backend):
// TPM2_GetRandom is answered from memory, well-formed and before TPM2_Startup (the real TPM would
// say TPM_RC_INITIALIZE), every other command reaches the TPM. DelayedBackend (a slow TPM): every
// command takes at least its delay and gets the real TPM's answer.
#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <vector>

#include "temp_dir.hpp"
#include "tpm_command.hpp"
#include "vmm/tpm/canned_random_backend.hpp"
#include "vmm/tpm/delayed_backend.hpp"
#include "vmm/tpm/libtpms_backend.hpp"

using namespace minivmm;
using testing::be16;
using testing::be32;
using testing::Cmd;
using testing::run;

TEST_CASE("the canned backend answers TPM2_GetRandom itself and forwards the rest") {
    testing::TempDir tmp;
    CannedRandomBackend tpm(std::make_unique<LibtpmsBackend>(tmp.sub("st"), TpmVersion::v2_0));
    CHECK(tpm.version() == TpmVersion::v2_0);
    REQUIRE(tpm.power_cycle());
    auto r = run(tpm, Cmd(0x8001, 0x17B).u16(8).done());
    REQUIRE(r.size() == 20);
    CHECK(be16(r, 0) == 0x8001);
    CHECK(be32(r, 2) == 20);
    CHECK(be32(r, 6) == 0);  // success, though the TPM was not started: it never saw the command
    CHECK(be16(r, 10) == 8);
    CHECK(run(tpm, Cmd(0x8001, 0x17B).u16(64).done()).size() == 12 + 32);  // at most a digest, as a TPM
    r = run(tpm, Cmd(0x8001, 0x144).u16(0).done());  // TPM2_Startup(CLEAR): the real TPM
    REQUIRE(r.size() == 10);
    CHECK(be32(r, 6) == 0);
    r = run(tpm, Cmd(0x8001, 0x144).u16(0).done());
    CHECK(be32(r, 6) == 0x100);  // TPM_RC_INITIALIZE: started already
}

TEST_CASE("the delayed backend takes its delay for every command and forwards it") {
    testing::TempDir tmp;
    DelayedBackend tpm(std::make_unique<LibtpmsBackend>(tmp.sub("st"), TpmVersion::v2_0), std::chrono::milliseconds(20));
    REQUIRE(tpm.power_cycle());
    for (uint16_t expected_rc : {0x000, 0x100}) {  // Startup(CLEAR) twice: success, then TPM_RC_INITIALIZE
        const auto start = std::chrono::steady_clock::now();
        const auto r = run(tpm, Cmd(0x8001, 0x144).u16(0).done());
        CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(20));
        REQUIRE(r.size() == 10);
        CHECK(be32(r, 6) == expected_rc);
    }
}
