// MC146818 real-time clock with 128 bytes of CMOS RAM, the PC/AT layout QEMU uses
// (hw/rtc/mc146818rtc.c, hw/i386/pc.c / microvm.c for the BIOS bytes). Map it on the PIO bus at
// platform::kCmosPort, size 2: +0 index (bit 7 is the NMI mask, ignored), +1 data.
//
// The time registers are computed from a clock on every read, plus an offset the guest sets by
// writing them (with or without the SET bit of register B, as Linux and SeaBIOS INT 1Ah do).
// Register A never shows update-in-progress, so readers never wait.
// No RTC interrupts (periodic, alarm, update-ended) are generated and IRQ8 is not wired:
// SeaBIOS only enables the periodic interrupt for INT 15h AH=86h/83h waits, which neither
// SeaBIOS itself nor Linux uses on this path, and Linux keeps time with the PIT/LAPIC/TSC.
// Register C therefore always reads 0.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>

#include "devices/device.hpp"
#include "devices/device_state.hpp"

namespace minivmm {

struct CmosConfig {
    uint64_t ram_below_4g = 0;
    uint64_t ram_above_4g = 0;
    unsigned cpus = 1;
};

namespace cmos {
// Register indexes (MC146818 datasheet; SeaBIOS src/hw/rtc.h for the BIOS bytes).
inline constexpr uint8_t kSeconds = 0x00, kSecondsAlarm = 0x01, kMinutes = 0x02, kMinutesAlarm = 0x03;
inline constexpr uint8_t kHours = 0x04, kHoursAlarm = 0x05, kDayOfWeek = 0x06, kDayOfMonth = 0x07;
inline constexpr uint8_t kMonth = 0x08, kYear = 0x09;
inline constexpr uint8_t kStatusA = 0x0A, kStatusB = 0x0B, kStatusC = 0x0C, kStatusD = 0x0D;
inline constexpr uint8_t kShutdownStatus = 0x0F, kFloppyType = 0x10, kEquipment = 0x14;
inline constexpr uint8_t kBaseMemLow = 0x15, kBaseMemHigh = 0x16;
inline constexpr uint8_t kExtMemLow = 0x17, kExtMemHigh = 0x18;
inline constexpr uint8_t kExtMemLow2 = 0x30, kExtMemHigh2 = 0x31, kCentury = 0x32;
inline constexpr uint8_t kMemAbove16MLow = 0x34, kMemAbove16MHigh = 0x35;
inline constexpr uint8_t kBootFlag1 = 0x38, kBootFlag2 = 0x3D;
inline constexpr uint8_t kMemAbove4GLow = 0x5B, kMemAbove4GMid = 0x5C, kMemAbove4GHigh = 0x5D;
inline constexpr uint8_t kSmpCount = 0x5F;

inline constexpr uint8_t kRegASetting = 0x26;  // 32.768 kHz time base, 1024 Hz rate
inline constexpr uint8_t kRegAUip = 0x80;
inline constexpr uint8_t kRegBSet = 0x80, kRegBBinary = 0x04, kRegB24Hour = 0x02;
inline constexpr uint8_t kRegBDefault = kRegB24Hour;  // BCD, 24-hour
inline constexpr uint8_t kRegDValid = 0x80;           // valid RAM and time
inline constexpr size_t kRamSize = 128;
}  // namespace cmos

class Cmos : public Device, public SavesState {
public:
    // `now_unix_seconds` is the host clock (UTC seconds); empty means the host wall clock.
    // Throws std::invalid_argument when cpus is outside 1..256.
    explicit Cmos(const CmosConfig& config, std::function<int64_t()> now_unix_seconds = {});

    std::string_view name() const noexcept override { return "cmos-rtc"; }
    void read(uint64_t offset, std::span<uint8_t> data) noexcept override;
    void write(uint64_t offset, std::span<const uint8_t> data) noexcept override;

    // The seconds the guest has moved its clock away from the host clock.
    int64_t guest_offset_seconds() const noexcept;

    // The RAM, the index, the guest's offset from the host clock and the time held while SET is on
    // (format version 1). The offset is kept, not the time: a restored guest's clock reads the
    // host's time plus its offset, as a powered-off PC's RTC keeps running.
    void save_state(StateWriter& out) const override;
    bool load_state(std::span<const uint8_t> blob) noexcept override;

private:
    struct DateTime {
        int64_t year;  // full year, e.g. 2024
        int month;     // 1..12
        int day;       // 1..31
        int hour, minute, second;
    };

    uint8_t read_register(uint8_t index) noexcept;
    void write_register(uint8_t index, uint8_t value) noexcept;
    bool is_time_register(uint8_t index) const noexcept;
    uint8_t encode_time(uint8_t index, const DateTime& t) const noexcept;
    bool decode_time(uint8_t index, uint8_t value, DateTime& t) const noexcept;
    uint8_t to_reg(int value) const noexcept;
    int from_reg(uint8_t value, bool& valid) const noexcept;
    DateTime guest_now() const;

    static DateTime from_unix(int64_t seconds) noexcept;
    static int64_t to_unix(const DateTime& t) noexcept;

    std::function<int64_t()> now_;
    std::array<uint8_t, cmos::kRamSize> ram_{};
    uint8_t index_ = 0;
    int64_t offset_ = 0;   // guest time - host time, seconds
    DateTime frozen_{1970, 1, 1, 0, 0, 0};  // time registers while register B's SET bit is on
};

}  // namespace minivmm
