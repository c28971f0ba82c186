// CannedRandomBackend (minivmm-testhooks' floor backend) over the real libtpms: TPM2_GetRandom is
// answered from memory, well-formed and before TPM2_Startup (the real TPM would say
// TPM_RC_INITIALIZE), every other command reaches the TPM.
#include <doctest/doctest.h>

#include <memory>
#include <vector>

#include "temp_dir.hpp"
#include "tpm_command.hpp"
#include "vmm/tpm/canned_random_backend.hpp"
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
