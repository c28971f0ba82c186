// MC146818 RTC + CMOS RAM: time in BCD/binary/12-hour modes, guest time setting, BIOS bytes.
#include <doctest/doctest.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <vector>

#include "devices/cmos.hpp"

using namespace minivmm;

namespace {

constexpr int64_t k20230715_102030 = 1689416430;  // Saturday

struct Rtc {
    std::shared_ptr<int64_t> now = std::make_shared<int64_t>(k20230715_102030);
    Cmos cmos;
    explicit Rtc(CmosConfig config = {512ull << 20, 0, 1})
        : cmos(config, [clock = now] { return *clock; }) {}

    uint8_t get(uint8_t index) {
        uint8_t i = index, v = 0;
        cmos.write(0, std::span(&i, 1));
        cmos.read(1, std::span(&v, 1));
        return v;
    }
    void set(uint8_t index, uint8_t value) {
        uint8_t i = index;
        cmos.write(0, std::span(&i, 1));
        cmos.write(1, std::span(&value, 1));
    }
};

}  // namespace

TEST_CASE("cmos: time and date in BCD, 24-hour (the default)") {
    Rtc rtc;
    CHECK(rtc.get(cmos::kStatusB) == 0x02);
    CHECK(rtc.get(cmos::kSeconds) == 0x30);
    CHECK(rtc.get(cmos::kMinutes) == 0x20);
    CHECK(rtc.get(cmos::kHours) == 0x10);
    CHECK(rtc.get(cmos::kDayOfWeek) == 7);  // Saturday, Sunday = 1
    CHECK(rtc.get(cmos::kDayOfMonth) == 0x15);
    CHECK(rtc.get(cmos::kMonth) == 0x07);
    CHECK(rtc.get(cmos::kYear) == 0x23);
    CHECK(rtc.get(cmos::kCentury) == 0x20);
    *rtc.now += 9;  // the clock runs
    CHECK(rtc.get(cmos::kSeconds) == 0x39);

    SUBCASE("status registers") {
        CHECK(rtc.get(cmos::kStatusA) == 0x26);
        rtc.set(cmos::kStatusA, 0xA6);  // UIP is read-only
        CHECK(rtc.get(cmos::kStatusA) == 0x26);
        CHECK(rtc.get(cmos::kStatusC) == 0);
        CHECK(rtc.get(cmos::kStatusD) == 0x80);
        rtc.set(cmos::kStatusD, 0x00);
        CHECK(rtc.get(cmos::kStatusD) == 0x80);
    }
    SUBCASE("known dates") {
        *rtc.now = 951782400;  // 2000-02-29 00:00:00, Tuesday
        CHECK(rtc.get(cmos::kDayOfMonth) == 0x29);
        CHECK(rtc.get(cmos::kMonth) == 0x02);
        CHECK(rtc.get(cmos::kYear) == 0x00);
        CHECK(rtc.get(cmos::kCentury) == 0x20);
        CHECK(rtc.get(cmos::kDayOfWeek) == 3);
        *rtc.now = 4102444799;  // 2099-12-31 23:59:59, Thursday
        CHECK(rtc.get(cmos::kHours) == 0x23);
        CHECK(rtc.get(cmos::kSeconds) == 0x59);
        CHECK(rtc.get(cmos::kYear) == 0x99);
        CHECK(rtc.get(cmos::kDayOfWeek) == 5);
        *rtc.now += 1;  // 2100-01-01
        CHECK(rtc.get(cmos::kCentury) == 0x21);
        CHECK(rtc.get(cmos::kYear) == 0x00);
        CHECK(rtc.get(cmos::kMonth) == 0x01);
        *rtc.now = 0;  // 1970-01-01, Thursday
        CHECK(rtc.get(cmos::kCentury) == 0x19);
        CHECK(rtc.get(cmos::kYear) == 0x70);
        CHECK(rtc.get(cmos::kDayOfWeek) == 5);
    }
}

TEST_CASE("cmos: binary and 12-hour modes") {
    Rtc rtc;
    rtc.set(cmos::kStatusB, cmos::kRegBBinary | cmos::kRegB24Hour);
    CHECK(rtc.get(cmos::kSeconds) == 30);
    CHECK(rtc.get(cmos::kMinutes) == 20);
    CHECK(rtc.get(cmos::kHours) == 10);
    CHECK(rtc.get(cmos::kDayOfMonth) == 15);
    CHECK(rtc.get(cmos::kYear) == 23);
    CHECK(rtc.get(cmos::kCentury) == 20);

    *rtc.now += 3 * 3600;  // 13:20:30
    rtc.set(cmos::kStatusB, 0x00);  // BCD, 12-hour
    CHECK(rtc.get(cmos::kHours) == 0x81);  // 1 PM
    rtc.set(cmos::kStatusB, cmos::kRegBBinary);  // binary, 12-hour
    CHECK(rtc.get(cmos::kHours) == 0x81);
    *rtc.now = 1689379500;  // 00:05:00 -> 12 AM
    CHECK(rtc.get(cmos::kHours) == 12);
    rtc.set(cmos::kStatusB, 0x00);
    CHECK(rtc.get(cmos::kHours) == 0x12);
    *rtc.now += 12 * 3600;  // 12:05 -> 12 PM
    CHECK(rtc.get(cmos::kHours) == 0x92);
}

TEST_CASE("cmos: the guest sets the time") {
    Rtc rtc;
    SUBCASE("direct writes (SeaBIOS INT 1Ah style) move the clock at once") {
        rtc.set(cmos::kHours, 0x08);
        CHECK(rtc.get(cmos::kHours) == 0x08);
        CHECK(rtc.get(cmos::kMinutes) == 0x20);
        CHECK(rtc.cmos.guest_offset_seconds() == -2 * 3600);
        rtc.set(cmos::kYear, 0x24);
        rtc.set(cmos::kCentury, 0x20);
        CHECK(rtc.get(cmos::kYear) == 0x24);
        *rtc.now += 60;
        CHECK(rtc.get(cmos::kMinutes) == 0x21);  // keeps running from the new time
        CHECK(rtc.get(cmos::kYear) == 0x24);
    }
    SUBCASE("SET bit freezes the registers; clearing it applies them (Linux style)") {
        rtc.set(cmos::kStatusB, cmos::kRegBSet | cmos::kRegB24Hour);
        *rtc.now += 100;
        CHECK(rtc.get(cmos::kSeconds) == 0x30);  // frozen
        rtc.set(cmos::kHours, 0x08);
        rtc.set(cmos::kMinutes, 0x00);
        rtc.set(cmos::kSeconds, 0x00);
        CHECK(rtc.get(cmos::kHours) == 0x08);
        CHECK(rtc.cmos.guest_offset_seconds() == 0);  // not applied yet
        rtc.set(cmos::kStatusB, cmos::kRegB24Hour);
        CHECK(rtc.cmos.guest_offset_seconds() == 1689408000 - (k20230715_102030 + 100));
        *rtc.now += 5;
        CHECK(rtc.get(cmos::kHours) == 0x08);
        CHECK(rtc.get(cmos::kMinutes) == 0x00);
        CHECK(rtc.get(cmos::kSeconds) == 0x05);
    }
    SUBCASE("binary mode writes") {
        rtc.set(cmos::kStatusB, cmos::kRegBBinary | cmos::kRegB24Hour);
        rtc.set(cmos::kMonth, 12);
        rtc.set(cmos::kDayOfMonth, 25);
        CHECK(rtc.get(cmos::kMonth) == 12);
        CHECK(rtc.get(cmos::kDayOfMonth) == 25);
        CHECK(rtc.get(cmos::kDayOfWeek) == 2);  // 2023-12-25 was a Monday
    }
    SUBCASE("12-hour writes") {
        rtc.set(cmos::kStatusB, 0x00);
        rtc.set(cmos::kHours, 0x80 | 0x03);  // 3 PM
        rtc.set(cmos::kStatusB, cmos::kRegB24Hour);
        CHECK(rtc.get(cmos::kHours) == 0x15);
        rtc.set(cmos::kStatusB, 0x00);
        rtc.set(cmos::kHours, 0x12);  // 12 AM
        rtc.set(cmos::kStatusB, cmos::kRegB24Hour);
        CHECK(rtc.get(cmos::kHours) == 0x00);
    }
    SUBCASE("invalid values are ignored") {
        rtc.set(cmos::kSeconds, 0x7A);  // not BCD
        rtc.set(cmos::kMinutes, 0x60);  // out of range
        rtc.set(cmos::kMonth, 0x13);
        rtc.set(cmos::kMonth, 0x00);
        rtc.set(cmos::kDayOfMonth, 0x32);
        rtc.set(cmos::kHours, 0x24);
        rtc.set(cmos::kCentury, 0xFF);
        rtc.set(cmos::kDayOfWeek, 0x01);  // derived from the date
        CHECK(rtc.cmos.guest_offset_seconds() == 0);
        CHECK(rtc.get(cmos::kSeconds) == 0x30);
        CHECK(rtc.get(cmos::kDayOfWeek) == 7);
        rtc.set(cmos::kStatusB, 0x00);  // 12-hour: hour 0 and 13 are invalid
        rtc.set(cmos::kHours, 0x00);
        rtc.set(cmos::kHours, 0x13);
        CHECK(rtc.cmos.guest_offset_seconds() == 0);
    }
}

TEST_CASE("cmos: memory size and BIOS bytes") {
    SUBCASE("512 MiB") {
        Rtc rtc({512ull << 20, 0, 1});
        CHECK(rtc.get(cmos::kBaseMemLow) == 0x80);  // 640 KiB
        CHECK(rtc.get(cmos::kBaseMemHigh) == 0x02);
        CHECK(rtc.get(cmos::kExtMemLow) == 0xFF);  // 511 MiB in KiB, capped at 65535
        CHECK(rtc.get(cmos::kExtMemHigh) == 0xFF);
        CHECK(rtc.get(cmos::kExtMemLow2) == 0xFF);
        CHECK(rtc.get(cmos::kExtMemHigh2) == 0xFF);
        CHECK(rtc.get(cmos::kMemAbove16MLow) == 0x00);  // (512 - 16) MiB / 64 KiB = 0x1F00
        CHECK(rtc.get(cmos::kMemAbove16MHigh) == 0x1F);
        CHECK(rtc.get(cmos::kMemAbove4GLow) == 0);
        CHECK(rtc.get(cmos::kMemAbove4GMid) == 0);
        CHECK(rtc.get(cmos::kMemAbove4GHigh) == 0);
        // SeaBIOS's fallback formula (paravirt.c) gives back the RAM size.
        uint64_t rs = (uint64_t{rtc.get(0x34)} << 16) | (uint64_t{rtc.get(0x35)} << 24);
        CHECK(rs + (16ull << 20) == 512ull << 20);
    }
    SUBCASE("15 MiB: below the 16 MiB line") {
        Rtc rtc({15ull << 20, 0, 1});
        CHECK(rtc.get(cmos::kExtMemLow) == 0x00);  // 14 MiB = 0x3800 KiB
        CHECK(rtc.get(cmos::kExtMemHigh) == 0x38);
        CHECK(rtc.get(cmos::kMemAbove16MLow) == 0);
        CHECK(rtc.get(cmos::kMemAbove16MHigh) == 0);
    }
    SUBCASE("3 GiB below + 1 GiB above") {
        Rtc rtc({3ull << 30, 1ull << 30, 4});
        CHECK(rtc.get(cmos::kMemAbove16MLow) == 0x00);  // (3072 - 16) * 16 = 0xBF00
        CHECK(rtc.get(cmos::kMemAbove16MHigh) == 0xBF);
        CHECK(rtc.get(cmos::kMemAbove4GLow) == 0x00);  // 1 GiB / 64 KiB = 0x4000
        CHECK(rtc.get(cmos::kMemAbove4GMid) == 0x40);
        CHECK(rtc.get(cmos::kMemAbove4GHigh) == 0x00);
        CHECK(rtc.get(cmos::kSmpCount) == 3);
    }
    SUBCASE("8 GiB: 3 GiB below + 5 GiB above") {
        Rtc rtc({3ull << 30, 5ull << 30, 1});
        CHECK(rtc.get(cmos::kMemAbove4GLow) == 0x00);  // 5 GiB / 64 KiB = 0x14000
        CHECK(rtc.get(cmos::kMemAbove4GMid) == 0x40);
        CHECK(rtc.get(cmos::kMemAbove4GHigh) == 0x01);
        uint64_t high = (uint64_t{rtc.get(0x5B)} << 16) | (uint64_t{rtc.get(0x5C)} << 24) |
                        (uint64_t{rtc.get(0x5D)} << 32);
        CHECK(high == 5ull << 30);
    }
    SUBCASE("boot order, floppy, equipment, shutdown byte, CPUs") {
        Rtc rtc({512ull << 20, 0, 2});
        CHECK(rtc.get(cmos::kBootFlag2) == 0x02);  // hard disk first
        CHECK(rtc.get(cmos::kBootFlag1) == 0x01);  // skip floppy signature check, no 3rd device
        CHECK(rtc.get(cmos::kFloppyType) == 0x00);
        CHECK(rtc.get(cmos::kEquipment) == 0x02);
        CHECK(rtc.get(cmos::kSmpCount) == 1);
        CHECK(rtc.get(cmos::kShutdownStatus) == 0);
        rtc.set(cmos::kShutdownStatus, 0x0A);
        CHECK(rtc.get(cmos::kShutdownStatus) == 0x0A);
        CHECK(rtc.get(cmos::kMonth) != 0xFF);  // SeaBIOS's "RTC present" test
    }
}

TEST_CASE("cmos: port behaviour") {
    Rtc rtc;
    uint8_t v = 0;
    rtc.cmos.read(0, std::span(&v, 1));
    CHECK(v == 0xFF);  // the index register is write-only
    // NMI-mask bit is ignored.
    rtc.set(0x80 | 0x40, 0x5A);
    CHECK(rtc.get(0x40) == 0x5A);
    // A 16-bit write is an index byte then a data byte; a 16-bit read is 0xFF then data.
    uint8_t both[2] = {0x41, 0x77};
    rtc.cmos.write(0, both);
    CHECK(rtc.get(0x41) == 0x77);
    uint8_t idx = 0x41, wide[2] = {0, 0};
    rtc.cmos.write(0, std::span(&idx, 1));
    rtc.cmos.read(0, wide);
    CHECK(wide[0] == 0xFF);
    CHECK(wide[1] == 0x77);
    // Every register can be written without harm; the device stays consistent.
    for (int i = 0; i < 128; ++i) rtc.set(static_cast<uint8_t>(i), 0xFF);
    CHECK(rtc.get(cmos::kStatusD) == 0x80);
    CHECK(rtc.get(cmos::kStatusC) == 0x00);
    CHECK((rtc.get(cmos::kStatusA) & 0x80) == 0);
}

TEST_CASE("cmos: construction") {
    CHECK_THROWS_AS(Cmos({512ull << 20, 0, 0}), std::invalid_argument);
    CHECK_THROWS_AS(Cmos({512ull << 20, 0, 257}), std::invalid_argument);
    Cmos host_clock({512ull << 20, 0, 256});
    uint8_t i = cmos::kCentury, v = 0;
    host_clock.write(0, std::span(&i, 1));
    host_clock.read(1, std::span(&v, 1));
    CHECK(v >= 0x20);
    CHECK(v <= 0x99);
    i = cmos::kSmpCount;
    host_clock.write(0, std::span(&i, 1));
    host_clock.read(1, std::span(&v, 1));
    CHECK(v == 255);
}

namespace {
std::vector<uint8_t> all_registers(Rtc& rtc) {
    std::vector<uint8_t> seen;
    for (uint8_t i = 0; i < cmos::kRamSize; ++i) seen.push_back(rtc.get(i));
    return seen;
}
}  // namespace

TEST_CASE("cmos: its state saved and loaded into a new RTC reads back the same, the guest's offset kept") {
    Rtc rtc;
    rtc.set(0x40, 0xA5);               // a byte of CMOS RAM
    rtc.set(cmos::kYear, 0x30);        // the guest moves its clock to 2030
    rtc.set(cmos::kStatusB, 0x82);     // SET: the time held
    rtc.set(cmos::kMinutes, 0x45);
    uint8_t index = 0x40;
    rtc.cmos.write(0, std::span(&index, 1));
    const std::vector<uint8_t> blob = saved_state(rtc.cmos);

    Rtc restored;
    REQUIRE(restored.cmos.load_state(blob));
    CHECK(saved_state(restored.cmos) == blob);
    uint8_t v = 0;
    restored.cmos.read(1, std::span(&v, 1));  // the selected index survived
    CHECK(v == 0xA5);
    CHECK(all_registers(restored) == all_registers(rtc));
    CHECK(restored.get(cmos::kMinutes) == 0x45);
    // SET off: time runs from the host clock plus the saved offset, in both.
    rtc.set(cmos::kStatusB, 0x02);
    restored.set(cmos::kStatusB, 0x02);
    *rtc.now += 3600;
    *restored.now += 3600;
    CHECK(restored.cmos.guest_offset_seconds() == rtc.cmos.guest_offset_seconds());
    CHECK(all_registers(restored) == all_registers(rtc));
    CHECK(restored.get(cmos::kYear) == 0x30);
}

TEST_CASE("cmos: a state the RTC could not have is refused and changes nothing") {
    Rtc rtc;
    const std::vector<uint8_t> good = saved_state(rtc.cmos);
    // Layout: version, u32 128 + RAM, index, u64 offset, u64 year, month, day, hour, minute, second.
    constexpr size_t kIndex = 133, kOffset = 134, kYear = 142, kMonth = 150, kDay = 151, kHour = 152, kSecond = 154;
    REQUIRE(good.size() == 155);
    const std::pair<size_t, uint8_t> bad[] = {{0, 0}, {kIndex, 0x80}, {kOffset + 7, 0x10}, {kYear + 1, 0x30},
                                              {kMonth, 13}, {kMonth, 0}, {kDay, 32}, {kHour, 24}, {kSecond, 60}};
    Rtc other;
    other.set(0x41, 0x11);
    const std::vector<uint8_t> before = saved_state(other.cmos);
    for (const auto& [at, value] : bad) {
        std::vector<uint8_t> blob = good;
        blob[at] = value;
        CHECK_MESSAGE(!other.cmos.load_state(blob), "byte ", at, " = ", int(value));
        CHECK(saved_state(other.cmos) == before);
    }
    CHECK_FALSE(other.cmos.load_state(std::span(good).first(good.size() - 1)));
    // A negative offset within range is fine (a guest that set its clock back).
    std::vector<uint8_t> back = good;
    for (size_t i = 0; i < 8; ++i) back[kOffset + i] = 0xFF;  // -1 s
    CHECK(other.cmos.load_state(back));
    CHECK(other.cmos.guest_offset_seconds() == -1);
}
