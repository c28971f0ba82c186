// TpmPpi (devices/tpm_ppi.hpp): the Physical Presence Interface mailbox, driven the way the _DSM
// of acpi/tpm_ppi_aml.cpp drives it (revision, arguments, then the function index; then results).
#include <doctest/doctest.h>

#include <array>
#include <cstdint>

#include "devices/device.hpp"
#include "devices/tpm_ppi.hpp"

using namespace minivmm;

namespace {

uint32_t rd(TpmPpi& p, uint64_t offset) {
    std::array<uint8_t, 4> b{};
    p.read(offset, b);
    return static_cast<uint32_t>(load_le(b));
}

void wr(TpmPpi& p, uint64_t offset, uint32_t value) {
    std::array<uint8_t, 4> b{};
    store_le(b, value);
    p.write(offset, b);
}

struct Result {
    uint32_t ret0, ret1, ret2;
};

// One _DSM call: Arg1 = revision, Arg3 = {op, param}, Arg2 = function.
Result dsm(TpmPpi& p, uint32_t function, uint32_t revision = 1, uint32_t op = 0, uint32_t param = 0) {
    wr(p, ppi::kRev, revision);
    wr(p, ppi::kOp, op);
    wr(p, ppi::kParam, param);
    wr(p, ppi::kFunc, function);
    return {rd(p, ppi::kRet0), rd(p, ppi::kRet1), rd(p, ppi::kRet2)};
}

TpmPpi tpm2_ppi() { return TpmPpi({5, 14, 21, 22}); }

}  // namespace

TEST_CASE("PPI: nothing pending and no recent request at first") {
    TpmPpi p = tpm2_ppi();
    CHECK_FALSE(p.pending());
    Result r = dsm(p, ppi::kFnGetRequest);
    CHECK((r.ret0 == 0 && r.ret1 == 0));
    r = dsm(p, ppi::kFnGetResponse);
    CHECK((r.ret0 == 0 && r.ret1 == 0 && r.ret2 == 0));  // Linux: "0: No Recent Request"
    CHECK(dsm(p, ppi::kFnTransitionAction).ret0 == ppi::kActionReboot);
    CHECK(dsm(p, ppi::kFnSubmitLanguage).ret0 == ppi::kNotImplemented);
}

TEST_CASE("PPI: submit (function 7, as Linux does), read back, carry out, response") {
    TpmPpi p = tpm2_ppi();
    CHECK(dsm(p, ppi::kFnSubmitRequest2, 1, ppi::kOpClear).ret0 == ppi::kSuccess);
    REQUIRE(p.pending());
    CHECK(p.pending()->operation == 5);
    CHECK(p.pending()->parameter == 0);
    Result r = dsm(p, ppi::kFnGetRequest);
    CHECK((r.ret0 == 0 && r.ret1 == 5));
    // Still the previous (no) response until the request has run.
    CHECK(dsm(p, ppi::kFnGetResponse).ret1 == 0);
    p.complete(0);
    CHECK_FALSE(p.pending());
    CHECK(dsm(p, ppi::kFnGetRequest).ret1 == 0);
    r = dsm(p, ppi::kFnGetResponse);
    CHECK((r.ret0 == 0 && r.ret1 == 5 && r.ret2 == 0));  // "5 0: Success"
    // A failure is reported as given: a TPM error code, or the firmware-failure value.
    dsm(p, ppi::kFnSubmitRequest2, 1, ppi::kOpEnableActivateClear);
    p.complete(0x98E);
    r = dsm(p, ppi::kFnGetResponse);
    CHECK((r.ret1 == 21 && r.ret2 == 0x98E));
}

TEST_CASE("PPI: function 2 (PPI 1.0) and revision 2 with a parameter") {
    TpmPpi p = tpm2_ppi();
    CHECK(dsm(p, ppi::kFnSubmitRequest, 1, ppi::kOpEnableClear).ret0 == ppi::kSuccess);
    CHECK(p.pending()->operation == 14);
    CHECK(dsm(p, ppi::kFnSubmitRequest2, 2, ppi::kOpClear, 7).ret0 == ppi::kSuccess);
    CHECK(p.pending()->parameter == 7);
    Result r = dsm(p, ppi::kFnGetRequest, 2);
    CHECK((r.ret1 == 5 && r.ret2 == 7));
    // Revision 1 of function 7 takes no parameter.
    dsm(p, ppi::kFnSubmitRequest2, 1, ppi::kOpClear, 9);
    CHECK(p.pending()->parameter == 0);
}

TEST_CASE("PPI: unsupported operations are refused and leave the pending request alone") {
    TpmPpi p = tpm2_ppi();
    dsm(p, ppi::kFnSubmitRequest2, 1, ppi::kOpClear);
    for (uint32_t op : {1u, 2u, 23u, 128u, 0xFFFF'FFFFu}) {
        CAPTURE(op);
        CHECK(dsm(p, ppi::kFnSubmitRequest2, 1, op).ret0 == ppi::kNotSupported);
        CHECK(dsm(p, ppi::kFnSubmitRequest, 1, op).ret0 == ppi::kNotSupported);
        CHECK(dsm(p, ppi::kFnUserConfirmation, 1, op).ret0 == ppi::kConfirmNotImplemented);
    }
    CHECK(p.pending()->operation == 5);
    // Operation 0 cancels it.
    CHECK(dsm(p, ppi::kFnSubmitRequest2, 1, ppi::kOpNone).ret0 == ppi::kSuccess);
    CHECK_FALSE(p.pending());
}

TEST_CASE("PPI: function 8 says which operations run without a physically present user") {
    TpmPpi p = tpm2_ppi();
    for (uint32_t op : {0u, 5u, 14u, 21u, 22u}) CHECK(dsm(p, ppi::kFnUserConfirmation, 1, op).ret0 == 4);
    TpmPpi tpm12({5});
    CHECK(dsm(tpm12, ppi::kFnUserConfirmation, 1, 5).ret0 == 4);
    CHECK(dsm(tpm12, ppi::kFnUserConfirmation, 1, 14).ret0 == 0);
}

TEST_CASE("PPI: bad accesses and unknown functions change nothing") {
    TpmPpi p = tpm2_ppi();
    dsm(p, ppi::kFnSubmitRequest2, 1, ppi::kOpClear);
    // Not an aligned dword, or beyond the registers: reads 0, writes ignored.
    std::array<uint8_t, 2> two{0xFF, 0xFF};
    p.read(ppi::kRet0, two);
    CHECK((two[0] == 0 && two[1] == 0));
    std::array<uint8_t, 4> four{};
    store_le(four, ppi::kFnSubmitRequest2);
    p.write(ppi::kFunc + 1, four);
    p.write(ppi::kRegisterBlockSize, four);
    p.write(0x3FC, four);
    std::array<uint8_t, 8> eight{};
    p.write(ppi::kFunc, eight);
    p.read(0x3FC, four);
    CHECK(load_le(four) == 0);
    // Results are read-only.
    wr(p, ppi::kRet1, 99);
    CHECK(rd(p, ppi::kRet1) != 99);
    // Functions outside 2..8 (0 and 1 are the AML's): general failure.
    CHECK(dsm(p, 0).ret0 == ppi::kGeneralFailure);
    CHECK(dsm(p, 9).ret0 == ppi::kGeneralFailure);
    CHECK(dsm(p, 0xFFFF'FFFF).ret0 == ppi::kGeneralFailure);
    CHECK(p.pending()->operation == 5);
    CHECK(rd(p, ppi::kFunc) == 0xFFFF'FFFF);
}
