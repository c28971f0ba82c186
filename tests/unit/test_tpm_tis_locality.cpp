// TpmTis locality arbitration: QEMU's tpm-tis qtests (tests/qtest/tpm-tis-util.c:
// check_localities, check_access_reg, check_access_reg_seize, check_access_reg_release) for
// TPM 2.0 and 1.2, plus seize/relinquish while a command is in flight and locality 4.
#include <doctest/doctest.h>

#include "tpm_tis_fakes.hpp"

using namespace minivmm;
using namespace minivmm::test;

namespace {

constexpr uint8_t kValid = 0x80, kActive = 0x20, kBeenSeized = 0x10, kSeize = 0x08, kPending = 0x04,
                  kRequestUse = 0x02, kNotEstablished = 0x01;

}  // namespace

TEST_CASE("tis locality: check_localities (identification registers in every locality)") {
    for (TpmVersion v : {TpmVersion::v2_0, TpmVersion::v1_2}) {
        CAPTURE(static_cast<int>(v));
        FakeTpmBackend be(v);
        TpmTis tis(be, nullptr);
        const bool tpm2 = v == TpmVersion::v2_0;
        for (unsigned l = 0; l < 5; ++l) {
            CAPTURE(l);
            CHECK(readb(tis, reg(l, kAccess)) == 0x81);
            CHECK(readl(tis, reg(l, kIntfCapability)) == (tpm2 ? 0x30000697u : 0x20000697u));
            CHECK(readl(tis, reg(l, kInterfaceId)) == (tpm2 ? 0x00002100u : 0xFFFFFFFFu));
            CHECK(readl(tis, reg(l, kDidVid)) == 0x00011014u);
            CHECK(readl(tis, reg(l, kRid)) == 1u);
            CHECK(readl(tis, reg(l, kIntEnable)) == 0x00000008u);  // polarity low level
            CHECK(readb(tis, reg(l, kIntVector)) == 5);
            CHECK(readl(tis, reg(l, kSts)) == 0xFFFFFFFFu);  // no locality active yet
        }
    }
}

TEST_CASE("tis locality: tpmEstablishment reads the inverse of the backend flag") {
    FakeTpmBackend be;
    TpmTis tis(be, nullptr);
    CHECK(readb(tis, reg(0, kAccess)) == (kValid | kNotEstablished));
    be.est = true;
    CHECK(readb(tis, reg(0, kAccess)) == kValid);
}

TEST_CASE("tis locality: check_access_reg (request and relinquish in localities 0..3)") {
    for (TpmVersion v : {TpmVersion::v2_0, TpmVersion::v1_2}) {
        FakeTpmBackend be(v);
        TpmTis tis(be, nullptr);
        for (unsigned l = 0; l < 4; ++l) {
            CAPTURE(l);
            CHECK(readb(tis, reg(l, kAccess)) == 0x81);
            writeb(tis, reg(l, kAccess), kRequestUse);
            CHECK(readb(tis, reg(l, kAccess)) == 0xA1);
            CHECK(tis.active_locality() == l);
            writeb(tis, reg(l, kAccess), kActive);
            CHECK(readb(tis, reg(l, kAccess)) == 0x81);
            CHECK(tis.active_locality() == 0xFF);
        }
    }
}

TEST_CASE("tis locality: check_access_reg_seize (only a higher locality can seize)") {
    for (TpmVersion v : {TpmVersion::v2_0, TpmVersion::v1_2}) {
        FakeTpmBackend be(v);
        TpmTis tis(be, nullptr);
        for (unsigned locty = 0; locty < 4; ++locty) {
            CAPTURE(locty);
            uint8_t p = 0;
            CHECK(readb(tis, reg(locty, kAccess)) == 0x81);
            writeb(tis, reg(locty, kAccess), kRequestUse);
            CHECK(readb(tis, reg(locty, kAccess)) == 0xA1);
            // Lower localities request the TPM (pending) and may not seize it.
            for (unsigned l = 0; l < locty; ++l) {
                CHECK(readb(tis, reg(l, kAccess)) == (0x81 | p));
                writeb(tis, reg(l, kAccess), kRequestUse);
                CHECK(readb(tis, reg(l, kAccess)) == (0x83 | p));
                CHECK(readb(tis, reg(locty, kAccess)) == 0xA5);
                writeb(tis, reg(l, kAccess), kSeize);
                CHECK(readb(tis, reg(l, kAccess)) == (0x83 | p));
                CHECK(readb(tis, reg(locty, kAccess)) == 0xA5);
                p = kPending;
            }
            // Each higher locality seizes it from the one below.
            for (unsigned l = locty + 1; l < 4; ++l) {
                writeb(tis, reg(l, kAccess), kRequestUse);
                CHECK(readb(tis, reg(l, kAccess)) == (0x83 | p));
                CHECK(readb(tis, reg(l - 1, kAccess)) == (0xA5));
                writeb(tis, reg(l, kAccess), kSeize);
                CHECK(readb(tis, reg(l, kAccess)) == (0xA1 | p));
                CHECK(readb(tis, reg(l - 1, kAccess)) == (0x91 | p));
                writeb(tis, reg(l - 1, kAccess), kBeenSeized);
                CHECK(readb(tis, reg(l - 1, kAccess)) == (0x81 | p));
            }
            if (locty <= 1) p = 0;
            // Locality 3 releases; the highest remaining requester (locty-1 .. 0) takes over.
            writeb(tis, reg(3, kAccess), kActive);
            CHECK(readb(tis, reg(3, kAccess)) == (0x81 | p));
            for (int l = static_cast<int>(locty) - 1; l >= 0; --l) {
                CHECK(readb(tis, reg(l, kAccess)) == (0xA1 | p));
                writeb(tis, reg(l, kAccess), kActive);
                if (l == 1) p = 0;
            }
            for (unsigned l = 0; l < 4; ++l) CHECK(readb(tis, reg(l, kAccess)) == 0x81);
        }
    }
}

TEST_CASE("tis locality: check_access_reg_release (highest requester wins on release)") {
    for (TpmVersion v : {TpmVersion::v2_0, TpmVersion::v1_2}) {
        FakeTpmBackend be(v);
        TpmTis tis(be, nullptr);
        for (int locty = 3; locty >= 0; --locty) {
            CAPTURE(locty);
            uint8_t p = 0;
            CHECK(readb(tis, reg(locty, kAccess)) == 0x81);
            writeb(tis, reg(locty, kAccess), kRequestUse);
            CHECK(readb(tis, reg(locty, kAccess)) == 0xA1);
            for (int l = 0; l < 4; ++l) {
                if (l == locty) continue;
                writeb(tis, reg(l, kAccess), kRequestUse);
                CHECK(readb(tis, reg(l, kAccess)) == (0x83 | p));
                p = kPending;
            }
            writeb(tis, reg(locty, kAccess), kActive);
            for (int l = 3; l >= 0; --l) {
                if (l == locty) continue;
                CHECK(readb(tis, reg(l, kAccess)) == (0xA1 | p));
                writeb(tis, reg(l, kAccess), kActive);
                if (l == 1 || (locty <= 1 && l == 2)) p = 0;
                CHECK(readb(tis, reg(l, kAccess)) == (0x81 | p));
            }
        }
    }
}

TEST_CASE("tis locality: seize with no locality active, and a second seize, are handled") {
    FakeTpmBackend be;
    TpmTis tis(be, nullptr);
    writeb(tis, reg(2, kAccess), kSeize);  // nothing active: seize grants at once
    CHECK(tis.active_locality() == 2);
    CHECK(readb(tis, reg(2, kAccess)) == 0xA1);
    writeb(tis, reg(2, kAccess), kSeize);  // already the owner: ignored
    CHECK(readb(tis, reg(2, kAccess)) == 0xA1);
    writeb(tis, reg(1, kAccess), kSeize | kRequestUse);  // lower: ignored, and requestUse is dropped
    CHECK(readb(tis, reg(1, kAccess)) == 0x81);
    CHECK(tis.active_locality() == 2);
}

TEST_CASE("tis locality: seize during execution cancels, and the switch happens on completion") {
    FakeTpmBackend be;
    TpmTis tis(be, nullptr);
    send_command(tis, 0, kStartup);
    REQUIRE(be.submits.size() == 1);
    writeb(tis, reg(2, kAccess), kSeize);
    CHECK(be.cancels == 1);
    CHECK(tis.active_locality() == 0);  // still owned until the TPM answers
    CHECK(readb(tis, reg(0, kAccess)) == 0xA1);
    tis.command_completed(kOkResponse);
    CHECK(tis.active_locality() == 2);
    CHECK(readb(tis, reg(0, kAccess)) == 0x91);  // beenSeized
    CHECK(readb(tis, reg(2, kAccess)) == 0xA1);
    CHECK(readl(tis, reg(0, kSts)) == 0xFFFFFFFFu);  // no longer active
    CHECK(readb(tis, reg(2, kSts)) == 0x00);          // locality 2 is idle
}

TEST_CASE("tis locality: relinquish during reception with a requester aborts the command") {
    FakeTpmBackend be;
    TpmTis tis(be, nullptr);
    writeb(tis, reg(0, kAccess), kRequestUse);
    writeb(tis, reg(0, kSts), 0x40);
    for (int i = 0; i < 4; ++i) writeb(tis, reg(0, kFifo), kStartup[i]);
    writeb(tis, reg(1, kAccess), kRequestUse);
    CHECK(readb(tis, reg(0, kAccess)) == (0xA1 | kPending));
    writeb(tis, reg(0, kAccess), kActive);
    CHECK(be.cancels == 0);  // nothing executing: the abort is immediate
    CHECK(tis.active_locality() == 1);
    CHECK(readl(tis, reg(1, kSts)) == 0x04100000u);  // write offset reset: full burst count
    CHECK(be.submits.empty());
}

TEST_CASE("tis locality: locality 4 is read-only for software") {
    FakeTpmBackend be;
    TpmTis tis(be, nullptr);
    writeb(tis, reg(4, kAccess), kRequestUse);
    CHECK(tis.active_locality() == 0xFF);
    CHECK(readb(tis, reg(4, kAccess)) == 0x81);
    writeb(tis, reg(4, kAccess), kSeize);
    CHECK(tis.active_locality() == 0xFF);
    writeb(tis, reg(0, kAccess), kRequestUse);
    writeb(tis, reg(4, kAccess), kSeize);  // higher than 0, but a software write: ignored
    CHECK(tis.active_locality() == 0);
    writel(tis, reg(4, kInterfaceId), 0x00080000);
    CHECK(readl(tis, reg(0, kInterfaceId)) == 0x00002100u);
    CHECK(readl(tis, reg(4, kDidVid)) == 0x00011014u);
}
