// A National Semiconductor PC16550D UART as wired in a PC: COM1 at platform::kCom1Port (8 ports),
// interrupt output gated by MCR.OUT2 onto ISA IRQ platform::kCom1Irq.
//
// Transmission is immediate (no baud-rate timing): every THR byte goes straight to the ByteSink,
// so THR and the transmitter shift register are always empty again when the write returns.
// Reception is fed by the host through receive(), which takes only what fits in the receiver
// FIFO (16 bytes, or the single RBR when FIFOs are off) so the host never loses a keystroke.
//
// No lock inside (devices/device.hpp): read(), write() and receive() (the host console thread)
// are all called under the machine's device lock, which also keeps IRQ edges in order.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

#include "devices/device.hpp"
#include "devices/device_state.hpp"

namespace minivmm {

class Uart16550 final : public Device, public SavesState {
public:
    // Register offsets from the base port (PC16550D Table II).
    static constexpr uint64_t kRbrThrDll = 0;
    static constexpr uint64_t kIerDlm = 1;
    static constexpr uint64_t kIirFcr = 2;
    static constexpr uint64_t kLcr = 3;
    static constexpr uint64_t kMcr = 4;
    static constexpr uint64_t kLsr = 5;
    static constexpr uint64_t kMsr = 6;
    static constexpr uint64_t kScr = 7;
    static constexpr uint64_t kSize = 8;
    static constexpr size_t kFifoSize = 16;

    // `out` may be nullptr ("-serial none"): transmitted bytes are then discarded.
    Uart16550(IrqLine& irq, ByteSink* out) noexcept;

    std::string_view name() const noexcept override { return "uart16550"; }
    // Wider accesses are split into byte accesses in ascending offset order, as an ISA bus does
    // for an 8-bit device.
    void read(uint64_t offset, std::span<uint8_t> data) noexcept override;
    void write(uint64_t offset, std::span<const uint8_t> data) noexcept override;

    // Host input: queues as many bytes as the receiver has room for and returns that count.
    // The caller must offer the rest again later. Input arriving while the UART is in loopback
    // mode is not accepted (the receiver is disconnected from the line, PC16550D §8.6 MCR bit 4).
    size_t receive(std::span<const uint8_t> bytes) noexcept;

    // Current level of the interrupt output (for tests and diagnostics).
    bool irq_level() const noexcept;

    // Every register, the receive FIFO and the latched interrupt (format version 1, in the order
    // of the members below); load_state then drives the IRQ line to the restored level.
    void save_state(StateWriter& out) const override;
    bool load_state(std::span<const uint8_t> blob) noexcept override;

private:
    uint8_t read_register(uint64_t offset) noexcept;
    void write_register(uint64_t offset, uint8_t value) noexcept;
    void transmit(uint8_t byte) noexcept;
    void write_fcr(uint8_t value) noexcept;
    void write_mcr(uint8_t value) noexcept;
    bool rx_push(uint8_t byte) noexcept;
    uint8_t rx_pop() noexcept;
    void rx_clear() noexcept;
    size_t rx_capacity() const noexcept;
    size_t rx_trigger() const noexcept;
    bool fifo_enabled() const noexcept;
    bool loopback() const noexcept;
    uint8_t modem_status_lines() const noexcept;
    void update_modem_status() noexcept;
    uint8_t interrupt_id() const noexcept;
    void update_irq() noexcept;

    IrqLine& irq_;
    ByteSink* out_;

    std::array<uint8_t, kFifoSize> rx_fifo_{};
    size_t rx_head_ = 0;   // index of the oldest byte
    size_t rx_count_ = 0;  // bytes queued
    uint8_t rbr_last_ = 0; // what RBR reads when the receiver is empty

    uint8_t ier_ = 0;
    uint8_t fcr_ = 0;  // FIFO enable (bit 0) and RX trigger (bits 6-7); reset bits self-clear
    uint8_t lcr_ = 0;
    uint8_t mcr_ = 0;
    uint8_t lsr_errors_ = 0;  // OE/PE/FE/BI bits latched until LSR is read
    uint8_t msr_ = 0;         // line state (bits 4-7) plus delta bits (0-3) until MSR is read
    uint8_t scr_ = 0;
    uint16_t divisor_ = 0x0C;  // 9600 baud from 1.8432 MHz, what QEMU and PC BIOSes leave there
    bool thr_interrupt_ = false;  // THRE interrupt latched (PC16550D Table IV, priority 3)
    bool irq_level_ = false;
};

}  // namespace minivmm
