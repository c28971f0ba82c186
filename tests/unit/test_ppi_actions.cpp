// carry_out_ppi_request (vmm/tpm/tpm_ppi_actions.hpp) on real TPMs: libtpms in-process and a real
// swtpm process, TPM 2.0 and 1.2. The TPM 2.0 cases give the TPM an owner password and disable
// TPM2_Clear (as an OS could) before the request, and check afterwards that the owner password
// is gone (TPMA_PERMANENT.ownerAuthSet, TPM 2.0 Part 2 §8.6).
#include <doctest/doctest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "devices/tpm_ppi.hpp"
#include "swtpm_process.hpp"
#include "tpm_command.hpp"
#include "vmm/tpm/libtpms_backend.hpp"
#include "vmm/tpm/swtpm_backend.hpp"
#include "vmm/tpm/tpm_message.hpp"
#include "vmm/tpm/tpm_ppi_actions.hpp"

using namespace minivmm;
using testing::be32;
using testing::Cmd;
using testing::run;

namespace {

uint32_t rc(const std::vector<uint8_t>& response) { return tpm_code(response); }

constexpr uint32_t kOwner = 0x40000001, kPlatform = 0x4000000C;

// TPMA_PERMANENT bit 0, ownerAuthSet (TPM2_GetCapability(TPM_CAP_TPM_PROPERTIES, TPM_PT_PERMANENT)).
bool owner_auth_set(TpmBackend& tpm) {
    auto r = run(tpm, Cmd(0x8001, 0x17A).u32(6).u32(0x200).u32(1).done());
    REQUIRE(rc(r) == 0);
    REQUIRE(be32(r, 19) == 0x200);  // header, moreData, capability, count, then the property
    return be32(r, 23) & 1;
}

// A started TPM 2.0 whose owner has a password and has disabled TPM2_Clear.
void give_owner_and_disable_clear(TpmBackend& tpm) {
    REQUIRE(tpm.power_cycle());
    REQUIRE(rc(run(tpm, Cmd(0x8001, 0x144).u16(0).done())) == 0);  // TPM2_Startup(CLEAR)
    // TPM2_HierarchyChangeAuth(TPM_RH_OWNER, "secret")
    REQUIRE(rc(run(tpm, Cmd(0x8002, 0x129).u32(kOwner).password_session().u16(6).bytes({'s', 'e', 'c', 'r', 'e', 't'})
                            .done())) == 0);
    // TPM2_ClearControl(TPM_RH_PLATFORM, YES)
    REQUIRE(rc(run(tpm, Cmd(0x8002, 0x127).u32(kPlatform).password_session().u8(1).done())) == 0);
    CHECK(owner_auth_set(tpm));
}

void check_clear_tpm2(TpmBackend& tpm) {
    give_owner_and_disable_clear(tpm);
    // At the next power-on, before the firmware: the request runs on the power-cycled TPM.
    REQUIRE(tpm.power_cycle());
    CHECK(carry_out_ppi_request(tpm, ppi::kOpClear) == ppi::kSuccess);
    REQUIRE(tpm.power_cycle());
    REQUIRE(rc(run(tpm, Cmd(0x8001, 0x144).u16(0).done())) == 0);  // the firmware's TPM2_Startup works
    CHECK_FALSE(owner_auth_set(tpm));

    // The other Clear operations do the same.
    for (uint32_t op : {ppi::kOpEnableClear, ppi::kOpEnableActivateClear, ppi::kOpEnableActivateClearEnableActivate}) {
        CAPTURE(op);
        give_owner_and_disable_clear(tpm);
        REQUIRE(tpm.power_cycle());
        CHECK(carry_out_ppi_request(tpm, op) == ppi::kSuccess);
        REQUIRE(tpm.power_cycle());
        REQUIRE(rc(run(tpm, Cmd(0x8001, 0x144).u16(0).done())) == 0);
        CHECK_FALSE(owner_auth_set(tpm));
    }

    // The TPM's own error comes back as the response: on a TPM that is already started,
    // TPM2_Startup answers TPM_RC_INITIALIZE (0x100).
    CHECK(carry_out_ppi_request(tpm, ppi::kOpClear) == 0x100);
    // An operation that is not offered: firmware failure, the TPM untouched.
    CHECK(carry_out_ppi_request(tpm, 23) == ppi::kResponseFirmwareFailure);
    CHECK(carry_out_ppi_request(tpm, ppi::kOpNone) == ppi::kResponseFirmwareFailure);
}

struct Tpm12Flags {
    bool disabled, deactivated;
};

// TPM_PERMANENT_FLAGS (TPM 1.2 Part 2 §7.1) of a started TPM 1.2: TPM_GetCapability(TPM_CAP_FLAG,
// TPM_CAP_FLAG_PERMANENT); after the header and respSize: tag, disable, ownership, deactivated, ...
Tpm12Flags tpm12_flags(TpmBackend& tpm) {
    auto r = run(tpm, Cmd(0x00C1, 0x65).u32(4).u32(4).u32(0x108).done());
    REQUIRE(rc(r) == 0);
    REQUIRE(r.size() > 18);
    return {r[16] != 0, r[18] != 0};
}

// TPM 1.2 operations in a row, each followed by a power cycle and the firmware's TPM_Startup.
// TPM_ForceClear leaves the TPM disabled and deactivated, and fails on a deactivated TPM; only
// operation 22 ends with it enabled and active.
void check_tpm12(TpmBackend& tpm) {
    struct Step {
        uint32_t op, response;
        bool disabled, deactivated;
    };
    const Step steps[] = {
        {ppi::kOpClear, 0, true, true},
        {ppi::kOpEnableClear, 6, false, true},  // TPM_DEACTIVATED: enabled, but no clear
        {ppi::kOpEnableActivateClearEnableActivate, 0, false, false},
        {ppi::kOpEnableClear, 0, true, true},
        {ppi::kOpEnableActivateClear, 0, true, true},  // activated first, so the clear ran
        {ppi::kOpEnableActivateClearEnableActivate, 0, false, false},
    };
    for (const Step& s : steps) {
        CAPTURE(s.op);
        REQUIRE(tpm.power_cycle());
        CHECK(carry_out_ppi_request(tpm, s.op) == s.response);
        REQUIRE(tpm.power_cycle());
        REQUIRE(rc(run(tpm, Cmd(0x00C1, 0x99).u16(1).done())) == 0);  // TPM_Startup(ST_CLEAR)
        Tpm12Flags f = tpm12_flags(tpm);
        CHECK(f.disabled == s.disabled);
        CHECK(f.deactivated == s.deactivated);
    }
}

}  // namespace

TEST_CASE("PPI operations offered per TPM version") {
    CHECK(ppi_operations(TpmVersion::v2_0) == std::set<uint32_t>{5, 14, 21, 22});
    CHECK(ppi_operations(TpmVersion::v1_2) == std::set<uint32_t>{5, 14, 21, 22});
    CHECK(ppi_operation_name(21) == "Enable + Activate + Clear");
    CHECK(ppi_operation_name(99) == "operation 99");
}

TEST_CASE("PPI operations on libtpms (TPM 2.0 and 1.2)") {
    testing::TempDir dir;
    {
        LibtpmsBackend tpm((dir.path / "tpm2").string(), TpmVersion::v2_0);
        check_clear_tpm2(tpm);
    }
    {
        LibtpmsBackend tpm((dir.path / "tpm12").string(), TpmVersion::v1_2);
        check_tpm12(tpm);
    }
}

TEST_CASE("PPI operations on a real swtpm (TPM 2.0 and 1.2)") {
    if (!testing::swtpm_available("test_ppi_actions")) return;
    {
        testing::SwtpmProcess proc(true);
        auto tpm = SwtpmBackend::connect(proc.sock, std::chrono::milliseconds(5000));
        check_clear_tpm2(*tpm);
        tpm->shutdown();
    }
    {
        testing::SwtpmProcess proc(false);
        auto tpm = SwtpmBackend::connect(proc.sock, std::chrono::milliseconds(5000));
        check_tpm12(*tpm);
        tpm->shutdown();
    }
}
