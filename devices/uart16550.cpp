#include "devices/uart16550.hpp"

namespace minivmm {

namespace {

// IER bits (PC16550D §8.5).
constexpr uint8_t kIerRxData = 0x01;     // ERBFI
constexpr uint8_t kIerThrEmpty = 0x02;   // ETBEI
constexpr uint8_t kIerLineStatus = 0x04; // ELSI
constexpr uint8_t kIerModemStatus = 0x08;// EDSSI
constexpr uint8_t kIerMask = 0x0F;       // bits 4-7 are always 0

// IIR values (Table IV); bit 0 = 1 means "no interrupt pending".
constexpr uint8_t kIirNone = 0x01;
constexpr uint8_t kIirLineStatus = 0x06;
constexpr uint8_t kIirRxData = 0x04;
constexpr uint8_t kIirCharTimeout = 0x0C;
constexpr uint8_t kIirThrEmpty = 0x02;
constexpr uint8_t kIirModemStatus = 0x00;
constexpr uint8_t kIirFifoEnabled = 0xC0;

// FCR bits (§8.4).
constexpr uint8_t kFcrEnable = 0x01;
constexpr uint8_t kFcrRxReset = 0x02;
constexpr uint8_t kFcrStoredMask = 0xC9;  // enable, DMA mode select, RX trigger

// LCR / MCR bits.
constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kMcrDtr = 0x01;
constexpr uint8_t kMcrRts = 0x02;
constexpr uint8_t kMcrOut1 = 0x04;
constexpr uint8_t kMcrOut2 = 0x08;
constexpr uint8_t kMcrLoop = 0x10;
constexpr uint8_t kMcrMask = 0x1F;

// LSR bits (§8.6).
constexpr uint8_t kLsrDataReady = 0x01;
constexpr uint8_t kLsrOverrun = 0x02;
constexpr uint8_t kLsrErrorMask = 0x1E;  // OE, PE, FE, BI
constexpr uint8_t kLsrThrEmpty = 0x20;
constexpr uint8_t kLsrTxEmpty = 0x40;

// MSR bits (§8.7).
constexpr uint8_t kMsrDeltaCts = 0x01;
constexpr uint8_t kMsrDeltaDsr = 0x02;
constexpr uint8_t kMsrTrailingRi = 0x04;
constexpr uint8_t kMsrDeltaDcd = 0x08;
constexpr uint8_t kMsrDeltaMask = 0x0F;
constexpr uint8_t kMsrCts = 0x10;
constexpr uint8_t kMsrDsr = 0x20;
constexpr uint8_t kMsrRi = 0x40;
constexpr uint8_t kMsrDcd = 0x80;

}  // namespace

Uart16550::Uart16550(IrqLine& irq, ByteSink* out) noexcept : irq_(irq), out_(out) {
    msr_ = modem_status_lines();  // a connected host: CTS, DSR and DCD asserted, no deltas
}

void Uart16550::read(uint64_t offset, std::span<uint8_t> data) noexcept {
    for (size_t i = 0; i < data.size(); ++i) data[i] = read_register((offset + i) % kSize);
}

void Uart16550::write(uint64_t offset, std::span<const uint8_t> data) noexcept {
    for (size_t i = 0; i < data.size(); ++i) write_register((offset + i) % kSize, data[i]);
}

size_t Uart16550::receive(std::span<const uint8_t> bytes) noexcept {
    // In loopback the receiver input is disconnected from the line (§8.6, MCR bit 4).
    if (loopback()) return 0;
    size_t accepted = 0;
    while (accepted < bytes.size() && rx_push(bytes[accepted])) ++accepted;
    if (accepted > 0) update_irq();
    return accepted;
}

bool Uart16550::irq_level() const noexcept {
    return irq_level_;
}

uint8_t Uart16550::read_register(uint64_t offset) noexcept {
    const bool dlab = (lcr_ & kLcrDlab) != 0;
    switch (offset) {
    case kRbrThrDll:
        if (dlab) return static_cast<uint8_t>(divisor_);
        if (rx_count_ > 0) {
            rbr_last_ = rx_pop();
            update_irq();
        }
        return rbr_last_;
    case kIerDlm:
        return dlab ? static_cast<uint8_t>(divisor_ >> 8) : ier_;
    case kIirFcr: {
        const uint8_t id = interrupt_id();
        // Reading IIR clears a THRE interrupt when it is the one reported (Table IV).
        if (id == kIirThrEmpty) {
            thr_interrupt_ = false;
            update_irq();
        }
        return static_cast<uint8_t>(id | (fifo_enabled() ? kIirFifoEnabled : 0));
    }
    case kLcr:
        return lcr_;
    case kMcr:
        return mcr_;
    case kLsr: {
        // THR and the transmitter are always empty: transmission completes on the THR write.
        const uint8_t value = static_cast<uint8_t>((rx_count_ > 0 ? kLsrDataReady : 0) | lsr_errors_ |
                                                   kLsrThrEmpty | kLsrTxEmpty);
        // Error bits (and the line-status interrupt) clear when LSR is read (§8.6).
        if (lsr_errors_ != 0) {
            lsr_errors_ = 0;
            update_irq();
        }
        return value;
    }
    case kMsr: {
        const uint8_t value = msr_;
        // Delta bits (and the modem-status interrupt) clear when MSR is read (§8.7).
        if ((msr_ & kMsrDeltaMask) != 0) {
            msr_ &= static_cast<uint8_t>(~kMsrDeltaMask);
            update_irq();
        }
        return value;
    }
    default:  // kScr
        return scr_;
    }
}

void Uart16550::write_register(uint64_t offset, uint8_t value) noexcept {
    const bool dlab = (lcr_ & kLcrDlab) != 0;
    switch (offset) {
    case kRbrThrDll:
        if (dlab) {
            divisor_ = static_cast<uint16_t>((divisor_ & 0xFF00) | value);
            return;
        }
        // Writing THR clears the THRE interrupt; the byte then leaves at once and THR is empty
        // again, which re-raises it. The line therefore pulses low-high, giving an edge-triggered
        // PIC a new interrupt for every byte, as the guest's transmit-interrupt driver expects.
        thr_interrupt_ = false;
        update_irq();
        transmit(value);
        thr_interrupt_ = true;
        update_irq();
        return;
    case kIerDlm:
        if (dlab) {
            divisor_ = static_cast<uint16_t>((divisor_ & 0x00FF) | (uint16_t{value} << 8));
            return;
        }
        // Enabling ETBEI while THR is empty raises the THRE interrupt at once (§8.5); SeaBIOS's
        // port probe (write IER=0x02, read it back, expect IIR=0x02) depends on it.
        if ((value & kIerThrEmpty) && !(ier_ & kIerThrEmpty)) thr_interrupt_ = true;
        ier_ = value & kIerMask;
        update_irq();
        return;
    case kIirFcr:
        write_fcr(value);
        return;
    case kLcr:
        lcr_ = value;
        return;
    case kMcr:
        write_mcr(value);
        return;
    case kLsr:
    case kMsr:
        // Read-only status registers; writes are for factory test only (§8.6) and are ignored.
        return;
    default:  // kScr
        scr_ = value;
        return;
    }
}

void Uart16550::transmit(uint8_t byte) noexcept {
    if (loopback()) {
        // §8.6 loopback: the transmitter output is wired to the receiver input. A full receiver
        // overruns: the new character is lost and OE is set (§8.6 LSR bit 1).
        if (!rx_push(byte)) lsr_errors_ |= kLsrOverrun;
        return;
    }
    if (out_ != nullptr) out_->write(std::span<const uint8_t>(&byte, 1));
}

void Uart16550::write_fcr(uint8_t value) noexcept {
    const bool enable = (value & kFcrEnable) != 0;
    // Changing FCR0 clears both FIFOs; with FCR0 = 0 the other bits are not programmed (§8.4).
    if (enable != fifo_enabled()) rx_clear();
    if (!enable) {
        fcr_ = 0;
    } else {
        if (value & kFcrRxReset) rx_clear();
        // The transmit FIFO never holds anything (transmission is immediate), so its reset
        // bit has no further effect.
        fcr_ = value & kFcrStoredMask;
    }
    update_irq();
}

void Uart16550::write_mcr(uint8_t value) noexcept {
    mcr_ = value & kMcrMask;
    update_modem_status();
    update_irq();
}

bool Uart16550::rx_push(uint8_t byte) noexcept {
    if (rx_count_ >= rx_capacity()) return false;
    rx_fifo_[(rx_head_ + rx_count_) % kFifoSize] = byte;
    ++rx_count_;
    return true;
}

uint8_t Uart16550::rx_pop() noexcept {
    const uint8_t byte = rx_fifo_[rx_head_];
    rx_head_ = (rx_head_ + 1) % kFifoSize;
    --rx_count_;
    return byte;
}

void Uart16550::rx_clear() noexcept {
    rx_head_ = 0;
    rx_count_ = 0;
}

size_t Uart16550::rx_capacity() const noexcept { return fifo_enabled() ? kFifoSize : 1; }

size_t Uart16550::rx_trigger() const noexcept {
    static constexpr size_t kLevels[4] = {1, 4, 8, 14};  // FCR bits 7:6 (§8.4)
    return kLevels[fcr_ >> 6];
}

bool Uart16550::fifo_enabled() const noexcept { return (fcr_ & kFcrEnable) != 0; }

bool Uart16550::loopback() const noexcept { return (mcr_ & kMcrLoop) != 0; }

uint8_t Uart16550::modem_status_lines() const noexcept {
    if (!loopback()) return kMsrCts | kMsrDsr | kMsrDcd;
    // Loopback wiring (§8.6 MCR bit 4): RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD.
    uint8_t lines = 0;
    if (mcr_ & kMcrRts) lines |= kMsrCts;
    if (mcr_ & kMcrDtr) lines |= kMsrDsr;
    if (mcr_ & kMcrOut1) lines |= kMsrRi;
    if (mcr_ & kMcrOut2) lines |= kMsrDcd;
    return lines;
}

void Uart16550::update_modem_status() noexcept {
    const uint8_t old_lines = msr_ & 0xF0;
    const uint8_t new_lines = modem_status_lines();
    const uint8_t changed = old_lines ^ new_lines;
    uint8_t delta = msr_ & kMsrDeltaMask;
    if (changed & kMsrCts) delta |= kMsrDeltaCts;
    if (changed & kMsrDsr) delta |= kMsrDeltaDsr;
    if ((old_lines & kMsrRi) && !(new_lines & kMsrRi)) delta |= kMsrTrailingRi;  // trailing edge only
    if (changed & kMsrDcd) delta |= kMsrDeltaDcd;
    msr_ = static_cast<uint8_t>(new_lines | delta);
}

// Highest-priority pending, enabled interrupt (PC16550D Table IV).
uint8_t Uart16550::interrupt_id() const noexcept {
    if ((ier_ & kIerLineStatus) && (lsr_errors_ & kLsrErrorMask)) return kIirLineStatus;
    if ((ier_ & kIerRxData) && rx_count_ > 0) {
        if (!fifo_enabled() || rx_count_ >= rx_trigger()) return kIirRxData;
        // Below the trigger level the real chip reports a character timeout after four idle
        // character times. Input here arrives in host-sized bursts with no line timing, so the
        // timeout is approximated as "data present": the guest is told at once.
        return kIirCharTimeout;
    }
    if ((ier_ & kIerThrEmpty) && thr_interrupt_) return kIirThrEmpty;
    if ((ier_ & kIerModemStatus) && (msr_ & kMsrDeltaMask)) return kIirModemStatus;
    return kIirNone;
}

void Uart16550::save_state(StateWriter& out) const {
    out.u8(1);
    out.bytes(rx_fifo_);
    out.u8(static_cast<uint8_t>(rx_head_));
    out.u8(static_cast<uint8_t>(rx_count_));
    for (uint8_t r : {rbr_last_, ier_, fcr_, lcr_, mcr_, lsr_errors_, msr_, scr_}) out.u8(r);
    out.u16(divisor_);
    out.boolean(thr_interrupt_);
}

bool Uart16550::load_state(std::span<const uint8_t> blob) noexcept {
    StateReader in(blob);
    Uart16550 s(irq_, out_);  // parsed here, copied only when all of it is valid
    uint8_t version = 0, head = 0, count = 0;
    in.u8(version);
    in.bytes(s.rx_fifo_);
    in.u8(head);
    in.u8(count);
    for (uint8_t* r : {&s.rbr_last_, &s.ier_, &s.fcr_, &s.lcr_, &s.mcr_, &s.lsr_errors_, &s.msr_, &s.scr_}) in.u8(*r);
    in.u16(s.divisor_);
    in.boolean(s.thr_interrupt_);
    if (!in.finished() || version != 1) return false;
    s.rx_head_ = head;
    s.rx_count_ = count;
    // Only what this UART can reach: masked registers, a FIFO within its capacity, modem lines
    // that follow MCR (only the delta bits are history).
    if (head >= kFifoSize || count > s.rx_capacity() || (s.ier_ & ~kIerMask) || (s.fcr_ & ~kFcrStoredMask) ||
        (!s.fifo_enabled() && s.fcr_ != 0) || (s.mcr_ & ~kMcrMask) || (s.lsr_errors_ & ~kLsrErrorMask) ||
        (s.msr_ & 0xF0) != s.modem_status_lines())
        return false;
    rx_fifo_ = s.rx_fifo_;
    rx_head_ = s.rx_head_;
    rx_count_ = s.rx_count_;
    rbr_last_ = s.rbr_last_;
    ier_ = s.ier_;
    fcr_ = s.fcr_;
    lcr_ = s.lcr_;
    mcr_ = s.mcr_;
    lsr_errors_ = s.lsr_errors_;
    msr_ = s.msr_;
    scr_ = s.scr_;
    divisor_ = s.divisor_;
    thr_interrupt_ = s.thr_interrupt_;
    update_irq();
    return true;
}

void Uart16550::update_irq() noexcept {
    // PC wiring: INTR reaches the ISA IRQ line through a buffer enabled by the OUT2 pin. In
    // loopback the OUT2 pin is forced inactive (§8.6 MCR bit 4), so the IRQ is gated off too.
    const bool pending = (interrupt_id() & kIirNone) == 0;
    const bool level = pending && (mcr_ & kMcrOut2) && !loopback();
    if (level == irq_level_) return;
    irq_level_ = level;
    irq_.set(level);
}

}  // namespace minivmm
