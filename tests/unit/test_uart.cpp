#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "devices/uart16550.hpp"

using namespace minivmm;

namespace {

struct FakeIrq : IrqLine {
    std::vector<bool> edges;  // every set() call, in order
    void set(bool level) noexcept override { edges.push_back(level); }
};

struct Recorder : ByteSink {
    std::string text;
    void write(std::span<const uint8_t> bytes) noexcept override { text.append(bytes.begin(), bytes.end()); }
};

constexpr uint64_t THR = 0, RBR = 0, DLL = 0, IER = 1, DLM = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5,
                   MSR = 6, SCR = 7;

uint8_t rd(Uart16550& u, uint64_t off) {
    uint8_t v = 0xAA;
    u.read(off, std::span(&v, 1));
    return v;
}
void wr(Uart16550& u, uint64_t off, uint8_t v) { u.write(off, std::span<const uint8_t>(&v, 1)); }
size_t feed(Uart16550& u, std::string_view s) {
    return u.receive(std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
}

}  // namespace

TEST_CASE("uart: power-on register values and no spurious IRQ") {
    FakeIrq irq;
    Recorder out;
    Uart16550 u(irq, &out);
    CHECK(rd(u, IER) == 0x00);
    CHECK(rd(u, IIR) == 0x01);  // no interrupt, FIFOs off
    CHECK(rd(u, LCR) == 0x00);
    CHECK(rd(u, MCR) == 0x00);
    CHECK(rd(u, LSR) == 0x60);  // THRE | TEMT
    CHECK(rd(u, MSR) == 0xB0);  // DCD | DSR | CTS, no deltas
    CHECK(rd(u, SCR) == 0x00);
    CHECK(irq.edges.empty());
    CHECK_FALSE(u.irq_level());
}

TEST_CASE("uart: DLAB switches offsets 0/1 to the divisor latch") {
    FakeIrq irq;
    Recorder out;
    Uart16550 u(irq, &out);
    wr(u, LCR, 0x80);
    CHECK(rd(u, DLL) == 0x0C);  // 9600 baud default
    CHECK(rd(u, DLM) == 0x00);
    wr(u, DLL, 0x01);
    wr(u, DLM, 0x02);
    CHECK(rd(u, DLL) == 0x01);
    CHECK(rd(u, DLM) == 0x02);
    CHECK(out.text.empty());  // DLL write is not a transmit
    CHECK(rd(u, LCR) == 0x80);
    wr(u, LCR, 0x03);  // 8N1, DLAB off
    CHECK(rd(u, LCR) == 0x03);
    CHECK(rd(u, IER) == 0x00);  // IER untouched by the DLM write
    wr(u, THR, 'A');
    CHECK(out.text == "A");
    wr(u, LCR, 0x83);
    CHECK(rd(u, DLL) == 0x01);  // latch kept
    CHECK(rd(u, DLM) == 0x02);
    wr(u, LCR, 0x5B);  // every LCR bit reads back
    CHECK(rd(u, LCR) == 0x5B);
}

TEST_CASE("uart: SCR, IER and MCR masks; LSR/MSR writes ignored") {
    FakeIrq irq;
    Uart16550 u(irq, nullptr);
    wr(u, SCR, 0x5A);
    CHECK(rd(u, SCR) == 0x5A);
    wr(u, IER, 0xFF);
    CHECK(rd(u, IER) == 0x0F);
    wr(u, MCR, 0xE0);
    CHECK(rd(u, MCR) == 0x00);
    wr(u, LSR, 0x00);
    wr(u, MSR, 0xFF);
    CHECK(rd(u, LSR) == 0x60);
    CHECK(rd(u, MSR) == 0xB0);
    wr(u, THR, 'x');  // serial none: discarded, no crash
}

TEST_CASE("uart: SeaBIOS detect_serial probe (IER=0x02 read-back, IIR low bits 0x02)") {
    FakeIrq irq;
    Uart16550 u(irq, nullptr);
    wr(u, IER, 0x02);
    CHECK(rd(u, IER) == 0x02);
    CHECK((rd(u, IIR) & 0x3F) == 0x02);
    wr(u, IER, 0x00);
    CHECK(rd(u, IIR) == 0x01);
    // SeaBIOS sercon then programs LCR=3, FCR=1: IIR shows the FIFO bits.
    wr(u, LCR, 0x03);
    wr(u, FCR, 0x01);
    CHECK(rd(u, IIR) == 0xC1);
    CHECK(irq.edges.empty());  // OUT2 never set: the IRQ stays quiet
}

TEST_CASE("uart: THRE interrupt, clear on IIR read and re-raise after each THR write") {
    FakeIrq irq;
    Recorder out;
    Uart16550 u(irq, &out);
    wr(u, MCR, 0x08);  // OUT2
    CHECK(irq.edges.empty());
    wr(u, IER, 0x02);
    REQUIRE(irq.edges == std::vector<bool>{true});
    CHECK(u.irq_level());
    CHECK(rd(u, IIR) == 0x02);
    CHECK(irq.edges == std::vector<bool>{true, false});
    CHECK(rd(u, IIR) == 0x01);  // cleared by the read
    wr(u, THR, 'h');
    CHECK(irq.edges == std::vector<bool>{true, false, true});
    wr(u, THR, 'i');  // pending THRE: the write pulses the line low then high (a new edge)
    CHECK(irq.edges == std::vector<bool>{true, false, true, false, true});
    CHECK(out.text == "hi");
    wr(u, IER, 0x00);  // masked: line drops
    CHECK(irq.edges.back() == false);
    CHECK_FALSE(u.irq_level());
    // Re-enabling ETBEI with THR empty raises it again (Linux's UART_BUG_THRE probe relies on it).
    wr(u, IER, 0x02);
    CHECK(u.irq_level());
}

TEST_CASE("uart: OUT2 gates the IRQ output; edges only on changes") {
    FakeIrq irq;
    Uart16550 u(irq, nullptr);
    wr(u, IER, 0x02);
    CHECK(irq.edges.empty());  // pending but OUT2 clear
    CHECK(rd(u, IIR) == 0x02);
    wr(u, IER, 0x00);
    wr(u, IER, 0x02);  // pending again
    wr(u, MCR, 0x08);
    CHECK(irq.edges == std::vector<bool>{true});
    wr(u, MCR, 0x0B);  // DTR/RTS changes, still OUT2: no new edge
    CHECK(irq.edges == std::vector<bool>{true});
    wr(u, MCR, 0x03);
    CHECK(irq.edges == std::vector<bool>{true, false});
    wr(u, MCR, 0x03);
    CHECK(irq.edges.size() == 2);
}

TEST_CASE("uart: receive() with FIFOs off holds one byte and never overruns") {
    FakeIrq irq;
    Uart16550 u(irq, nullptr);
    CHECK(feed(u, "abc") == 1);
    CHECK(feed(u, "bc") == 0);
    CHECK(rd(u, LSR) == 0x61);  // DR, no OE
    CHECK(rd(u, RBR) == 'a');
    CHECK(rd(u, LSR) == 0x60);
    CHECK(rd(u, RBR) == 'a');  // empty receiver: last byte again, harmless
    CHECK(feed(u, "bc") == 1);
    CHECK(rd(u, RBR) == 'b');
    CHECK(feed(u, "") == 0);
}

TEST_CASE("uart: 16-byte FIFO fill, partial accept, order, resets") {
    FakeIrq irq;
    Uart16550 u(irq, nullptr);
    wr(u, FCR, 0x01);
    const std::string input = "0123456789ABCDEFGHIJ";
    CHECK(feed(u, input) == 16);
    CHECK(feed(u, "GHIJ") == 0);
    CHECK((rd(u, LSR) & 0x02) == 0);  // host input never causes an overrun
    CHECK(rd(u, RBR) == '0');
    CHECK(feed(u, "GHIJ") == 1);
    std::string got;
    while (rd(u, LSR) & 0x01) got.push_back(static_cast<char>(rd(u, RBR)));
    CHECK(got == "123456789ABCDEFG");

    CHECK(feed(u, "xyz") == 3);
    wr(u, FCR, 0x03);  // RX FIFO reset
    CHECK((rd(u, LSR) & 0x01) == 0);
    CHECK(feed(u, "xyz") == 3);
    wr(u, FCR, 0x00);  // disabling the FIFOs clears them and goes back to one byte
    CHECK((rd(u, LSR) & 0x01) == 0);
    CHECK(rd(u, IIR) == 0x01);
    CHECK(feed(u, "xy") == 1);
    wr(u, FCR, 0xC0);  // trigger bits without FCR0 are not programmed
    CHECK(rd(u, IIR) == 0x01);
}

TEST_CASE("uart: RX data interrupt, trigger level and character-timeout approximation") {
    FakeIrq irq;
    Uart16550 u(irq, nullptr);
    wr(u, MCR, 0x08);
    wr(u, IER, 0x01);
    SUBCASE("FIFOs off: any byte") {
        CHECK(feed(u, "q") == 1);
        CHECK(rd(u, IIR) == 0x04);
        CHECK(u.irq_level());
        CHECK(rd(u, RBR) == 'q');
        CHECK(rd(u, IIR) == 0x01);
        CHECK(irq.edges == std::vector<bool>{true, false});
    }
    SUBCASE("trigger 14") {
        wr(u, FCR, 0xC1);
        CHECK(feed(u, "abc") == 3);
        CHECK(rd(u, IIR) == 0xCC);  // below trigger: reported as character timeout at once
        CHECK(u.irq_level());
        CHECK(feed(u, "defghijklmn") == 11);
        CHECK(rd(u, IIR) == 0xC4);  // 14 bytes: trigger level reached
        for (int i = 0; i < 14; ++i) rd(u, RBR);
        CHECK(rd(u, IIR) == 0xC1);
        CHECK_FALSE(u.irq_level());
    }
    SUBCASE("trigger 4") {
        wr(u, FCR, 0x41);
        CHECK(feed(u, "abc") == 3);
        CHECK(rd(u, IIR) == 0xCC);
        CHECK(feed(u, "d") == 1);
        CHECK(rd(u, IIR) == 0xC4);
    }
}

TEST_CASE("uart: loopback wiring, overrun and IRQ gating") {
    FakeIrq irq;
    Recorder out;
    Uart16550 u(irq, &out);
    wr(u, MCR, 0x1A);  // Linux 8250 autoconfig: LOOP | OUT2 | RTS
    CHECK((rd(u, MSR) & 0xF0) == 0x90);  // DCD | CTS
    wr(u, MCR, 0x1F);
    CHECK((rd(u, MSR) & 0xF0) == 0xF0);
    wr(u, MCR, 0x10);
    CHECK(rd(u, MSR) == 0x0F);  // all lines dropped: DCTS, DDSR, TERI (RI fell), DDCD
    CHECK(rd(u, MSR) == 0x00);  // deltas cleared by the read

    CHECK(feed(u, "z") == 0);  // receiver disconnected from the host
    wr(u, THR, 'L');
    CHECK(out.text.empty());
    CHECK(rd(u, LSR) == 0x61);
    wr(u, THR, 'M');  // receiver full (FIFOs off): overrun, 'M' lost
    CHECK(rd(u, LSR) == 0x63);
    CHECK(rd(u, LSR) == 0x61);  // OE cleared by reading LSR
    CHECK(rd(u, RBR) == 'L');

    // Interrupts are identified in loopback but the OUT2 pin is forced off: no IRQ.
    wr(u, MCR, 0x18);
    wr(u, IER, 0x02);
    CHECK(rd(u, IIR) == 0x02);
    wr(u, IER, 0x00);
    wr(u, IER, 0x02);
    CHECK(irq.edges.empty());
    wr(u, MCR, 0x08);  // leave loopback: THRE pending reaches the line
    CHECK(irq.edges == std::vector<bool>{true});
    wr(u, THR, 'N');
    CHECK(out.text == "N");
    CHECK(rd(u, MSR) == 0xBB);  // lines back up: CTS, DSR, DCD deltas
}

TEST_CASE("uart: interrupt priorities (PC16550D Table IV)") {
    FakeIrq irq;
    Uart16550 u(irq, nullptr);
    wr(u, MCR, 0x10);  // loopback: modem lines drop, which sets MSR deltas
    wr(u, THR, 'a');
    wr(u, THR, 'b');  // overrun: line-status condition
    wr(u, IER, 0x0F);
    CHECK(rd(u, IIR) == 0x06);  // 1: receiver line status
    CHECK(rd(u, LSR) == 0x63);
    CHECK(rd(u, IIR) == 0x04);  // 2: received data
    CHECK(rd(u, RBR) == 'a');
    CHECK(rd(u, IIR) == 0x02);  // 3: THR empty (cleared by this read)
    CHECK(rd(u, IIR) == 0x00);  // 4: modem status
    CHECK((rd(u, MSR) & 0x0F) == 0x0B);
    CHECK(rd(u, IIR) == 0x01);
    CHECK(irq.edges.empty());  // all of it in loopback
}

TEST_CASE("uart: modem-status interrupt on line changes") {
    FakeIrq irq;
    Uart16550 u(irq, nullptr);
    wr(u, IER, 0x08);
    wr(u, MCR, 0x08);
    CHECK(rd(u, IIR) == 0x01);  // no deltas yet
    wr(u, MCR, 0x19);          // loopback, DTR: DSR stays up, CTS falls, DCD follows OUT2 (up)
    CHECK(rd(u, IIR) == 0x00);
    CHECK(rd(u, MSR) == 0xA1);  // DCD | DSR, DCTS
    CHECK(rd(u, IIR) == 0x01);
}

TEST_CASE("uart: wider accesses are split into byte accesses") {
    FakeIrq irq;
    Recorder out;
    Uart16550 u(irq, &out);
    const std::array<uint8_t, 2> lcr_mcr{0x03, 0x0B};
    u.write(LCR, lcr_mcr);
    CHECK(rd(u, LCR) == 0x03);
    CHECK(rd(u, MCR) == 0x0B);
    std::array<uint8_t, 2> lsr_msr{};
    u.read(LSR, lsr_msr);
    CHECK(lsr_msr[0] == 0x60);
    CHECK(lsr_msr[1] == 0xB0);
    std::array<uint8_t, 4> all{};
    u.read(4, all);
    CHECK(all[0] == 0x0B);
    CHECK(all[3] == 0x00);
}

namespace {
// Reads that change the UART (IIR clears THRE, LSR clears errors, RBR pops, MSR clears deltas),
// in an order that shows every part of its state.
std::vector<uint8_t> observe(Uart16550& u) {
    std::vector<uint8_t> seen;
    for (uint64_t off : {IER, LCR, MCR, SCR, MSR, MSR, IIR, IIR, LSR, LSR}) seen.push_back(rd(u, off));
    for (int i = 0; i < 17; ++i) {
        seen.push_back(rd(u, LSR));
        seen.push_back(rd(u, RBR));
    }
    wr(u, LCR, static_cast<uint8_t>(rd(u, LCR) | 0x80));
    seen.push_back(rd(u, DLL));
    seen.push_back(rd(u, DLM));
    seen.push_back(u.irq_level());
    return seen;
}
}  // namespace

TEST_CASE("uart: its state saved and loaded into a new UART reads back the same, IRQ line included") {
    FakeIrq irq1;
    Recorder out;
    Uart16550 u(irq1, &out);
    wr(u, LCR, 0x80);
    wr(u, DLL, 0x01);  // 115200 baud
    wr(u, LCR, 0x03);
    wr(u, FCR, 0xC7);  // FIFO on, trigger 14
    wr(u, MCR, 0x0B);  // DTR, RTS, OUT2
    wr(u, SCR, 0x5A);
    wr(u, IER, 0x07);
    CHECK(feed(u, "0123456789abcdefXYZ") == 16);  // a full FIFO
    rd(u, RBR);
    rd(u, RBR);  // the FIFO's head moved
    CHECK(feed(u, "!") == 1);
    wr(u, THR, 'x');  // THRE interrupt latched
    const std::vector<uint8_t> blob = saved_state(u);

    FakeIrq irq2;
    Uart16550 restored(irq2, &out);
    REQUIRE(restored.load_state(blob));
    CHECK(saved_state(restored) == blob);
    CHECK(irq2.edges == std::vector<bool>{true});  // the line driven to the saved level
    CHECK(observe(restored) == observe(u));
}

TEST_CASE("uart: a state this UART could not have is refused and changes nothing") {
    FakeIrq irq;
    Recorder out;
    Uart16550 u(irq, &out);
    wr(u, FCR, 0x01);
    feed(u, "ab");
    const std::vector<uint8_t> good = saved_state(u);
    // Layout: version, u32 16 + FIFO, head, count, rbr, ier, fcr, lcr, mcr, lsr, msr, scr, u16 dl, thr.
    constexpr size_t kVersion = 0, kHead = 21, kCount = 22, kIer = 24, kFcr = 25, kMcr = 27, kLsr = 28, kMsr = 29,
                     kThr = 33;
    REQUIRE(good.size() == 34);
    const std::pair<size_t, uint8_t> bad[] = {{kVersion, 2}, {kHead, 16}, {kCount, 17}, {kIer, 0x10}, {kFcr, 0x02},
                                              {kMcr, 0x20}, {kLsr, 0x01}, {kMsr, 0x00}, {kThr, 2}};
    for (const auto& [at, value] : bad) {
        std::vector<uint8_t> blob = good;
        blob[at] = value;
        FakeIrq irq2;
        Uart16550 other(irq2, &out);
        wr(other, SCR, 0x77);
        const std::vector<uint8_t> before = saved_state(other);
        CHECK_MESSAGE(!other.load_state(blob), "byte ", at, " = ", int(value));
        CHECK(saved_state(other) == before);
        CHECK(irq2.edges.empty());
    }
    // FIFO off: at most one byte held.
    std::vector<uint8_t> blob = good;
    blob[kFcr] = 0;
    CHECK_FALSE(u.load_state(blob));
    blob[kCount] = 1;
    CHECK(u.load_state(blob));
    // Cut short or with a byte more.
    CHECK_FALSE(u.load_state(std::span(good).first(good.size() - 1)));
    std::vector<uint8_t> longer = good;
    longer.push_back(0);
    CHECK_FALSE(u.load_state(longer));
    CHECK(u.load_state(good));
}
