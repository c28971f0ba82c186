#include "devices/cmos.hpp"

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include <fmt/core.h>

#include "vmm/base/log.hpp"

namespace minivmm {
namespace {

constexpr uint64_t kKiB = 1024, kMiB = 1024 * kKiB;
constexpr int64_t kSecondsPerDay = 86400;

int64_t floor_div(int64_t a, int64_t b) noexcept { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// Days since 1970-01-01 of a proleptic Gregorian date (the usual era-of-400-years method).
int64_t days_from_civil(int64_t y, int m, int d) noexcept {
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;                                   // [0, 399]
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;  // [0, 365]
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;            // [0, 146096]
    return era * 146097 + doe - 719468;
}

void put16(std::array<uint8_t, cmos::kRamSize>& ram, uint8_t low_index, uint64_t value) {
    store_le(std::span(ram).subspan(low_index, 2), value);
}

}  // namespace

Cmos::DateTime Cmos::from_unix(int64_t seconds) noexcept {
    int64_t days = floor_div(seconds, kSecondsPerDay);
    int64_t rem = seconds - days * kSecondsPerDay;
    int64_t z = days + 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    DateTime t{};
    t.day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
    t.month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
    t.year = yoe + era * 400 + (t.month <= 2);
    t.hour = static_cast<int>(rem / 3600);
    t.minute = static_cast<int>(rem / 60 % 60);
    t.second = static_cast<int>(rem % 60);
    return t;
}

int64_t Cmos::to_unix(const DateTime& t) noexcept {
    return days_from_civil(t.year, t.month, t.day) * kSecondsPerDay + t.hour * 3600 + t.minute * 60 + t.second;
}

Cmos::Cmos(const CmosConfig& config, std::function<int64_t()> now_unix_seconds) : now_(std::move(now_unix_seconds)) {
    if (config.cpus == 0 || config.cpus > 256)
        throw std::invalid_argument(fmt::format("cmos: {} CPUs (must be 1..256)", config.cpus));
    if (!now_) {
        now_ = [] {
            return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
                .count();
        };
    }

    ram_[cmos::kStatusA] = cmos::kRegASetting;
    ram_[cmos::kStatusB] = cmos::kRegBDefault;
    ram_[cmos::kFloppyType] = 0;           // no floppy drives: SeaBIOS registers none
    ram_[cmos::kEquipment] = 0x02;         // math coprocessor present, no floppy, no display
    put16(ram_, cmos::kBaseMemLow, 640);   // conventional memory, KiB
    // KiB of RAM above 1 MiB, 16-bit, capped (QEMU pc_cmos_init).
    uint64_t ext_kib = config.ram_below_4g > kMiB ? (config.ram_below_4g - kMiB) / kKiB : 0;
    put16(ram_, cmos::kExtMemLow, std::min<uint64_t>(ext_kib, 0xFFFF));
    put16(ram_, cmos::kExtMemLow2, std::min<uint64_t>(ext_kib, 0xFFFF));
    // 64 KiB units above 16 MiB: SeaBIOS's RAM size when there is no etc/e820 (paravirt.c).
    uint64_t above_16m = config.ram_below_4g > 16 * kMiB ? (config.ram_below_4g - 16 * kMiB) / (64 * kKiB) : 0;
    put16(ram_, cmos::kMemAbove16MLow, std::min<uint64_t>(above_16m, 0xFFFF));
    uint64_t above_4g = std::min<uint64_t>(config.ram_above_4g / (64 * kKiB), 0xFFFFFF);
    ram_[cmos::kMemAbove4GLow] = static_cast<uint8_t>(above_4g);
    ram_[cmos::kMemAbove4GMid] = static_cast<uint8_t>(above_4g >> 8);
    ram_[cmos::kMemAbove4GHigh] = static_cast<uint8_t>(above_4g >> 16);
    // SeaBIOS boot_init: 0x3D low nibble = first boot device (2 = hard disk), 0x38 high nibble =
    // third; 0x38 bit 0 = do not check the floppy boot signature. Used only without bootorder.
    ram_[cmos::kBootFlag2] = 0x02;
    ram_[cmos::kBootFlag1] = 0x01;
    ram_[cmos::kSmpCount] = static_cast<uint8_t>(config.cpus - 1);
}

int64_t Cmos::guest_offset_seconds() const noexcept {
    return offset_;
}

void Cmos::save_state(StateWriter& out) const {
    out.u8(1);
    out.bytes(ram_);
    out.u8(index_);
    out.u64(static_cast<uint64_t>(offset_));
    out.u64(static_cast<uint64_t>(frozen_.year));
    for (int v : {frozen_.month, frozen_.day, frozen_.hour, frozen_.minute, frozen_.second}) out.u8(static_cast<uint8_t>(v));
}

bool Cmos::load_state(std::span<const uint8_t> blob) noexcept {
    StateReader in(blob);
    std::array<uint8_t, cmos::kRamSize> ram{};
    uint8_t version = 0, index = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
    uint64_t offset = 0, year = 0;
    in.u8(version);
    in.bytes(ram);
    in.u8(index);
    in.u64(offset);
    in.u64(year);
    for (uint8_t* v : {&month, &day, &hour, &minute, &second}) in.u8(*v);
    if (!in.finished() || version != 1) return false;
    // What the registers can express: years 0-9999 (century and year in BCD), so an offset of at
    // most that many years either way; an index without the NMI bit; a valid held time.
    constexpr int64_t kMaxOffset = 10000ll * 366 * 86400;
    const auto signed_offset = static_cast<int64_t>(offset);
    if (index >= cmos::kRamSize || signed_offset > kMaxOffset || signed_offset < -kMaxOffset || year > 9999 ||
        month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59)
        return false;
    ram_ = ram;
    index_ = index;
    offset_ = signed_offset;
    frozen_ = {static_cast<int64_t>(year), month, day, hour, minute, second};
    return true;
}

Cmos::DateTime Cmos::guest_now() const { return from_unix(now_() + offset_); }

void Cmos::read(uint64_t offset, std::span<uint8_t> data) noexcept {
    // A wide access is a sequence of byte cycles on the ISA bus.
    for (size_t i = 0; i < data.size(); ++i)
        data[i] = offset + i == 1 ? read_register(index_) : 0xFF;  // the index port is write-only
}

void Cmos::write(uint64_t offset, std::span<const uint8_t> data) noexcept {
    for (size_t i = 0; i < data.size(); ++i) {
        if (offset + i == 0)
            index_ = data[i] & 0x7F;  // bit 7 masks NMI on real hardware; nothing to mask here
        else if (offset + i == 1)
            write_register(index_, data[i]);
    }
}

bool Cmos::is_time_register(uint8_t index) const noexcept {
    switch (index) {
        case cmos::kSeconds: case cmos::kMinutes: case cmos::kHours: case cmos::kDayOfWeek:
        case cmos::kDayOfMonth: case cmos::kMonth: case cmos::kYear: case cmos::kCentury:
            return true;
        default:
            return false;
    }
}

uint8_t Cmos::read_register(uint8_t index) noexcept {
    if (is_time_register(index)) {
        try {
            return encode_time(index, (ram_[cmos::kStatusB] & cmos::kRegBSet) ? frozen_ : guest_now());
        } catch (...) {
            return 0;  // the clock callback threw
        }
    }
    switch (index) {
        case cmos::kStatusA: return ram_[index] & ~cmos::kRegAUip;  // never "update in progress"
        case cmos::kStatusC: return 0;                               // no interrupt flags (see header)
        case cmos::kStatusD: return cmos::kRegDValid;
        default: return ram_[index];
    }
}

void Cmos::write_register(uint8_t index, uint8_t value) noexcept {
    try {
        bool set_mode = ram_[cmos::kStatusB] & cmos::kRegBSet;
        if (is_time_register(index)) {
            // While SET is on the registers are a frozen copy the guest edits; otherwise each
            // write moves the guest clock at once (SeaBIOS INT 1Ah AH=03h/05h writes without SET).
            DateTime t = set_mode ? frozen_ : guest_now();
            if (!decode_time(index, value, t)) {
                log::debug("cmos: ignored invalid value {:#04x} for time register {:#04x}", value, index);
                return;
            }
            if (set_mode)
                frozen_ = t;
            else
                offset_ = to_unix(t) - now_();
            return;
        }
        switch (index) {
            case cmos::kStatusA:
                ram_[index] = value & ~cmos::kRegAUip;  // UIP is read-only
                break;
            case cmos::kStatusB:
                if (!set_mode && (value & cmos::kRegBSet)) frozen_ = guest_now();
                if (set_mode && !(value & cmos::kRegBSet)) offset_ = to_unix(frozen_) - now_();
                ram_[index] = value;
                break;
            case cmos::kStatusC:
            case cmos::kStatusD:
                break;  // read-only
            default:
                ram_[index] = value;
        }
    } catch (...) {
        log::debug("cmos: clock unavailable, write to {:#04x} dropped", index);
    }
}

uint8_t Cmos::to_reg(int value) const noexcept {
    if (ram_[cmos::kStatusB] & cmos::kRegBBinary) return static_cast<uint8_t>(value);
    return static_cast<uint8_t>(((value / 10) << 4) | (value % 10));
}

int Cmos::from_reg(uint8_t value, bool& valid) const noexcept {
    if (ram_[cmos::kStatusB] & cmos::kRegBBinary) {
        valid = true;
        return value;
    }
    valid = (value >> 4) < 10 && (value & 0x0F) < 10;
    return (value >> 4) * 10 + (value & 0x0F);
}

uint8_t Cmos::encode_time(uint8_t index, const DateTime& t) const noexcept {
    int64_t year = std::clamp<int64_t>(t.year, 0, 9999);
    switch (index) {
        case cmos::kSeconds: return to_reg(t.second);
        case cmos::kMinutes: return to_reg(t.minute);
        case cmos::kHours: {
            if (ram_[cmos::kStatusB] & cmos::kRegB24Hour) return to_reg(t.hour);
            int h12 = t.hour % 12 == 0 ? 12 : t.hour % 12;
            return static_cast<uint8_t>(to_reg(h12) | (t.hour >= 12 ? 0x80 : 0));
        }
        case cmos::kDayOfWeek: {
            int64_t weekday = (days_from_civil(t.year, t.month, t.day) % 7 + 11) % 7;  // 0 = Sunday
            return to_reg(static_cast<int>(weekday) + 1);
        }
        case cmos::kDayOfMonth: return to_reg(t.day);
        case cmos::kMonth: return to_reg(t.month);
        case cmos::kYear: return to_reg(static_cast<int>(year % 100));
        case cmos::kCentury: return to_reg(static_cast<int>(year / 100));
        default: return 0;
    }
}

bool Cmos::decode_time(uint8_t index, uint8_t value, DateTime& t) const noexcept {
    bool valid = false;
    if (index == cmos::kHours && !(ram_[cmos::kStatusB] & cmos::kRegB24Hour)) {
        int h = from_reg(value & 0x7F, valid);
        if (!valid || h < 1 || h > 12) return false;
        t.hour = h % 12 + ((value & 0x80) ? 12 : 0);
        return true;
    }
    int v = from_reg(value, valid);
    if (!valid) return false;
    switch (index) {
        case cmos::kSeconds: if (v > 59) return false; t.second = v; return true;
        case cmos::kMinutes: if (v > 59) return false; t.minute = v; return true;
        case cmos::kHours: if (v > 23) return false; t.hour = v; return true;
        case cmos::kDayOfWeek: return true;  // derived from the date, as in QEMU
        case cmos::kDayOfMonth: if (v < 1 || v > 31) return false; t.day = v; return true;
        case cmos::kMonth: if (v < 1 || v > 12) return false; t.month = v; return true;
        case cmos::kYear: if (v > 99) return false; t.year = t.year / 100 * 100 + v; return true;
        case cmos::kCentury: if (v > 99) return false; t.year = int64_t{v} * 100 + t.year % 100; return true;
        default: return false;
    }
}

}  // namespace minivmm
