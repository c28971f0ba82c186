// libFuzzer target for the CMOS/RTC. The input is a configuration byte (RAM size, CPU count,
// starting clock) followed by operations on ports 0x70/0x71 through the PIO bus (index writes,
// data reads and writes, accesses of every size at both ports), clock changes (small steps,
// jumps up to ~8,700 years, a clock that throws) and time-setting sequences with and without
// register B's SET bit, in BCD and binary, 12- and 24-hour modes.
// Checks: plain CMOS RAM holds what was written; A never shows UIP, C reads 0, D reads VRT;
// every time register reads a valid value for the current format; a valid seconds/minutes value
// written reads back unchanged while the clock stands still; the index port reads all-ones.
#include <cstddef>
#include <cstdint>
#include <stdexcept>

#include "devices/cmos.hpp"
#include "tests/fuzz/fuzz_support.hpp"
#include "devices/bus.hpp"
#include "vmm/base/platform.hpp"

using namespace minivmm;
using namespace minivmm::fuzz;

namespace {

constexpr uint16_t kIndexPort = platform::kCmosPort, kDataPort = platform::kCmosPort + 1;

struct Clock {
    int64_t now = 1'700'000'000;
    bool fails = false;
    int64_t operator()() const {
        if (fails) throw std::runtime_error("clock unavailable");
        return now;
    }
};

bool is_time(uint8_t index) {  // the clock registers; the alarms (1, 3, 5) are plain RAM here
    switch (index) {
    case cmos::kSeconds: case cmos::kMinutes: case cmos::kHours: case cmos::kDayOfWeek:
    case cmos::kDayOfMonth: case cmos::kMonth: case cmos::kYear: case cmos::kCentury:
        return true;
    default:
        return false;
    }
}
bool valid_bcd(uint8_t v) { return (v >> 4) < 10 && (v & 0xF) < 10; }

class Harness {
public:
    explicit Harness(uint8_t config)
        : cmos_(CmosConfig{uint64_t{config & 7u} << 28, uint64_t{(config >> 3) & 3u} << 32, 1u + (config >> 5)},
                [this] { return clock_(); }) {
        if (config & 0x80) clock_.now = 0;
        bus_.insert(platform::kCmosPort, 2, cmos_);
        // Plain CMOS RAM as the device starts.
        for (unsigned i = 0; i < cmos::kRamSize; ++i) ram_[i] = read_reg(static_cast<uint8_t>(i));
        index_ = 0;
        write_port(kIndexPort, 0);
    }

    void step(Input& in) {
        const uint8_t op = in.u8();
        switch (op % 8) {
        case 0: write_port(kIndexPort, in.u8()); break;
        case 1: check_read(read_port(kDataPort)); break;
        case 2: write_data(in.u8()); break;
        case 3: wide_access(in, op); break;
        case 4: change_clock(in, op); break;
        case 5: set_time(in, op); break;
        case 6: {  // one register of interest, written then read back
            static constexpr uint8_t kRegs[] = {cmos::kSeconds, cmos::kMinutes, cmos::kHours, cmos::kDayOfWeek,
                                                cmos::kDayOfMonth, cmos::kMonth, cmos::kYear, cmos::kCentury,
                                                cmos::kStatusA, cmos::kStatusB, cmos::kStatusC, cmos::kStatusD,
                                                cmos::kShutdownStatus, cmos::kSmpCount, 0x7F, 0x40};
            const uint8_t reg = kRegs[(op >> 3) % 16];
            write_port(kIndexPort, static_cast<uint8_t>(reg | (op & 0x80)));
            write_data(in.u8());
            check_read(read_port(kDataPort));
            break;
        }
        default:  // the index port is write-only
            check(read_port(kIndexPort) == 0xFF);
            break;
        }
    }

private:
    uint8_t read_port(uint16_t port) {
        uint8_t b;
        guarded_read(bus_, port, 1, &b);
        return b;
    }
    void write_port(uint16_t port, uint8_t value) {
        bus_.write(port, std::span<const uint8_t>(&value, 1));
        if (port == kIndexPort) index_ = value & 0x7F;
    }
    uint8_t read_reg(uint8_t index) {
        write_port(kIndexPort, index);
        return read_port(kDataPort);
    }

    // What a data write does to the registers the model tracks.
    void model_data_write(uint8_t value) {
        const uint8_t reg = index_;
        const uint8_t b = ram_[cmos::kStatusB];
        if (reg == cmos::kStatusA) {
            ram_[reg] = value & 0x7F;
        } else if (reg == cmos::kStatusB) {
            const bool set_changes = ((b ^ value) & cmos::kRegBSet) != 0;
            ram_[reg] = clock_.fails && set_changes ? b : value;  // entering/leaving SET reads the clock
        } else if (reg != cmos::kStatusC && reg != cmos::kStatusD && !is_time(reg)) {
            ram_[reg] = value;
        }
    }

    void write_data(uint8_t value) {
        const uint8_t reg = index_;
        model_data_write(value);
        write_port(kDataPort, value);
        // A valid seconds/minutes value reads back while the clock stands still.
        if ((reg == cmos::kSeconds || reg == cmos::kMinutes) && !clock_.fails) {
            const bool binary = ram_[cmos::kStatusB] & cmos::kRegBBinary;
            const unsigned v = binary ? value : (value >> 4) * 10 + (value & 0xF);
            if ((binary || valid_bcd(value)) && v <= 59) check(read_port(kDataPort) == value);
        }
    }

    // What the current index must read as.
    void check_read(uint8_t got) {
        const uint8_t reg = index_;
        const uint8_t b = ram_[cmos::kStatusB];
        if (is_time(reg)) {
            if (clock_.fails && !(b & cmos::kRegBSet)) {
                check(got == 0);
                return;
            }
            const bool binary = b & cmos::kRegBBinary;
            uint8_t v = got;
            if (reg == cmos::kHours && !(b & cmos::kRegB24Hour)) v &= 0x7F;
            if (!binary) {
                check(valid_bcd(v));
                v = static_cast<uint8_t>((v >> 4) * 10 + (v & 0xF));
            }
            switch (reg) {
            case cmos::kSeconds: case cmos::kMinutes: check(v <= 59); break;
            case cmos::kHours: check((b & cmos::kRegB24Hour) ? v <= 23 : (v >= 1 && v <= 12)); break;
            case cmos::kDayOfWeek: check(v >= 1 && v <= 7); break;
            case cmos::kDayOfMonth: check(v >= 1 && v <= 31); break;
            case cmos::kMonth: check(v >= 1 && v <= 12); break;
            default: check(v <= 99); break;  // year, century
            }
            return;
        }
        switch (reg) {
        case cmos::kStatusA: check(got == ram_[reg] && !(got & cmos::kRegAUip)); break;
        case cmos::kStatusC: check(got == 0); break;
        case cmos::kStatusD: check(got == cmos::kRegDValid); break;
        default: check(got == ram_[reg]); break;  // plain CMOS RAM (alarms included)
        }
    }

    // Accesses of every width at both ports: only those wholly inside 0x70-0x71 reach the device.
    void wide_access(Input& in, uint8_t op) {
        const size_t n = pick_access_size(op >> 3);
        const uint16_t port = (op & 0x80) ? kDataPort : kIndexPort;
        if (op & 0x40) {
            uint8_t got[8];
            guarded_read(bus_, port, n, got);
            if (port + n > kDataPort + 1u) {
                for (size_t i = 0; i < n; ++i) check(got[i] == 0xFF);
            } else if (n == 2) {
                check(got[0] == 0xFF);
                check_read(got[1]);
            }
        } else {
            uint8_t buf[8];
            in.fill(buf);
            if (port + n > kDataPort + 1u) {
                check(!bus_.write(port, std::span<const uint8_t>(buf, n)));
            } else if (n == 2) {  // index byte then data byte, as two ISA cycles
                check(bus_.write(port, std::span<const uint8_t>(buf, 2)));
                index_ = buf[0] & 0x7F;
                model_data_write(buf[1]);
            } else {
                port == kIndexPort ? write_port(port, buf[0]) : write_data(buf[0]);
            }
        }
    }

    void change_clock(Input& in, uint8_t op) {
        switch ((op >> 3) % 4) {
        case 0: clock_.now += in.u8(); break;
        case 1: clock_.now += in.u32(); break;
        case 2: clock_.now = static_cast<int64_t>(in.u64() % (uint64_t{1} << 38)); break;
        default: clock_.fails = !clock_.fails; break;
        }
    }

    // The sequence Linux's and SeaBIOS's RTC set routines use: B.SET on, time registers, B.SET off.
    void set_time(Input& in, uint8_t op) {
        const uint8_t mode = static_cast<uint8_t>((op & 0x80 ? cmos::kRegBBinary : 0) | (op & 0x40 ? cmos::kRegB24Hour : 0));
        write_port(kIndexPort, cmos::kStatusB);
        write_data(static_cast<uint8_t>(mode | cmos::kRegBSet));
        static constexpr uint8_t kTime[] = {cmos::kSeconds, cmos::kMinutes, cmos::kHours, cmos::kDayOfMonth,
                                            cmos::kMonth, cmos::kYear, cmos::kCentury};
        for (uint8_t reg : kTime) {
            write_port(kIndexPort, reg);
            write_data(in.u8());
            check_read(read_port(kDataPort));
        }
        write_port(kIndexPort, cmos::kStatusB);
        write_data(mode);
    }

    Clock clock_;
    Cmos cmos_;
    Bus bus_{"pio"};
    uint8_t ram_[cmos::kRamSize] = {};
    uint8_t index_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return run_operations<Harness>(data, size); }
