// libFuzzer target for the two reset registers: 0xCF9 (reset control, behind the 0xCF8-0xCFF
// decoder it shares with PCI configuration mechanism #1) and 0x92 (System Control Port A). The
// input is a sequence of reads and writes of every size (1..8) at ports 0x8E-0x95 and
// 0xCF4-0xD03 through the PIO bus, writes of single values of interest (SeaBIOS's 0x02/0x06,
// the ACPI RESET_REG value), and reads straight from the reset device.
// Checks: only a 1-byte access at 0xCF9 reaches the reset control, every other access inside
// 0xCF8-0xCFF reaches the PCI configuration device with its offset, size and bytes intact; 0xCF9
// reads back SYS_RST and FULL_RST as last written, never RST_CPU; port 0x92 reads back the A20
// bit as last written and bit 0 as 0; a reset is requested exactly once per write with RST_CPU
// (0xCF9) or fast-reset (0x92) set, never on reads or elsewhere; power-off is never requested;
// accesses not wholly inside a device fail, read all-ones and change nothing.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "devices/cf9_decoder.hpp"
#include "devices/reset_control.hpp"
#include "tests/fuzz/fuzz_support.hpp"
#include "devices/bus.hpp"
#include "vmm/base/platform.hpp"

using namespace minivmm;
using namespace minivmm::fuzz;

namespace {

constexpr uint16_t kCf8 = platform::kPciConfigAddress;
constexpr uint16_t kCf9 = platform::kResetControlPort;
constexpr uint16_t kPort92 = platform::kA20Port;

class RecordingSystem final : public SystemControl {
public:
    void request_reset() noexcept override { ++resets; }
    void request_poweroff() noexcept override { ++poweroffs; }
    unsigned resets = 0, poweroffs = 0;
};

// Stands in for PCI configuration mechanism #1: records the last access, reads a pattern.
class RecordingPci final : public Device {
public:
    std::string_view name() const noexcept override { return "pci-config"; }
    void read(uint64_t offset, std::span<uint8_t> data) noexcept override {
        record(offset, data.size(), false);
        for (size_t i = 0; i < data.size(); ++i) data[i] = pattern(offset + i);
    }
    void write(uint64_t offset, std::span<const uint8_t> data) noexcept override {
        record(offset, data.size(), true);
        std::memcpy(last_data, data.data(), data.size());
    }
    static uint8_t pattern(uint64_t at) { return static_cast<uint8_t>(0x30 + at); }
    unsigned accesses = 0;
    uint64_t last_offset = 0;
    size_t last_size = 0;
    bool last_write = false;
    uint8_t last_data[8] = {};

private:
    void record(uint64_t offset, size_t n, bool write) {
        check(offset < 8 && n >= 1 && n <= 8 - offset);
        check(!(offset == 1 && n == 1));  // that one is the reset control's
        ++accesses;
        last_offset = offset;
        last_size = n;
        last_write = write;
    }
};

class Harness {
public:
    Harness() {
        bus_.insert(kCf8, 8, decoder_);
        bus_.insert(kPort92, A20Gate::kSize, a20_);
    }

    void step(Input& in) {
        const uint8_t op = in.u8();
        const size_t n = pick_access_size(op >> 3);
        switch (op % 4) {
        case 0: access(pick_port(in.u8()), n, false, in); break;
        case 1: access(pick_port(in.u8()), n, true, in); break;
        case 2: {  // one byte of interest at one of the two registers
            static constexpr uint8_t kValues[8] = {0x02, 0x06, platform::kResetValue, 0x0E, 0x08, 0x01, 0x03, 0xFF};
            const uint8_t v = (op & 0x80) ? in.u8() : kValues[(op >> 3) & 7];
            const uint16_t port = (op & 0x40) ? kPort92 : kCf9;
            write_expect(port, &v, 1);
            break;
        }
        default: {  // reads straight from the device never reset and read the stored bits
            uint8_t got[8];
            reset_.read(0, std::span<uint8_t>(got, n));
            for (size_t i = 0; i < n; ++i) check(got[i] == cf9_);
            break;
        }
        }
        check(system_.resets == resets_);
        check(system_.poweroffs == 0);
        check(a20_.a20_enabled() == ((port92_ & A20Gate::kA20Enable) != 0));
    }

private:
    static uint64_t pick_port(uint8_t sel) {
        return (sel & 0x80) ? kPort92 - 4 + (sel & 7) : kCf8 - 4 + (sel & 0xF);
    }

    void access(uint64_t port, size_t n, bool write, Input& in) {
        if (write) {
            uint8_t buf[8];
            in.fill(std::span<uint8_t>(buf, n));
            write_expect(port, buf, n);
            return;
        }
        uint8_t got[8];
        const unsigned before = pci_.accesses;
        guarded_read(bus_, port, n, got);
        if (port == kCf9 && n == 1) {
            check(got[0] == cf9_ && pci_.accesses == before);
        } else if (port == kPort92 && n == 1) {
            check(got[0] == port92_ && pci_.accesses == before);
        } else if (port >= kCf8 && port + n <= kCf8 + 8u) {
            check(pci_.accesses == before + 1 && pci_.last_offset == port - kCf8 && pci_.last_size == n && !pci_.last_write);
            for (size_t i = 0; i < n; ++i) check(got[i] == RecordingPci::pattern(port - kCf8 + i));
        } else {
            check(pci_.accesses == before);
            for (size_t i = 0; i < n; ++i) check(got[i] == 0xFF);
        }
    }

    void write_expect(uint64_t port, const uint8_t* buf, size_t n) {
        const unsigned before = pci_.accesses;
        const bool ok = bus_.write(port, std::span<const uint8_t>(buf, n));
        if (port == kCf9 && n == 1) {
            check(ok && pci_.accesses == before);
            cf9_ = buf[0] & (ResetControl::kSystemReset | ResetControl::kFullReset);
            if (buf[0] & ResetControl::kResetCpu) ++resets_;
        } else if (port == kPort92 && n == 1) {
            check(ok && pci_.accesses == before);
            port92_ = buf[0] & A20Gate::kA20Enable;
            if (buf[0] & A20Gate::kFastReset) ++resets_;
        } else if (port >= kCf8 && port + n <= kCf8 + 8u) {
            check(ok && pci_.accesses == before + 1 && pci_.last_offset == port - kCf8 && pci_.last_size == n &&
                  pci_.last_write && std::memcmp(pci_.last_data, buf, n) == 0);
        } else {
            check(!ok && pci_.accesses == before);
        }
    }

    RecordingSystem system_;
    RecordingPci pci_;
    ResetControl reset_{system_};
    A20Gate a20_{system_};
    Cf9Decoder decoder_{pci_, reset_};
    Bus bus_{"pio"};
    uint8_t cf9_ = 0;                       // model of 0xCF9's stored bits
    uint8_t port92_ = A20Gate::kA20Enable;  // model of port 0x92: A20 on from power-up
    unsigned resets_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Input in(data, size);
    Harness h;
    for (unsigned ops = 0; !in.empty() && ops < 4096; ++ops) h.step(in);
    return 0;
}
