// The console's receive path across threads, as the machine wires it: a StdinReader thread
// feeds Uart16550::receive() while "vCPU" threads poll LSR, read RBR and write THR, and the
// machine swaps the consumer (guest reset). Every byte must arrive once and in order. The UART
// has no lock: every call takes the device lock as the machine does (devices/device.hpp).
// Meant to run under ThreadSanitizer too (scripts/test --tsan), which checks that rule.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "devices/bus.hpp"
#include "devices/uart16550.hpp"
#include "vmm/base/platform.hpp"
#include "vmm/host/console.hpp"

using namespace minivmm;
using namespace std::chrono_literals;

namespace {

struct CountingIrq : IrqLine {
    std::atomic<unsigned> edges{0};
    void set(bool) noexcept override { ++edges; }
};

struct LockedRecorder : ByteSink {
    std::mutex m;
    std::string text;
    void write(std::span<const uint8_t> bytes) noexcept override {
        std::lock_guard g(m);
        text.append(bytes.begin(), bytes.end());
    }
};

constexpr uint64_t kRbr = Uart16550::kRbrThrDll, kFcr = Uart16550::kIirFcr, kLsr = Uart16550::kLsr,
                   kIer = Uart16550::kIerDlm, kIir = Uart16550::kIirFcr;

// The machine's two ways into the UART, both under its device lock: a vCPU's port access
// through the bus (vmm/kvm/vcpu.cpp) and console input (Machine::serial_input).
struct Board {
    Board(IrqLine& irq, ByteSink* out) : uart(irq, out) { pio.insert(platform::kCom1Port, Uart16550::kSize, uart); }
    std::mutex device_lock;
    Uart16550 uart;
    Bus pio{"port I/O"};
    size_t serial_input(std::span<const uint8_t> bytes) {
        std::lock_guard g(device_lock);
        return uart.receive(bytes);
    }
};

uint8_t rd(Board& b, uint64_t off) {
    uint8_t v = 0;
    std::lock_guard g(b.device_lock);
    b.pio.read(platform::kCom1Port + off, std::span(&v, 1));
    return v;
}
void wr(Board& b, uint64_t off, uint8_t v) {
    std::lock_guard g(b.device_lock);
    b.pio.write(platform::kCom1Port + off, std::span<const uint8_t>(&v, 1));
}

std::string make_input(size_t n) {
    std::string s;
    for (size_t i = 0; i < n; ++i) {
        char c = static_cast<char>(' ' + (i * 13) % 90);
        s.push_back(c);
    }
    return s;  // no 0x01, so the Ctrl-A escape never triggers
}

// Writes `data` to `fd` in chunks from its own thread (the pipe may fill).
std::thread writer_thread(int fd, std::string data) {
    return std::thread([fd, data = std::move(data)] {
        size_t off = 0;
        while (off < data.size()) {
            const ssize_t n = ::write(fd, data.data() + off, std::min<size_t>(97, data.size() - off));
            if (n <= 0) break;
            off += static_cast<size_t>(n);
        }
        ::close(fd);
    });
}

bool wait_for_finish(const StdinReader& reader) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!reader.finished()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

}  // namespace

TEST_CASE("uart receive path: console thread feeds, vCPU thread drains, nothing lost or reordered") {
    for (const bool fifo : {false, true}) {
        CAPTURE(fifo);
        CountingIrq irq;
        LockedRecorder tx;
        Board board(irq, &tx);
        wr(board, kIer, 0x01);                // RX data interrupt on, so receive() drives the IRQ
        wr(board, Uart16550::kMcr, 0x08);     // OUT2: the IRQ reaches the line
        if (fifo) wr(board, kFcr, 0x01);
        int fds[2];
        REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
        // The reader re-offers refused bytes about every millisecond: keep the non-FIFO case short.
        const std::string input = make_input(fifo ? 4000 : 800);
        StdinReader reader([&board](std::span<const uint8_t> b) { return board.serial_input(b); }, {}, fds[0]);
        std::thread writer = writer_thread(fds[1], input);

        // A second vCPU hammers THR/IIR/LSR meanwhile, as an SMP guest printing would.
        std::atomic<bool> stop{false};
        std::thread other([&] {
            unsigned n = 0;
            while (!stop.load()) {
                wr(board, kRbr, static_cast<uint8_t>('a' + n++ % 26));
                (void)rd(board, kIir);
                (void)rd(board, kLsr);
            }
        });

        std::string got;
        const auto deadline = std::chrono::steady_clock::now() + 60s;
        while (got.size() < input.size() && std::chrono::steady_clock::now() < deadline) {
            if (rd(board, kLsr) & 0x01)
                got.push_back(static_cast<char>(rd(board, kRbr)));
            else
                std::this_thread::yield();
        }
        stop = true;
        other.join();
        writer.join();
        CHECK(got.size() == input.size());
        CHECK(got == input);
        CHECK(wait_for_finish(reader));
        CHECK(irq.edges.load() > 0);
        std::lock_guard g(tx.m);
        CHECK(tx.text.size() > 0);
        ::close(fds[0]);
    }
}

TEST_CASE("uart receive path: the consumer is swapped to a new UART while input flows (guest reset)") {
    CountingIrq irq;
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    const std::string input = make_input(2400);
    auto board = std::make_unique<Board>(irq, nullptr);
    StdinReader reader([&](std::span<const uint8_t> b) { return board->serial_input(b); }, {}, fds[0]);
    std::thread writer = writer_thread(fds[1], input);

    std::string got;
    unsigned swaps = 0;
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (got.size() < input.size() && std::chrono::steady_clock::now() < deadline) {
        if (rd(*board, kLsr) & 0x01) {
            got.push_back(static_cast<char>(rd(*board, kRbr)));
        } else if (got.size() / 400 > swaps) {
            // The old UART is empty (LSR.DR clear): replace it, as a reset builds a new machine.
            // set_deliver(nullptr) returns once the old callback cannot run any more.
            reader.set_deliver(nullptr);
            while (rd(*board, kLsr) & 0x01) got.push_back(static_cast<char>(rd(*board, kRbr)));
            board = std::make_unique<Board>(irq, nullptr);
            reader.set_deliver([&](std::span<const uint8_t> b) { return board->serial_input(b); });
            ++swaps;
        } else {
            std::this_thread::yield();
        }
    }
    writer.join();
    CHECK(swaps >= 5);
    CHECK(got == input);
    CHECK(wait_for_finish(reader));  // EOF seen: the reader no longer uses the fd
    ::close(fds[0]);
}
