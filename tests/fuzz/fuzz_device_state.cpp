// libFuzzer target for the snapshot blobs of device state (devices/device_state.hpp): a snapshot
// is a file a user may be handed. The first byte picks the device (UART, CMOS/RTC, ACPI PM block,
// reset control, A20 gate), the rest is the blob given to a fresh device's load_state.
// Checks: a refused blob leaves the device exactly as it was (its own saved state unchanged, no IRQ
// edge); an accepted blob saves back byte for byte (the encoding has one spelling per state), and
// the device then survives register accesses of every kind (ASan/UBSan watch the indexes the blob
// set: the FIFO head and count, the CMOS index, the held date).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "devices/acpi_pm.hpp"
#include "devices/cmos.hpp"
#include "devices/device_state.hpp"
#include "devices/reset_control.hpp"
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

struct CountingSystem : SystemControl {
    int requests = 0;
    void request_reset() noexcept override { ++requests; }
    void request_poweroff() noexcept override { ++requests; }
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

// A device with no side channel: refused leaves it as it was, accepted saves back the same bytes,
// and loading never resets or powers off the machine; then every register is read and written.
template <typename D>
void fuzz_simple(D& device, CountingSystem& system, std::span<const uint8_t> blob, uint64_t size) {
    const std::vector<uint8_t> before = saved_state(device);
    if (!device.load_state(blob)) {
        check(saved_state(device) == before);
    } else {
        check(saved_state(device) == std::vector<uint8_t>(blob.begin(), blob.end()));
        uint8_t v[4] = {};
        for (uint64_t off = 0; off < size; ++off) device.read(off, std::span(v, 1));
        if (size >= 4) device.read(0, std::span(v, 4));
    }
    check(system.requests == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const std::span<const uint8_t> blob(data + 1, size - 1);
    CountingSystem system;
    uint64_t clock = 5'000'000'000;
    switch (data[0] % 5) {
    case 0: fuzz_uart(blob); break;
    case 1: fuzz_cmos(blob); break;
    case 2: {
        AcpiPm pm(system, [&] { return clock; });
        fuzz_simple(pm, system, blob, AcpiPm::kSize);
        clock += 3'000'000'000;  // the timer goes on from the loaded ticks without overflow
        uint8_t v[4] = {};
        pm.read(0, std::span(v, 4));
        pm.read(AcpiPm::kTimerOffset, std::span(v, 4));
        break;
    }
    case 3: {
        ResetControl cf9(system);
        fuzz_simple(cf9, system, blob, ResetControl::kSize);
        break;
    }
    default: {
        A20Gate a20(system);
        fuzz_simple(a20, system, blob, A20Gate::kSize);
        break;
    }
    }
    return 0;
}
