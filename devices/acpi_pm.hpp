// The fixed-hardware ACPI power-management registers of a legacy (non-HW-reduced) PC, as the
// FADT describes them (ACPI 6.x §4.8.3), in one port block at platform::kAcpiPmBase:
//
//   +0  PM1a_EVT_BLK: PM1_STS (2 bytes, write-1-to-clear, §4.8.3.1.1)
//                     PM1_EN  (2 bytes, §4.8.3.1.2)
//   +4  PM1a_CNT_BLK: PM1_CNT (2 bytes, §4.8.3.2.1)
//   +6  (gap: reads 0xFF, writes ignored)
//   +8  PM_TMR_BLK:   PM_TMR  (4 bytes, 24-bit free-running counter at 3.579545 MHz, §4.8.3.3)
//
// SCI_EN always reads 1: the FADT has SMI_CMD = 0, which tells the OS the machine is in ACPI
// mode already (§4.8.3.2.1 and FADT SMI_CMD). Writing SLP_EN with SLP_TYP = platform::
// kSleepTypeS5 powers the machine off through SystemControl; other sleep states are not
// supported and are ignored. No SCI is raised (the block has no interrupt source that a
// minivmm guest needs); TMR_STS is still maintained so a polling OS sees it.
//
// Any 1-, 2- or 4-byte access at any offset works: registers are assembled byte by byte.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>

#include "devices/device.hpp"
#include "devices/device_state.hpp"

namespace minivmm {

class AcpiPm final : public Device, public SavesState {
public:
    using Clock = std::function<uint64_t()>;  // monotonic nanoseconds; must not throw

    static constexpr uint64_t kStatusOffset = 0;
    static constexpr uint64_t kEnableOffset = 2;
    static constexpr uint64_t kControlOffset = 4;
    static constexpr uint64_t kTimerOffset = 8;
    static constexpr uint64_t kSize = 12;
    static constexpr uint64_t kTimerHz = 3'579'545;

    // PM1_STS bits (§4.8.3.1.1, Table 4.16).
    static constexpr uint16_t kTmrSts = 1u << 0;
    static constexpr uint16_t kPwrBtnSts = 1u << 8;
    static constexpr uint16_t kWakSts = 1u << 15;
    // PM1_EN bits that exist (§4.8.3.1.2): TMR_EN, GBL_EN, PWRBTN_EN, SLPBTN_EN, RTC_EN,
    // PCIEXP_WAKE_DIS. Reserved bits read 0.
    static constexpr uint16_t kEnableMask = 0x4721;
    // PM1_CNT bits (§4.8.3.2.1, Table 4.18).
    static constexpr uint16_t kSciEn = 1u << 0;
    static constexpr uint16_t kBmRld = 1u << 1;
    static constexpr uint16_t kSlpTypShift = 10;
    static constexpr uint16_t kSlpTypMask = 0x7u << kSlpTypShift;
    static constexpr uint16_t kSlpEn = 1u << 13;

    // `now_ns` defaults to std::chrono::steady_clock. The timer counts from 0 at construction.
    explicit AcpiPm(SystemControl& system, Clock now_ns = {});

    std::string_view name() const noexcept override { return "acpi-pm"; }
    void read(uint64_t offset, std::span<uint8_t> data) noexcept override;
    void write(uint64_t offset, std::span<const uint8_t> data) noexcept override;

    // Format version 1: PM1_STS, PM1_EN, PM1_CNT, the timer's ticks so far and the tick of its next
    // bit-23 change. A loaded timer goes on counting from the saved ticks (not from 0, and not
    // from the host clock of the saving process: another boot of the host restarts that clock).
    void save_state(StateWriter& out) const override;
    bool load_state(std::span<const uint8_t> blob) noexcept override;

private:
    uint64_t elapsed_ticks() const noexcept;
    void refresh_timer_status() noexcept;
    void write_control(uint16_t value, uint16_t mask) noexcept;

    SystemControl& system_;
    Clock now_ns_;
    uint64_t start_ns_;
    uint64_t base_ticks_ = 0;  // ticks before start_ns_ (a loaded state's)

    uint16_t status_ = 0;
    uint16_t enable_ = 0;
    uint16_t control_ = 0;                       // BM_RLD and SLP_TYP as last written
    uint64_t next_timer_carry_ = uint64_t{1} << 23;  // tick at which bit 23 next changes
};

}  // namespace minivmm
