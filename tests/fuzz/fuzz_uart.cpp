// libFuzzer target for the 16550 UART. The input is a configuration byte followed by operations:
// register reads and writes of every size at every offset (through the PIO bus, so wide
// accesses are split by the device and accesses past the 8 ports never arrive), host input of
// up to 64 bytes at a time, a driver-style initialisation and receive-buffer drains.
// A byte-level model of DLAB, MCR (loopback), SCR and the receiver FIFO (capacity 16 or 1,
// cleared as FCR says) predicts every RBR/SCR/LCR/MCR byte read, LSR.DR, how much host input is
// accepted and every byte that reaches the output sink. The IRQ line only ever sees edges and
// is never raised with OUT2 off or in loopback.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

#include "devices/uart16550.hpp"
#include "tests/fuzz/fuzz_support.hpp"
#include "devices/bus.hpp"
#include "vmm/base/platform.hpp"

using namespace minivmm;
using namespace minivmm::fuzz;

namespace {

constexpr uint16_t kBase = platform::kCom1Port;

class RecordingSink final : public ByteSink {
public:
    void write(std::span<const uint8_t> bytes) noexcept override { out.insert(out.end(), bytes.begin(), bytes.end()); }
    std::vector<uint8_t> out;
};

// What the guest can observe of the UART, byte by byte.
struct Model {
    uint8_t lcr = 0, mcr = 0, scr = 0, fcr = 0;
    std::deque<uint8_t> rx;
    uint8_t rbr_last = 0;
    std::vector<uint8_t> transmitted;

    bool dlab() const { return lcr & 0x80; }
    bool loopback() const { return mcr & 0x10; }
    size_t capacity() const { return (fcr & 1) ? Uart16550::kFifoSize : 1; }
    bool push(uint8_t b) {
        if (rx.size() >= capacity()) return false;
        rx.push_back(b);
        return true;
    }
    void write(uint64_t reg, uint8_t v) {
        switch (reg) {
        case 0:
            if (dlab()) break;
            if (loopback()) push(v);
            else transmitted.push_back(v);
            break;
        case 2: {  // PC16550D §8.4
            const bool enable = v & 1;
            if (enable != bool(fcr & 1)) rx.clear();
            if (!enable) {
                fcr = 0;
            } else {
                if (v & 2) rx.clear();
                fcr = v & 0xC9;
            }
            break;
        }
        case 3: lcr = v; break;
        case 4: mcr = v & 0x1F; break;
        case 7: scr = v; break;
        default: break;
        }
    }
    // Checks one byte the device returned for register `reg`.
    void read(uint64_t reg, uint8_t got) {
        switch (reg) {
        case 0:
            if (dlab()) break;
            if (!rx.empty()) {
                rbr_last = rx.front();
                rx.pop_front();
            }
            check(got == rbr_last);
            break;
        case 1: if (!dlab()) check((got & 0xF0) == 0); break;
        case 2: {
            static constexpr uint8_t kIds[] = {0x01, 0x06, 0x04, 0x0C, 0x02, 0x00};
            bool known = false;
            for (uint8_t id : kIds) known |= (got & 0x0F) == id;
            check(known && (got & 0x30) == 0);
            check(((got & 0xC0) == 0xC0) == bool(fcr & 1));
            break;
        }
        case 3: check(got == lcr); break;
        case 4: check(got == mcr); break;
        case 5: check(bool(got & 1) == !rx.empty() && (got & 0x60) == 0x60 && !(got & 0x80)); break;
        case 7: check(got == scr); break;
        default: break;
        }
    }
};

class Harness {
public:
    explicit Harness(uint8_t config) : uart_(irq_, (config & 1) ? nullptr : &sink_), discard_(config & 1) {
        bus_.insert(kBase, Uart16550::kSize, uart_);
    }

    void step(Input& in) {
        const uint8_t op = in.u8();
        switch (op % 8) {
        case 0: case 1: case 2: read(pick_offset(in), pick_access_size(op >> 3)); break;
        case 3: case 4: {
            uint8_t buf[8];
            in.fill(buf);
            write(pick_offset(in), std::span<const uint8_t>(buf, pick_access_size(op >> 3)));
            break;
        }
        case 5: {  // host input
            std::vector<uint8_t> bytes = in.bytes(in.u8() % 65);
            const size_t accepted = uart_.receive(bytes);
            size_t expected = 0;
            if (!model_.loopback())
                while (expected < bytes.size() && model_.push(bytes[expected])) ++expected;
            check(accepted == expected);
            break;
        }
        case 6: {  // driver-style set-up: divisor, 8N1, FIFOs, OUT2, interrupts
            const uint8_t seq[][2] = {{3, 0x80}, {0, in.u8()}, {1, 0}, {3, 0x03}, {2, in.u8()}, {4, in.u8()}, {1, in.u8()}};
            for (const auto& s : seq) write(s[0], std::span<const uint8_t>(&s[1], 1));
            break;
        }
        default: {  // drain the receiver like a polling driver
            for (unsigned i = 0; i < 20; ++i) {
                uint8_t lsr;
                read(5, 1, &lsr);
                if (!(lsr & 1)) break;
                read(0, 1);
            }
            break;
        }
        }
        check(irq_.level == uart_.irq_level());
        if (irq_.level) check((model_.mcr & 0x08) && !model_.loopback());
        if (!discard_) check(sink_.out == model_.transmitted);
    }

private:
    static uint64_t pick_offset(Input& in) {
        const uint8_t sel = in.u8();
        return sel < 0xF0 ? sel % 8 : sel % 16;
    }

    void read(uint64_t offset, size_t n, uint8_t* first = nullptr) {
        uint8_t got[8];
        guarded_read(bus_, kBase + offset, n, got);
        if (offset + n > Uart16550::kSize) {
            for (size_t i = 0; i < n; ++i) check(got[i] == 0xFF);
        } else {
            for (size_t i = 0; i < n; ++i) model_.read(offset + i, got[i]);
        }
        if (first) *first = got[0];
    }

    void write(uint64_t offset, std::span<const uint8_t> data) {
        const bool delivered = bus_.write(kBase + offset, data);
        check(delivered == (offset + data.size() <= Uart16550::kSize));
        if (delivered)
            for (size_t i = 0; i < data.size(); ++i) model_.write(offset + i, data[i]);
    }

    EdgeCheckingIrq irq_;
    RecordingSink sink_;
    Uart16550 uart_;
    bool discard_;
    Bus bus_{"pio"};
    Model model_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return run_operations<Harness>(data, size); }
