// libFuzzer target for the snapshot blobs of device state (devices/device_state.hpp): a snapshot
// is a file a user may be handed. The first byte picks the device (UART, CMOS/RTC), the rest is
// the blob given to a fresh device's load_state.
// Checks: a refused blob leaves the device exactly as it was (its own saved state unchanged, no IRQ
// edge); an accepted blob saves back byte for byte (the encoding has one spelling per state), and
// the device then survives register accesses of every kind (ASan/UBSan watch the indexes the blob
// set: the FIFO head and count, the CMOS index, the held date).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "devices/cmos.hpp"
#include "devices/device_state.hpp"
#include "devices/uart16550.hpp"

using namespace minivmm;

namespace {

struct CountingIrq : IrqLine {
    int edges = 0;
    void set(bool) noexcept override { ++edges; }
};

struct NullSink : ByteSink {
    void write(std::span<const uint8_t>) noexcept override {}
};

void check(bool ok) {
    if (!ok) std::abort();
}

void fuzz_uart(std::span<const uint8_t> blob) {
    CountingIrq irq;
    NullSink out;
    Uart16550 u(irq, &out);
    const std::vector<uint8_t> before = saved_state(u);
    if (!u.load_state(blob)) {
        check(saved_state(u) == before && irq.edges == 0);
        return;
    }
    check(saved_state(u) == std::vector<uint8_t>(blob.begin(), blob.end()));
    uint8_t v = 0;
    for (int round = 0; round < 20; ++round)
        for (uint64_t off = 0; off < Uart16550::kSize; ++off) u.read(off, std::span(&v, 1));
    const uint8_t input[] = {'a', 'b', 'c'};
    u.receive(input);
    u.write(0, std::span<const uint8_t>(input, 1));
}

void fuzz_cmos(std::span<const uint8_t> blob) {
    Cmos cmos({512ull << 20, 0, 1}, [] { return int64_t{1'700'000'000}; });
    const std::vector<uint8_t> before = saved_state(cmos);
    if (!cmos.load_state(blob)) {
        check(saved_state(cmos) == before);
        return;
    }
    check(saved_state(cmos) == std::vector<uint8_t>(blob.begin(), blob.end()));
    uint8_t v = 0;
    cmos.read(1, std::span(&v, 1));  // the restored index
    for (uint8_t index = 0; index < cmos::kRamSize; ++index) {
        cmos.write(0, std::span<const uint8_t>(&index, 1));
        cmos.read(1, std::span(&v, 1));
    }
    // SET off then on: the held date is encoded, and the offset turned into a time.
    const uint8_t b = cmos::kStatusB, set = cmos::kRegBSet | cmos::kRegB24Hour, run = cmos::kRegB24Hour;
    for (uint8_t value : {set, run, set}) {
        cmos.write(0, std::span<const uint8_t>(&b, 1));
        cmos.write(1, std::span<const uint8_t>(&value, 1));
        for (uint8_t index : {cmos::kSeconds, cmos::kHours, cmos::kDayOfMonth, cmos::kMonth, cmos::kYear, cmos::kCentury}) {
            cmos.write(0, std::span<const uint8_t>(&index, 1));
            cmos.read(1, std::span(&v, 1));
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const std::span<const uint8_t> blob(data + 1, size - 1);
    if (data[0] & 1)
        fuzz_cmos(blob);
    else
        fuzz_uart(blob);
    return 0;
}
