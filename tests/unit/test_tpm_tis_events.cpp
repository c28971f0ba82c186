// TpmTis interrupts, INTERFACE_ID, reset with a command in flight, cross-locality tpmGo, and
// every access size (1, 2, 4, 8 and odd) at every offset of every locality page.
#include <doctest/doctest.h>

#include <set>

#include "tpm_tis_fakes.hpp"

using namespace minivmm;
using namespace minivmm::test;

namespace {

bool is_register_word(uint32_t w) {
    static const std::set<uint32_t> regs = {kAccess, kIntEnable, kIntVector, kIntStatus, kIntfCapability,
                                            kSts, kFifo, kInterfaceId, kDidVid, kRid};
    return regs.count(w) != 0 || (w >= kXFifo && w <= 0xBC);
}

}  // namespace

TEST_CASE("tis: interrupts are latched in INT_STATUS and drive the IrqLine when enabled") {
    FakeTpmBackend be;
    RecordingIrq irq;
    TpmTis tis(be, &irq);
    writel(tis, reg(0, kIntEnable), 0xFFFFFFFF);  // not active: ignored
    CHECK(readl(tis, reg(0, kIntEnable)) == 0x00000008u);
    writeb(tis, reg(0, kAccess), 0x02);
    CHECK(irq.levels.empty());  // interrupts were disabled when the locality changed
    writel(tis, reg(0, kIntEnable), 0xFFFFFFFF);
    CHECK(readl(tis, reg(0, kIntEnable)) == 0x8000009Fu);  // only the writable bits
    writeb(tis, reg(0, kSts), 0x40);  // Idle -> Ready
    CHECK(irq.level);
    CHECK(readl(tis, reg(0, kIntStatus)) == 0x80u);
    writel(tis, reg(1, kIntStatus), 0x80);  // another locality: ignored
    CHECK(irq.level);
    writel(tis, reg(0, kIntStatus), 0x80);  // write 1 to clear
    CHECK_FALSE(irq.level);
    CHECK(readl(tis, reg(0, kIntStatus)) == 0u);
    for (uint8_t b : kStartup) writeb(tis, reg(0, kFifo), b);
    writeb(tis, reg(0, kSts), 0x20);
    CHECK_FALSE(irq.level);
    tis.command_completed(kOkResponse);
    CHECK(irq.level);
    CHECK(readl(tis, reg(0, kIntStatus)) == 0x03u);  // dataAvail | stsValid
    writeb(tis, reg(0, kIntStatus), 0x01);
    CHECK(irq.level);  // stsValid still pending
    writeb(tis, reg(0, kIntStatus), 0x02);
    CHECK_FALSE(irq.level);
    read_response(tis, 0, 10);  // the last byte raises stsValid
    CHECK(irq.level);
    CHECK(readl(tis, reg(0, kIntStatus)) == 0x02u);
    writel(tis, reg(0, kIntStatus), 0xFFFFFFFF);
    CHECK_FALSE(irq.level);
    CHECK(irq.levels == std::vector<bool>{true, false, true, false, true, false});

    // localityChange is raised on the new owner if it had enabled it.
    writeb(tis, reg(0, kAccess), 0x20);
    writeb(tis, reg(1, kAccess), 0x02);
    writel(tis, reg(1, kIntEnable), 0x80000004);
    writeb(tis, reg(1, kAccess), 0x20);
    CHECK_FALSE(irq.level);
    writeb(tis, reg(1, kAccess), 0x02);
    CHECK(irq.level);
    CHECK(readl(tis, reg(1, kIntStatus)) == 0x04u);
    CHECK(readb(tis, reg(1, kIntVector)) == 5);
    writel(tis, reg(1, kIntVector), 9);  // hard-wired
    CHECK(readb(tis, reg(1, kIntVector)) == 5);
}

TEST_CASE("tis: the first command after the guest enables the interrupt puts it on trial, once") {
    FakeTpmBackend be;
    RecordingIrq irq;
    TpmTis tis(be, &irq);
    // As Linux: commandReady after each response (tpm_tis_ready), so the next command starts in
    // Ready and only its completion can raise an interrupt; any latched event proves it.
    auto send = [&](uint8_t locty) {
        for (uint8_t b : kStartup) writeb(tis, reg(locty, kFifo), b);
        writeb(tis, reg(locty, kSts), 0x20);
        REQUIRE(tis.command_outstanding());
    };
    auto finish = [&](uint8_t locty) {
        tis.command_completed(kOkResponse);
        read_response(tis, locty, 10);
        writeb(tis, reg(locty, kSts), 0x40);
        writel(tis, reg(locty, kIntStatus), 0xFFFFFFFF);
    };
    writeb(tis, reg(0, kAccess), 0x02);
    writeb(tis, reg(0, kSts), 0x40);
    send(0);  // polled, as firmware and Linux's first commands: no trial
    CHECK_FALSE(tis.interrupt_on_trial());
    finish(0);
    // Linux's probe (tpm_tis_probe_irq_single): global enable with dataAvail among its events.
    writel(tis, reg(0, kIntEnable), 0x80000004);  // localityChange only: completion raises nothing
    send(0);
    CHECK_FALSE(tis.interrupt_on_trial());
    finish(0);
    writel(tis, reg(0, kIntEnable), 0x00000000);
    writel(tis, reg(0, kIntEnable), 0x80000087);
    CHECK_FALSE(tis.interrupt_on_trial());  // no command executing
    send(0);
    CHECK(tis.interrupt_on_trial());
    tis.command_completed(kOkResponse);  // raises dataAvail: the interrupt has shown itself
    CHECK_FALSE(tis.interrupt_on_trial());
    read_response(tis, 0, 10);
    writeb(tis, reg(0, kSts), 0x40);
    writel(tis, reg(0, kIntStatus), 0xFFFFFFFF);
    send(0);
    CHECK_FALSE(tis.interrupt_on_trial());  // proven until the guest turns the interrupt on again
    finish(0);
    writel(tis, reg(0, kIntEnable), 0x80000087);  // already on: still proven
    send(0);
    CHECK_FALSE(tis.interrupt_on_trial());
    finish(0);
    writel(tis, reg(0, kIntEnable), 0x00000087);
    writel(tis, reg(0, kIntEnable), 0x80000087);  // off and on again (a resume): a new trial
    send(0);
    CHECK(tis.interrupt_on_trial());
    finish(0);
    writel(tis, reg(0, kIntEnable), 0x00000000);
    writel(tis, reg(0, kIntEnable), 0x80000002);  // stsValid alone: completion raises it too
    send(0);
    CHECK(tis.interrupt_on_trial());
    finish(0);
    writel(tis, reg(0, kIntEnable), 0x00000000);
    writel(tis, reg(0, kIntEnable), 0x80000087);  // on again, then a snapshot before any command:
    RecordingIrq irq2;                             // the restored guest's driver tested it already
    TpmTis restored(be, &irq2);
    REQUIRE(restored.load_state(saved_state(tis)));
    for (uint8_t b : kStartup) writeb(restored, reg(0, kFifo), b);
    writeb(restored, reg(0, kSts), 0x20);
    REQUIRE(restored.command_outstanding());
    CHECK_FALSE(restored.interrupt_on_trial());

    FakeTpmBackend be2;
    TpmTis polled(be2, nullptr);  // no interrupt line: never on trial
    writeb(polled, reg(0, kAccess), 0x02);
    writel(polled, reg(0, kIntEnable), 0x80000087);
    writeb(polled, reg(0, kSts), 0x40);
    for (uint8_t b : kStartup) writeb(polled, reg(0, kFifo), b);
    writeb(polled, reg(0, kSts), 0x20);
    CHECK_FALSE(polled.interrupt_on_trial());
}

TEST_CASE("tis: interrupts without an IrqLine (polled) are latched only") {
    FakeTpmBackend be;
    TpmTis tis(be, nullptr);
    writeb(tis, reg(0, kAccess), 0x02);
    writel(tis, reg(0, kIntEnable), 0x80000087);
    writeb(tis, reg(0, kSts), 0x40);
    CHECK(tis.irq_level());
    CHECK(readl(tis, reg(0, kIntStatus)) == 0x80u);
    writel(tis, reg(0, kIntStatus), 0x80);
    CHECK_FALSE(tis.irq_level());
}

TEST_CASE("tis: INTERFACE_ID IntfSelLock latches in every locality") {
    FakeTpmBackend be;
    TpmTis tis(be, nullptr);
    writel(tis, reg(0, kInterfaceId), 0);
    CHECK(readl(tis, reg(0, kInterfaceId)) == 0x00002100u);
    writel(tis, reg(0, kInterfaceId), 0x00080000);
    for (unsigned l = 0; l < 5; ++l) CHECK(readl(tis, reg(l, kInterfaceId)) == 0x00082100u);
    TpmTis after_reset(be, nullptr);  // a machine reset builds a new device (vmm/main.cpp)
    CHECK(readl(after_reset, reg(2, kInterfaceId)) == 0x00002100u);
}

TEST_CASE("tis: tpmGo from another locality while a command executes is refused") {
    FakeTpmBackend be;
    TpmTis tis(be, nullptr);
    send_command(tis, 0, kStartup);
    writeb(tis, reg(0, kAccess), 0x20);  // relinquish while executing, nobody waiting
    CHECK(tis.active_locality() == 0xFF);
    send_command(tis, 2, kStartup);
    CHECK(be.submits.size() == 1);
    tis.command_completed(kOkResponse);  // belongs to locality 0
    CHECK(tis.active_locality() == 2);
    writeb(tis, reg(2, kAccess), 0x20);
    writeb(tis, reg(0, kAccess), 0x02);
    CHECK((readb(tis, reg(0, kSts)) & 0xFF) == 0x90);
}

TEST_CASE("tis: every access size at every offset: no crash, all-ones where nothing is decoded") {
    // 1/2/4-byte accesses anywhere inside a 4-byte register word reach it (QEMU, and the PTP's
    // 16-bit burstCount at STS+1); accesses that cross a word, and unaligned 8-byte ones, don't.
    for (TpmVersion v : {TpmVersion::v2_0, TpmVersion::v1_2}) {
        FakeTpmBackend be(v);
        TpmTis tis(be, nullptr);
        writeb(tis, reg(1, kAccess), 0x02);  // locality 1 active, Idle: reads have no side effects
        for (unsigned l = 0; l < 5; ++l) {
            for (uint32_t off = 0; off < 0x1000; ++off) {
                const uint64_t a = reg(l, off);
                const uint32_t word = readl(tis, reg(l, off & 0xFFC));
                for (size_t n : {1u, 2u, 4u, 8u}) {
                    CAPTURE(l);
                    CAPTURE(off);
                    CAPTURE(n);
                    if (a + n > 0x5000) continue;
                    const uint64_t got = read_n(tis, a, n);
                    const uint64_t ones = n == 8 ? ~0ull : (1ull << (8 * n)) - 1;
                    if (n != 8 && (off & 3) + n > 4) {
                        CHECK(got == ones);  // crosses a register word: no register is reached
                    } else if (n == 8 && off % 8 != 0) {
                        CHECK(got == ones);
                    } else if (n == 8) {
                        CHECK(got == (uint64_t{readl(tis, a + 4)} << 32 | readl(tis, a)));
                    } else if (!is_register_word(off & 0xFFC)) {
                        CHECK(got == ones);
                    } else if ((off & 0xFFC) != kSts && (off & 0xFFC) != kFifo && (off < kXFifo || off > 0xBF)) {
                        CHECK(got == ((word >> ((off & 3) * 8)) & ones));  // narrow view of the word
                    }
                }
            }
        }
        CHECK(be.submits.empty());
        CHECK(tis.active_locality() == 1);
        CHECK(readl(tis, reg(1, kSts)) == (v == TpmVersion::v2_0 ? 0x04100000u : 0x00100000u));
        // Accesses beyond the window or of odd sizes are harmless too.
        uint8_t big[8];
        tis.read(0x5000, std::span<uint8_t>(big, 4));
        CHECK(load_le(std::span<const uint8_t>(big, 4)) == 0xFFFFFFFFu);
        tis.read(0x4FFE, std::span<uint8_t>(big, 4));
        CHECK(read_n(tis, reg(0, kAccess), 3) == 0xFFFFFFu);
        tis.write(0x5000, std::span<const uint8_t>(big, 4));
    }
}

TEST_CASE("tis: writes of every size and value pattern at every offset keep the device sane") {
    FakeTpmBackend be;
    RecordingIrq irq;
    TpmTis tis(be, &irq);
    for (uint64_t pattern : {0xFFFFFFFFFFFFFFFFull, 0x0123456789ABCDEFull, 0x0000000000000002ull}) {
        for (unsigned l = 0; l < 5; ++l) {
            for (uint32_t off = 0; off < 0x1000; ++off) {
                for (size_t n : {1u, 2u, 4u, 8u}) {
                    write_n(tis, reg(l, off), pattern, n);
                    if (tis.command_outstanding() && (off & 7) == 0) tis.command_completed(kOkResponse);
                }
            }
        }
    }
    CHECK(readl(tis, reg(2, kDidVid)) == 0x00011014u);
    CHECK((readb(tis, reg(0, kAccess)) & 0x80) == 0x80);
    if (tis.command_outstanding()) tis.command_completed(kOkResponse);
    // Whatever state the writes left, the device can still run a command.
    for (unsigned l = 0; l < 4; ++l) writeb(tis, reg(l, kAccess), 0x20);
    for (unsigned l = 0; l < 4; ++l) writeb(tis, reg(l, kAccess), 0x20);
    const size_t before = be.submits.size();
    send_command(tis, 0, kStartup);
    REQUIRE(be.submits.size() == before + 1);
    CHECK(be.submits.back().command == kStartup);
    tis.command_completed(kOkResponse);
    CHECK(read_response(tis, 0, 10) == kOkResponse);
}

TEST_CASE("tis: burstCount is readable as a 16-bit field at STS+1 (PTP TPM_STS_x), as Linux and QEMU do") {
    FakeTpmBackend be;
    TpmTis tis(be, nullptr);
    writeb(tis, reg(0, kAccess), 0x02);
    writeb(tis, reg(0, kSts), 0x40);  // commandReady
    const uint32_t sts = readl(tis, reg(0, kSts));
    const uint64_t burst = (sts >> 8) & 0xFFFF;
    CHECK(burst > 0xFF);  // the 4 KiB buffer: the 8-bit view is capped
    CHECK(read_n(tis, reg(0, kSts) + 1, 2) == burst);
    CHECK(read_n(tis, reg(0, kSts) + 1, 1) == 0xFF);
    CHECK(read_n(tis, reg(0, kSts) + 3, 2) == 0xFFFF);  // crosses into the next register word
}
