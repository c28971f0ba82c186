// TpmTis command path: QEMU's check_transmit qtest for TPM 2.0 and 1.2, and the STS/FIFO state
// machine's bad paths (wrong-state FIFO writes, over-long commands and responses, reads past the
// response, completions with no command), cancel, resetEstablishment, selfTestDone.
#include <doctest/doctest.h>

#include "tpm_tis_fakes.hpp"

using namespace minivmm;
using namespace minivmm::test;

namespace {

std::vector<uint8_t> command_of_size(uint32_t header_size, size_t actual) {
    std::vector<uint8_t> c(actual, 0x5A);
    const uint8_t hdr[] = {0x80, 0x01, uint8_t(header_size >> 24), uint8_t(header_size >> 16),
                           uint8_t(header_size >> 8), uint8_t(header_size), 0x00, 0x00, 0x01, 0x7B};
    for (size_t i = 0; i < sizeof hdr && i < actual; ++i) c[i] = hdr[i];
    return c;
}

}  // namespace

TEST_CASE("tis: check_transmit (TPM2_Startup byte by byte, response read back)") {
    for (TpmVersion v : {TpmVersion::v2_0, TpmVersion::v1_2}) {
        CAPTURE(static_cast<int>(v));
        const uint32_t family = v == TpmVersion::v2_0 ? 0x04000000 : 0;
        FakeTpmBackend be(v);
        TpmTis tis(be, nullptr);
        writeb(tis, reg(0, kAccess), 0x02);
        CHECK(readb(tis, reg(0, kAccess)) == 0xA1);
        uint32_t sts = readl(tis, reg(0, kSts));
        CHECK((sts & 0xFF) == 0);
        CHECK((sts & 0x0C000000) == family);
        uint32_t bcount = (sts >> 8) & 0xFFFF;
        CHECK(bcount == 4096);
        writel(tis, reg(0, kSts), 0x40);
        CHECK((readl(tis, reg(0, kSts)) & 0xFF) == 0x40);
        for (size_t i = 0; i < kStartup.size(); ++i) {
            writeb(tis, reg(0, kFifo), kStartup[i]);
            sts = readl(tis, reg(0, kSts));
            CHECK((sts & 0xFF) == (i < kStartup.size() - 1 ? 0x88 : 0x80));  // expect until the last byte
            const uint32_t b = (sts >> 8) & 0xFFFF;
            CHECK(b == bcount - 1);
            bcount = b;
        }
        CHECK(be.submits.empty());
        writeb(tis, reg(0, kSts), 0x20);
        REQUIRE(be.submits.size() == 1);
        CHECK(be.submits[0].locality == 0);
        CHECK(be.submits[0].command == kStartup);
        // Execution: neither dataAvail nor commandReady; FIFO reads give nothing.
        CHECK(readl(tis, reg(0, kSts)) == (family | (4084u << 8) | 0x80));
        CHECK(readb(tis, reg(0, kFifo)) == 0xFF);
        tis.command_completed(kOkResponse);
        sts = readl(tis, reg(0, kSts));
        CHECK((sts & 0xFF) == 0x90);
        bcount = (sts >> 8) & 0xFFFF;
        CHECK(bcount == 10);
        std::vector<uint8_t> got;
        for (int i = 0; i < 10; ++i) {
            got.push_back(readb(tis, reg(0, kFifo)));
            sts = readl(tis, reg(0, kSts));
            if (sts & 0x10) {
                CHECK(((sts >> 8) & 0xFFFF) == bcount - 1);
                bcount = (sts >> 8) & 0xFFFF;
            }
        }
        CHECK(got == kOkResponse);
        CHECK((readl(tis, reg(0, kSts)) & 0xFF) == 0x80);  // dataAvail cleared after the last byte
        writeb(tis, reg(0, kSts), 0x40);                    // Completion -> Ready
        CHECK((readl(tis, reg(0, kSts)) & 0xFF) == 0x40);
        writeb(tis, reg(0, kAccess), 0x20);
        CHECK(readb(tis, reg(0, kAccess)) == 0x81);
    }
}

TEST_CASE("tis: STS byte reads clamp burstCount, wider FIFO accesses move that many bytes") {
    FakeTpmBackend be;
    TpmTis tis(be, nullptr);
    writeb(tis, reg(0, kAccess), 0x02);
    CHECK(readl(tis, reg(0, kSts)) == 0x04100000u);
    CHECK(readb(tis, reg(0, kSts + 1)) == 0xFF);
    CHECK(readb(tis, reg(0, kSts + 2)) == 0x00);
    CHECK(readb(tis, reg(0, kSts + 3)) == 0x04);
    CHECK(read_n(tis, reg(0, kSts + 2), 2) == 0x0410u);  // the clamp is for byte reads only

    writeb(tis, reg(0, kSts), 0x40);
    writel(tis, reg(0, kFifo), 0x00000180);  // bytes 80 01 00 00, LSB first
    write_n(tis, reg(0, kXFifo + 4), 0x0C00, 2);  // 00 0c via the extended FIFO
    write_n(tis, reg(0, 0xB8), 0x4401000000000000ull, 8);  // 00 00 00 00 00 00 01 44: 8 bytes, buffer full at 12
    CHECK((readb(tis, reg(0, kSts)) & 0xFF) == 0x80);
    writeb(tis, reg(0, kSts), 0x20);
    REQUIRE(be.submits.size() == 1);
    // The 8-byte write stored all its bytes (4-byte halves) before paramSize was checked.
    CHECK(be.submits[0].command.size() == 14);
    CHECK(std::vector<uint8_t>(be.submits[0].command.begin(), be.submits[0].command.begin() + 6) ==
          std::vector<uint8_t>{0x80, 0x01, 0x00, 0x00, 0x00, 0x0C});
    tis.command_completed(kOkResponse);
    CHECK(readl(tis, reg(0, kFifo)) == 0x00000180u);
    CHECK(read_n(tis, reg(0, kXFifo + 0x10), 8) == 0xFFFF000000000A00ull);  // 6 bytes left, then 0xFF
    CHECK(readl(tis, reg(0, kFifo)) == 0xFFFFFFFFu);
}

TEST_CASE("tis: FIFO writes in the wrong state are dropped") {
    FakeTpmBackend be;
    TpmTis tis(be, nullptr);
    writeb(tis, reg(0, kAccess), 0x02);
    // Idle (no commandReady yet).
    for (uint8_t b : kStartup) writeb(tis, reg(0, kFifo), b);
    CHECK(readl(tis, reg(0, kSts)) == 0x04100000u);
    writeb(tis, reg(0, kSts), 0x20);  // tpmGo outside Reception: ignored
    CHECK(be.submits.empty());
    // Execution.
    send_command(tis, 0, kStartup);
    REQUIRE(be.submits.size() == 1);
    writeb(tis, reg(0, kFifo), 0x77);
    CHECK(readl(tis, reg(0, kSts)) == (0x04000000u | (4084u << 8) | 0x80));
    // Completion: the response stays intact.
    tis.command_completed(kOkResponse);
    writeb(tis, reg(0, kFifo), 0x77);
    CHECK(read_response(tis, 0, 10) == kOkResponse);
    // A FIFO write from a locality that is not active changes nothing.
    writeb(tis, reg(1, kSts), 0x40);
    writeb(tis, reg(1, kFifo), 0x80);
    CHECK(readl(tis, reg(1, kSts)) == 0xFFFFFFFFu);
    CHECK(readl(tis, reg(1, kFifo)) == 0xFFFFFFFFu);
    CHECK((readb(tis, reg(0, kSts)) & 0xFF) == 0x80);
    CHECK(be.submits.size() == 1);
}

TEST_CASE("tis: tpmGo while expect is set is ignored; commandReady in Ready restarts the command") {
    FakeTpmBackend be;
    TpmTis tis(be, nullptr);
    writeb(tis, reg(0, kAccess), 0x02);
    writeb(tis, reg(0, kSts), 0x40);
    for (int i = 0; i < 8; ++i) writeb(tis, reg(0, kFifo), kStartup[i]);
    writeb(tis, reg(0, kSts), 0x20);
    CHECK(be.submits.empty());
    writeb(tis, reg(0, kSts), 0x60);  // commandReady|tpmGo together: no effect
    CHECK((readb(tis, reg(0, kSts)) & 0xFF) == 0x88);
    writeb(tis, reg(0, kSts), 0x40);  // Reception: abort back to Ready
    CHECK((readb(tis, reg(0, kSts)) & 0xFF) == 0x40);
    CHECK(readl(tis, reg(0, kSts)) == 0x04100040u);
    for (uint8_t b : kStartup) writeb(tis, reg(0, kFifo), b);
    writeb(tis, reg(0, kSts), 0x20);
    REQUIRE(be.submits.size() == 1);
    CHECK(be.submits[0].command == kStartup);
}

TEST_CASE("tis: commands longer than the header or the buffer are bounded") {
    SUBCASE("bytes after paramSize are dropped") {
        FakeTpmBackend be;
        TpmTis tis(be, nullptr);
        auto cmd = kStartup;
        cmd.push_back(0xEE);
        cmd.push_back(0xEE);
        send_command(tis, 0, cmd);
        REQUIRE(be.submits.size() == 1);
        CHECK(be.submits[0].command == kStartup);
    }
    SUBCASE("a paramSize above the buffer stops at the buffer size") {
        FakeTpmBackend be;
        TpmTis tis(be, nullptr);
        const auto cmd = command_of_size(0x2000, 4096 + 50);
        writeb(tis, reg(0, kAccess), 0x02);
        writeb(tis, reg(0, kSts), 0x40);
        for (size_t i = 0; i < cmd.size(); ++i) {
            writeb(tis, reg(0, kFifo), cmd[i]);
            if (i == 4094) CHECK((readb(tis, reg(0, kSts)) & 0xFF) == 0x88);
        }
        CHECK(readl(tis, reg(0, kSts)) == 0x04000080u);  // expect cleared, burstCount 0
        writeb(tis, reg(0, kSts), 0x20);
        REQUIRE(be.submits.size() == 1);
        CHECK(be.submits[0].command.size() == 4096);
    }
    SUBCASE("a small backend buffer bounds commands and burstCount") {
        FakeTpmBackend be(TpmVersion::v2_0, 128);
        TpmTis tis(be, nullptr);
        writeb(tis, reg(0, kAccess), 0x02);
        CHECK(readl(tis, reg(0, kSts)) == 0x04008000u);
        CHECK(readb(tis, reg(0, kSts + 1)) == 0x80);
        send_command(tis, 0, command_of_size(200, 200));
        REQUIRE(be.submits.size() == 1);
        CHECK(be.submits[0].command.size() == 128);
    }
    SUBCASE("a backend buffer above 4096 is capped at the TIS buffer") {
        FakeTpmBackend be(TpmVersion::v2_0, 1 << 20);
        TpmTis tis(be, nullptr);
        writeb(tis, reg(0, kAccess), 0x02);
        CHECK(readl(tis, reg(0, kSts)) == 0x04100000u);
    }
}

TEST_CASE("tis: responses: reads past the end, responseRetry, over-long, short and garbage") {
    FakeTpmBackend be;
    TpmTis tis(be, nullptr);
    send_command(tis, 0, kStartup);
    SUBCASE("reads past the response give 0xFF and leave dataAvail clear; responseRetry re-reads") {
        tis.command_completed(kOkResponse);
        CHECK(read_response(tis, 0, 10) == kOkResponse);
        for (int i = 0; i < 5; ++i) CHECK(readb(tis, reg(0, kFifo)) == 0xFF);
        CHECK(readl(tis, reg(0, kSts)) == 0x04000000u + (4086u << 8) + 0x80);  // burst: room after 10 bytes
        writeb(tis, reg(0, kSts), 0x02);
        CHECK((readl(tis, reg(0, kSts)) & 0xFFFFFF) == 0x000A90u);
        CHECK(read_response(tis, 0, 10) == kOkResponse);
    }
    SUBCASE("a response longer than the buffer is cut at 4096 bytes") {
        std::vector<uint8_t> big(8192, 0x33);
        big[0] = 0x80, big[1] = 0x01, big[2] = 0, big[3] = 0, big[4] = 0x20, big[5] = 0x00;  // paramSize 8192
        tis.command_completed(big);
        CHECK((readl(tis, reg(0, kSts)) >> 8 & 0xFFFF) == 4096u);
        const auto r = read_response(tis, 0, 4096);
        CHECK(std::vector<uint8_t>(r.begin(), r.begin() + 6) == std::vector<uint8_t>(big.begin(), big.begin() + 6));
        CHECK((readb(tis, reg(0, kSts)) & 0x10) == 0);
    }
    SUBCASE("bytes beyond paramSize are not readable") {
        auto rsp = kOkResponse;
        rsp.resize(40, 0xCC);
        tis.command_completed(rsp);
        CHECK(read_response(tis, 0, 11) == [] { auto v = kOkResponse; v.push_back(0xFF); return v; }());
    }
    SUBCASE("a response shorter than its paramSize is what the guest reads") {
        const std::vector<uint8_t> rsp = {0x80, 0x01, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00};
        tis.command_completed(rsp);
        CHECK((readl(tis, reg(0, kSts)) >> 8 & 0xFFFF) == 8u);
        CHECK(read_response(tis, 0, 9) == std::vector<uint8_t>{0x80, 0x01, 0, 0, 0, 0x20, 0, 0, 0xFF});
    }
    SUBCASE("a 3-byte or empty response") {
        tis.command_completed(std::vector<uint8_t>{1, 2, 3});
        CHECK(read_response(tis, 0, 4) == std::vector<uint8_t>{1, 2, 3, 0xFF});
        writeb(tis, reg(0, kSts), 0x40);
        send_command(tis, 0, kStartup);
        tis.command_completed({});
        CHECK((readb(tis, reg(0, kSts)) & 0xFF) == 0x90);
        CHECK(readb(tis, reg(0, kFifo)) == 0xFF);
        CHECK((readb(tis, reg(0, kSts)) & 0xFF) == 0x80);
    }
    SUBCASE("a paramSize of zero") {
        tis.command_completed(std::vector<uint8_t>{0x80, 0x01, 0, 0, 0, 0, 9, 9, 9, 9});
        CHECK(readb(tis, reg(0, kFifo)) == 0xFF);
        CHECK((readb(tis, reg(0, kSts)) & 0xFF) == 0x80);
    }
}

TEST_CASE("tis: command_completed with no command outstanding is ignored") {
    FakeTpmBackend be;
    TpmTis tis(be, nullptr);
    tis.command_completed(kOkResponse);  // nothing submitted at all
    writeb(tis, reg(0, kAccess), 0x02);
    CHECK(readl(tis, reg(0, kSts)) == 0x04100000u);
    CHECK(readb(tis, reg(0, kFifo)) == 0xFF);
    send_command(tis, 0, kStartup);
    tis.command_completed(kOkResponse);
    tis.command_completed(std::vector<uint8_t>(100, 0xAB));  // a second completion for one command
    CHECK(read_response(tis, 0, 10) == kOkResponse);
    CHECK_FALSE(tis.command_outstanding());
}

TEST_CASE("tis: commandCancel, and commandReady during execution, cancel and abort") {
    SUBCASE("commandCancel only in Execution, only for TPM 2.0") {
        FakeTpmBackend be;
        TpmTis tis(be, nullptr);
        writeb(tis, reg(0, kAccess), 0x02);
        writel(tis, reg(0, kSts), 0x01000000);
        CHECK(be.cancels == 0);
        send_command(tis, 0, kStartup);
        writeb(tis, reg(0, kSts + 3), 0x01);  // byte write of bit 24
        CHECK(be.cancels == 1);
        tis.command_completed(kOkResponse);  // a cancelled command still completes
        CHECK((readb(tis, reg(0, kSts)) & 0xFF) == 0x90);

        FakeTpmBackend be12(TpmVersion::v1_2);
        TpmTis tis12(be12, nullptr);
        send_command(tis12, 0, kStartup);
        writel(tis12, reg(0, kSts), 0x01000000);
        CHECK(be12.cancels == 0);
    }
    SUBCASE("commandReady in Execution aborts: Ready after the completion, response dropped") {
        FakeTpmBackend be;
        TpmTis tis(be, nullptr);
        send_command(tis, 0, kStartup);
        writeb(tis, reg(0, kSts), 0x40);
        CHECK(be.cancels == 1);
        tis.command_completed(kOkResponse);
        CHECK((readb(tis, reg(0, kSts)) & 0xFF) == 0x40);  // what Linux reads as "Operation Canceled"
        CHECK(readb(tis, reg(0, kFifo)) == 0xFF);
        CHECK(tis.active_locality() == 0);
    }
}

TEST_CASE("tis: resetEstablishment only from locality 3 of a TPM 2.0") {
    FakeTpmBackend be;
    TpmTis tis(be, nullptr);
    for (unsigned l : {0u, 3u}) {
        writeb(tis, reg(l, kAccess), 0x02);
        writel(tis, reg(l, kSts), 0x02000000);
        writeb(tis, reg(l, kAccess), 0x20);
    }
    CHECK(be.reset_established_calls == std::vector<uint8_t>{3});
    writel(tis, reg(4, kSts), 0x02000000);  // locality 4 writes are ignored
    writel(tis, reg(2, kSts), 0x02000000);  // not active
    CHECK(be.reset_established_calls.size() == 1);

    FakeTpmBackend be12(TpmVersion::v1_2);
    TpmTis tis12(be12, nullptr);
    writeb(tis12, reg(3, kAccess), 0x02);
    writel(tis12, reg(3, kSts), 0x02000000);
    CHECK(be12.reset_established_calls.empty());
}

TEST_CASE("tis: TPM 1.2 ContinueSelfTest success sets the sticky selfTestDone bit") {
    FakeTpmBackend be(TpmVersion::v1_2);
    TpmTis tis(be, nullptr);
    const std::vector<uint8_t> cst = {0x00, 0xC1, 0, 0, 0, 0x0A, 0, 0, 0, 0x53};
    send_command(tis, 0, cst);
    tis.command_completed(std::vector<uint8_t>{0x00, 0xC4, 0, 0, 0, 0x0A, 0, 0, 0, 0});
    CHECK((readb(tis, reg(0, kSts)) & 0x04) == 0x04);
    writeb(tis, reg(0, kSts), 0x40);
    CHECK((readb(tis, reg(0, kSts)) & 0xFF) == 0x44);
    writeb(tis, reg(0, kAccess), 0x20);
    writeb(tis, reg(2, kAccess), 0x02);
    CHECK((readb(tis, reg(2, kSts)) & 0xFF) == 0x04);  // all localities
    TpmTis after_reset(be, nullptr);  // a machine reset builds a new device (vmm/main.cpp)
    writeb(after_reset, reg(2, kAccess), 0x02);
    CHECK((readb(after_reset, reg(2, kSts)) & 0xFF) == 0x00);
}
