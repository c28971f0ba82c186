// libFuzzer target for the debugcon port (0x402). The input is a configuration byte (with or
// without an output sink) followed by reads and writes of every size (1..8) at ports 0x3FA-0x409
// through the PIO bus, and writes straight to the device of 1..8 bytes (what a caller that
// bypasses the bus could hand it).
// Checks: a 1-byte read of 0x402 returns 0xE9 (what SeaBIOS probes for); every other read reads
// all-ones and reaches no device; a write succeeds exactly when it is the single byte at 0x402,
// and the sink then receives exactly that byte, in order; nothing else ever reaches the sink;
// without a sink nothing is written anywhere.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "devices/debug_port.hpp"
#include "tests/fuzz/fuzz_support.hpp"
#include "devices/bus.hpp"
#include "vmm/base/platform.hpp"

using namespace minivmm;
using namespace minivmm::fuzz;

namespace {

constexpr uint16_t kPort = platform::kDebugPort;

class RecordingSink final : public ByteSink {
public:
    void write(std::span<const uint8_t> bytes) noexcept override {
        check(!bytes.empty());
        out.insert(out.end(), bytes.begin(), bytes.end());
    }
    std::vector<uint8_t> out;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Input in(data, size);
    const bool with_sink = in.u8() & 1;
    RecordingSink sink;
    DebugPort port(with_sink ? &sink : nullptr);
    Bus bus("pio");
    bus.insert(kPort, DebugPort::kSize, port);
    std::vector<uint8_t> expected;  // what the sink must have received

    for (unsigned ops = 0; !in.empty() && ops < 4096; ++ops) {
        const uint8_t op = in.u8();
        const size_t n = pick_access_size(op >> 2);
        switch (op % 4) {
        case 0: {
            const uint64_t at = kPort - 8 + in.u8() % 16;
            uint8_t got[8];
            guarded_read(bus, at, n, got);
            const uint8_t want = at == kPort && n == 1 ? DebugPort::kReadbackValue : 0xFF;
            for (size_t i = 0; i < n; ++i) check(got[i] == want);
            break;
        }
        case 1:
        case 2: {  // the common case: one character at the port
            const uint64_t at = (op & 0x80) ? kPort - 8 + in.u8() % 16 : kPort;
            const size_t len = (op & 0x80) ? n : 1;
            uint8_t buf[8];
            in.fill(std::span<uint8_t>(buf, len));
            const bool hit = at == kPort && len == 1;
            check(bus.write(at, std::span<const uint8_t>(buf, len)) == hit);
            if (hit && with_sink) expected.push_back(buf[0]);
            break;
        }
        default: {  // straight to the device: every byte is a character
            if (op & 0x80) {
                uint8_t got[8 + 16];
                std::memset(got, 0x5A, sizeof got);
                port.read(0, std::span<uint8_t>(got + 8, n));
                for (size_t i = 0; i < 8; ++i) check(got[i] == 0x5A && got[8 + n + i] == 0x5A);
                for (size_t i = 0; i < n; ++i) check(got[8 + i] == DebugPort::kReadbackValue);
            } else {
                uint8_t buf[8];
                in.fill(std::span<uint8_t>(buf, n));
                port.write(0, std::span<const uint8_t>(buf, n));
                if (with_sink) expected.insert(expected.end(), buf, buf + n);
            }
            break;
        }
        }
        check(sink.out.size() == expected.size());
    }
    check(sink.out == expected);
    return 0;
}
