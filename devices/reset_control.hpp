// Two legacy ways a PC guest resets itself:
//  - ResetControl: the "PCI reset control register" at platform::kResetControlPort (0xCF9,
//    1 port) of PIIX/ICH chipsets. Writing bit 2 (RST_CPU) resets the machine; bit 1 (SYS_RST,
//    "hard" reset type) and bit 3 (FULL_RST) are stored and read back, as QEMU does. SeaBIOS's
//    qemu_reboot writes 0x02 then 0x06; the ACPI RESET_REG value is platform::kResetValue.
//  - A20Gate: "System Control Port A" at platform::kA20Port (0x92, 1 port). Bit 1 is the A20
//    gate, bit 0 is "fast reset" (writing 1 resets the CPU).
// Both request the reset through SystemControl; the VMM acts on it after the current exit.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "devices/device.hpp"
#include "devices/device_state.hpp"

namespace minivmm {

class ResetControl final : public Device, public SavesState {
public:
    static constexpr uint8_t kSystemReset = 0x02;  // bit 1: hard (system) reset type
    static constexpr uint8_t kResetCpu = 0x04;     // bit 2: perform the reset
    static constexpr uint8_t kFullReset = 0x08;    // bit 3: full reset (power-cycle type)
    static constexpr uint64_t kSize = 1;

    explicit ResetControl(SystemControl& system) noexcept : system_(system) {}

    std::string_view name() const noexcept override { return "reset-control"; }
    void read(uint64_t offset, std::span<uint8_t> data) noexcept override;
    void write(uint64_t offset, std::span<const uint8_t> data) noexcept override;

    // Format version 1: the stored bits (a u8).
    void save_state(StateWriter& out) const override;
    bool load_state(std::span<const uint8_t> blob) noexcept override;

private:
    SystemControl& system_;
    uint8_t value_ = 0;  // only kSystemReset | kFullReset are kept
};

class A20Gate final : public Device, public SavesState {
public:
    static constexpr uint8_t kFastReset = 0x01;  // bit 0: write 1 = reset
    static constexpr uint8_t kA20Enable = 0x02;  // bit 1: A20 gate
    static constexpr uint64_t kSize = 1;

    explicit A20Gate(SystemControl& system) noexcept : system_(system) {}

    std::string_view name() const noexcept override { return "a20-gate"; }
    void read(uint64_t offset, std::span<uint8_t> data) noexcept override;
    void write(uint64_t offset, std::span<const uint8_t> data) noexcept override;

    // The A20 bit as last written (reads back). It does not change address decoding: A20 is
    // always enabled in this VMM, which SeaBIOS and every OS after the 1990s expect anyway.
    bool a20_enabled() const noexcept { return (value_ & kA20Enable) != 0; }

    // Format version 1: the A20 bit (a u8).
    void save_state(StateWriter& out) const override;
    bool load_state(std::span<const uint8_t> blob) noexcept override;

private:
    SystemControl& system_;
    uint8_t value_ = kA20Enable;  // A20 on from power-up; bit 0 always reads 0
};

}  // namespace minivmm
