#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "devices/acpi_pm.hpp"
#include "devices/boot_marker.hpp"
#include "devices/debug_port.hpp"
#include "devices/reset_control.hpp"
#include "vmm/base/platform.hpp"

using namespace minivmm;
using namespace std::chrono_literals;

namespace {

struct FakeSystem : SystemControl {
    int resets = 0;
    int poweroffs = 0;
    void request_reset() noexcept override { ++resets; }
    void request_poweroff() noexcept override { ++poweroffs; }
};

struct Recorder : ByteSink {
    std::string text;
    void write(std::span<const uint8_t> bytes) noexcept override { text.append(bytes.begin(), bytes.end()); }
};

uint64_t rd(Device& d, uint64_t off, size_t size) {
    std::array<uint8_t, 8> buf{};
    buf.fill(0xAA);
    d.read(off, std::span(buf.data(), size));
    return load_le(std::span<const uint8_t>(buf.data(), size));
}
void wr(Device& d, uint64_t off, size_t size, uint64_t value) {
    std::array<uint8_t, 8> buf{};
    store_le(std::span(buf.data(), size), value);
    d.write(off, std::span<const uint8_t>(buf.data(), size));
}

}  // namespace

// --- debug port ------------------------------------------------------------------------------

TEST_CASE("debugcon: writes reach the sink, reads return 0xE9") {
    Recorder out;
    DebugPort port(&out);
    for (char c : std::string("SeaBIOS\n")) wr(port, 0, 1, static_cast<uint8_t>(c));
    CHECK(out.text == "SeaBIOS\n");
    CHECK(rd(port, 0, 1) == 0xE9);
    DebugPort silent(nullptr);
    wr(silent, 0, 1, 'x');
    CHECK(rd(silent, 0, 1) == 0xE9);
}

// --- reset control / A20 --------------------------------------------------------------------

TEST_CASE("reset control 0xCF9: bit 2 resets, bits 1 and 3 read back") {
    FakeSystem sys;
    ResetControl rc(sys);
    CHECK(rd(rc, 0, 1) == 0x00);
    wr(rc, 0, 1, 0x02);  // SeaBIOS qemu_reboot: select hard reset...
    CHECK(sys.resets == 0);
    CHECK(rd(rc, 0, 1) == 0x02);
    wr(rc, 0, 1, 0x06);  // ...then do it
    CHECK(sys.resets == 1);
    CHECK(rd(rc, 0, 1) == 0x02);
    wr(rc, 0, 1, platform::kResetValue);
    CHECK(sys.resets == 2);
    wr(rc, 0, 1, 0xF1);  // no bit 2: no reset; only bits 1 and 3 are kept
    CHECK(sys.resets == 2);
    CHECK(rd(rc, 0, 1) == 0x00);
    wr(rc, 0, 1, 0x0A);
    CHECK(rd(rc, 0, 1) == 0x0A);
    CHECK(sys.poweroffs == 0);
}

TEST_CASE("A20 port 0x92: A20 bit stored, bit 0 is fast reset") {
    FakeSystem sys;
    A20Gate a20(sys);
    CHECK(rd(a20, 0, 1) == 0x02);
    CHECK(a20.a20_enabled());
    wr(a20, 0, 1, 0x00);
    CHECK(rd(a20, 0, 1) == 0x00);
    CHECK_FALSE(a20.a20_enabled());
    // SeaBIOS set_a20: read-modify-write of bit 1 must not reset.
    wr(a20, 0, 1, (rd(a20, 0, 1) & ~0x02u) | 0x02u);
    CHECK(rd(a20, 0, 1) == 0x02);
    CHECK(sys.resets == 0);
    wr(a20, 0, 1, 0x03);
    CHECK(sys.resets == 1);
    CHECK(rd(a20, 0, 1) == 0x02);  // bit 0 reads 0
    wr(a20, 0, 1, 0xFC);           // other bits ignored
    CHECK(rd(a20, 0, 1) == 0x00);
    CHECK(sys.resets == 1);
}

// --- ACPI PM block --------------------------------------------------------------------------

namespace {
struct PmFixture {
    FakeSystem sys;
    uint64_t now = 1'000'000'000'000'000'000ull;  // far from 0: exercises overflow-free scaling
    AcpiPm pm{sys, [this] { return now; }};
    void advance_ticks(uint64_t ticks) { now += (ticks * 1'000'000'000ull + AcpiPm::kTimerHz - 1) / AcpiPm::kTimerHz; }
};
}  // namespace

TEST_CASE("acpi pm: PM1_CNT sleep control") {
    PmFixture f;
    CHECK(rd(f.pm, AcpiPm::kControlOffset, 2) == 0x0001);  // SCI_EN always set
    SUBCASE("S5 powers off") {
        wr(f.pm, 4, 2, (platform::kSleepTypeS5 << 10) | (1u << 13));
        CHECK(f.sys.poweroffs == 1);
    }
    SUBCASE("S3 (SLP_TYP 1) is ignored, SLP_TYP reads back, SLP_EN reads 0") {
        wr(f.pm, 4, 2, (1u << 10) | (1u << 13));
        CHECK(f.sys.poweroffs == 0);
        CHECK(f.sys.resets == 0);
        CHECK(rd(f.pm, 4, 2) == ((1u << 10) | 1u));
    }
    SUBCASE("SLP_TYP without SLP_EN does nothing") {
        wr(f.pm, 4, 2, platform::kSleepTypeS5 << 10);
        CHECK(f.sys.poweroffs == 0);
        wr(f.pm, 4, 2, 0);
        CHECK(rd(f.pm, 4, 2) == 0x0001);
    }
    SUBCASE("byte writes: high byte carries SLP_TYP and SLP_EN") {
        wr(f.pm, 4, 1, 0xFF);  // low byte: BM_RLD stored, SCI_EN fixed, GBL_RLS write-only
        CHECK(f.sys.poweroffs == 0);
        CHECK(rd(f.pm, 4, 1) == 0x03);
        wr(f.pm, 5, 1, (1u << 2) | (1u << 5));  // SLP_TYP 1 + SLP_EN: ignored
        CHECK(f.sys.poweroffs == 0);
        CHECK(rd(f.pm, 5, 1) == 0x04);
        wr(f.pm, 5, 1, (platform::kSleepTypeS5 << 2) | (1u << 5));
        CHECK(f.sys.poweroffs == 1);
    }
    SUBCASE("4-byte access at +4 spans PM1_CNT and the gap") {
        CHECK(rd(f.pm, 4, 4) == 0xFFFF0001);
        wr(f.pm, 4, 4, 0xFFFF0000u | (1u << 13));
        CHECK(f.sys.poweroffs == 1);
    }
}

TEST_CASE("acpi pm: PM1_STS write-1-to-clear with TMR_STS, PM1_EN storage") {
    PmFixture f;
    CHECK(rd(f.pm, 0, 2) == 0);
    f.advance_ticks(1u << 23);  // bit 23 of the timer changes
    CHECK(rd(f.pm, 0, 2) == AcpiPm::kTmrSts);
    wr(f.pm, 0, 2, 0xFFFE);  // other bits: nothing to clear
    CHECK(rd(f.pm, 0, 2) == AcpiPm::kTmrSts);
    wr(f.pm, 0, 1, 0x01);
    CHECK(rd(f.pm, 0, 2) == 0);
    CHECK(rd(f.pm, 0, 2) == 0);  // no new carry yet
    f.advance_ticks(1u << 23);
    CHECK(rd(f.pm, 0, 1) == 0x01);

    wr(f.pm, 2, 2, 0xFFFF);
    CHECK(rd(f.pm, 2, 2) == AcpiPm::kEnableMask);
    wr(f.pm, 3, 1, 0x00);  // high byte only
    CHECK(rd(f.pm, 2, 2) == (AcpiPm::kEnableMask & 0x00FF));
    // One dword write at +0: clears TMR_STS and sets PM1_EN together.
    wr(f.pm, 0, 4, (uint64_t{0x0100} << 16) | AcpiPm::kTmrSts);
    CHECK(rd(f.pm, 0, 4) == (uint64_t{0x0100} << 16));
}

TEST_CASE("acpi pm: PM_TMR counts at 3.579545 MHz, 24 bits, read-only") {
    PmFixture f;
    CHECK(rd(f.pm, AcpiPm::kTimerOffset, 4) == 0);
    f.now += 1'000'000'000;  // one second
    CHECK(rd(f.pm, 8, 4) == 3'579'545);
    f.now += 9'000'000'000;  // ten seconds: 35'795'450 ticks, wrapped twice
    CHECK(rd(f.pm, 8, 4) == 35'795'450u - 2 * (1u << 24));
    CHECK(rd(f.pm, 8, 4) <= 0xFFFFFF);
    CHECK(rd(f.pm, 11, 1) == 0);  // bits 24-31 read 0
    const uint64_t t = rd(f.pm, 8, 4);
    CHECK(rd(f.pm, 8, 1) == (t & 0xFF));
    CHECK(rd(f.pm, 9, 2) == ((t >> 8) & 0xFFFF));
    CHECK(rd(f.pm, 10, 1) == ((t >> 16) & 0xFF));
    wr(f.pm, 8, 4, 0);  // ignored
    CHECK(rd(f.pm, 8, 4) == t);
    CHECK(rd(f.pm, 6, 2) == 0xFFFF);  // gap
    // Just below and at the 24-bit wrap.
    PmFixture g;
    g.advance_ticks((1u << 24) - 1);
    CHECK(rd(g.pm, 8, 4) == 0xFFFFFF);
    g.advance_ticks(1);
    CHECK(rd(g.pm, 8, 4) == 0);
    // A clock that goes backwards reads as "no time passed".
    g.now -= 5'000'000'000;
    CHECK(rd(g.pm, 8, 4) == 0);
}

TEST_CASE("acpi pm: default clock is steady_clock and moves") {
    FakeSystem sys;
    AcpiPm pm(sys);
    const uint64_t a = rd(pm, 8, 4);
    std::this_thread::sleep_for(2ms);
    const uint64_t b = rd(pm, 8, 4);
    CHECK(((b - a) & 0xFFFFFF) >= 7000);  // 2 ms = 7159 ticks
}

TEST_CASE("boot marker: the first write of 123 is passed on, once; everything else is ignored") {
    struct Sink final : BootMarkSink {
        int marks = 0;
        void guest_marked() noexcept override { ++marks; }
    } sink;
    BootMarker marker(sink);
    const uint8_t other = 122, value = BootMarker::kValue;
    marker.write(0, std::span<const uint8_t>(&other, 1));
    const uint8_t wide[2] = {BootMarker::kValue, 0};
    marker.write(0, wide);  // a 16-bit write is not the mark
    CHECK(sink.marks == 0);
    CHECK_FALSE(marker.marked());
    marker.write(0, std::span<const uint8_t>(&value, 1));
    CHECK(sink.marks == 1);
    CHECK(marker.marked());
    marker.write(0, std::span<const uint8_t>(&value, 1));  // a guest cannot flood the host's stderr
    CHECK(sink.marks == 1);
    uint8_t in[2] = {0, 0};
    marker.read(0, in);
    CHECK((in[0] == 0xFF && in[1] == 0xFF));
}

// --- saved state (devices/device_state.hpp) --------------------------------------------------

TEST_CASE("reset control and A20: their bits saved and loaded; a bit they cannot hold is refused") {
    FakeSystem sys;
    ResetControl cf9(sys);
    wr(cf9, 0, 1, ResetControl::kSystemReset | ResetControl::kFullReset);
    ResetControl cf9_new(sys);
    REQUIRE(cf9_new.load_state(saved_state(cf9)));
    CHECK(rd(cf9_new, 0, 1) == (ResetControl::kSystemReset | ResetControl::kFullReset));
    CHECK(sys.resets == 0);  // loading does not reset
    CHECK_FALSE(cf9_new.load_state(std::vector<uint8_t>{1, ResetControl::kResetCpu}));
    CHECK_FALSE(cf9_new.load_state(std::vector<uint8_t>{2, 0}));
    CHECK_FALSE(cf9_new.load_state(std::vector<uint8_t>{1}));
    CHECK_FALSE(cf9_new.load_state(std::vector<uint8_t>{1, 0, 0}));
    CHECK(rd(cf9_new, 0, 1) == (ResetControl::kSystemReset | ResetControl::kFullReset));

    A20Gate a20(sys);
    wr(a20, 0, 1, 0x00);  // A20 off
    A20Gate a20_new(sys);
    REQUIRE(a20_new.load_state(saved_state(a20)));
    CHECK_FALSE(a20_new.a20_enabled());
    CHECK(rd(a20_new, 0, 1) == 0);
    CHECK_FALSE(a20_new.load_state(std::vector<uint8_t>{1, A20Gate::kFastReset}));
    CHECK(sys.resets == 0);
}

TEST_CASE("boot marker: a restored mark is not reported again; a blob it cannot have is refused") {
    struct Sink final : BootMarkSink {
        int marks = 0;
        void guest_marked() noexcept override { ++marks; }
    } sink;
    BootMarker marker(sink);
    wr(marker, 0, 1, BootMarker::kValue);
    BootMarker restored(sink);
    const std::vector<uint8_t> blob = saved_state(marker);
    CHECK(blob == std::vector<uint8_t>{1, 1});
    REQUIRE(restored.load_state(blob));
    CHECK(restored.marked());
    CHECK(sink.marks == 1);  // loading tells the sink nothing
    wr(restored, 0, 1, BootMarker::kValue);
    CHECK(sink.marks == 1);  // the same power-on: not reported again
    BootMarker fresh(sink);
    for (const auto& bad : {std::vector<uint8_t>{1}, std::vector<uint8_t>{2, 1}, std::vector<uint8_t>{1, 2},
                            std::vector<uint8_t>{1, 1, 0}}) {
        CHECK_FALSE(fresh.load_state(bad));
        CHECK_FALSE(fresh.marked());
    }
    wr(fresh, 0, 1, BootMarker::kValue);
    CHECK(sink.marks == 2);
}

TEST_CASE("acpi pm: its state loaded into a new block goes on from the saved timer, whatever the new clock") {
    PmFixture f;
    wr(f.pm, 2, 2, 0x0121);                            // PM1_EN
    wr(f.pm, 4, 2, 5u << AcpiPm::kSlpTypShift | 2);    // SLP_TYP 5 (not S5's enable), BM_RLD
    f.advance_ticks((1u << 23) + 1000);                // TMR_STS due, not yet seen
    const std::vector<uint8_t> blob = saved_state(f.pm);
    const uint64_t timer = rd(f.pm, 8, 4);

    FakeSystem sys;
    uint64_t other_clock = 42;  // another host boot: its clock far below the saving one's
    AcpiPm pm(sys, [&] { return other_clock; });
    REQUIRE(pm.load_state(blob));
    CHECK(saved_state(pm) == blob);
    CHECK(rd(pm, 8, 4) == timer);
    CHECK(rd(pm, 2, 2) == 0x0121);
    CHECK(rd(pm, 4, 2) == (5u << AcpiPm::kSlpTypShift | 2 | AcpiPm::kSciEn));
    CHECK(rd(pm, 0, 2) == AcpiPm::kTmrSts);  // the carry that happened before the save
    other_clock += 1'000'000'000;
    CHECK(rd(pm, 8, 4) == ((timer + AcpiPm::kTimerHz) & 0xFFFFFF));
    CHECK(sys.poweroffs == 0);
}

TEST_CASE("acpi pm: a state it could not have is refused and changes nothing") {
    PmFixture f;
    const std::vector<uint8_t> good = saved_state(f.pm);
    REQUIRE(good.size() == 23);  // version, STS, EN, CNT, ticks, carry
    auto with = [&](size_t at, std::vector<uint8_t> bytes) {
        std::vector<uint8_t> b = good;
        std::copy(bytes.begin(), bytes.end(), b.begin() + static_cast<std::ptrdiff_t>(at));
        return b;
    };
    PmFixture g;
    wr(g.pm, 2, 2, 0x0001);
    const std::vector<uint8_t> before = saved_state(g.pm);
    const std::vector<uint8_t> bad[] = {
        with(0, {2}),                                 // version
        with(1, {0x00, 0x01}),                        // PWRBTN_STS: never set here
        with(3, {0x02, 0x00}),                        // a reserved PM1_EN bit
        with(5, {0x01, 0x00}),                        // SCI_EN is not storage
        with(7, {0, 0, 0, 0, 0, 0, 0, 0x01}),         // 2^56 ticks
        with(15, {0, 0, 0, 0, 0, 0, 0, 0}),           // no next carry
        with(15, {1, 0, 0x80, 0, 0, 0, 0, 0}),        // a carry off the bit-23 boundary
        with(15, {0, 0, 0, 0x01, 0, 0, 0, 0}),        // a carry two periods ahead of the ticks
    };
    for (const std::vector<uint8_t>& blob : bad) {
        CHECK_FALSE(g.pm.load_state(blob));
        CHECK(saved_state(g.pm) == before);
    }
    CHECK_FALSE(g.pm.load_state(std::span(good).first(22)));
    CHECK(g.pm.load_state(good));
}
