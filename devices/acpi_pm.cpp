#include "devices/acpi_pm.hpp"

#include <array>
#include <chrono>
#include <utility>

#include "vmm/base/log.hpp"
#include "vmm/base/platform.hpp"

namespace minivmm {

namespace {

constexpr uint64_t kNsPerSecond = 1'000'000'000;
constexpr uint64_t kTimerStatusPeriod = uint64_t{1} << 23;  // TMR_STS: every change of bit 23
constexpr uint32_t kTimerMask = 0x00FF'FFFF;                // 24-bit PM_TMR (FADT TMR_VAL_EXT = 0)

uint64_t steady_now_ns() noexcept {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
}

}  // namespace

AcpiPm::AcpiPm(SystemControl& system, Clock now_ns)
    : system_(system), now_ns_(now_ns ? std::move(now_ns) : Clock(steady_now_ns)), start_ns_(now_ns_()) {}

uint64_t AcpiPm::elapsed_ticks() const noexcept {
    const uint64_t now = now_ns_();
    const uint64_t ns = now > start_ns_ ? now - start_ns_ : 0;
    // Split into seconds and remainder so the multiplication cannot overflow.
    return base_ticks_ + ns / kNsPerSecond * kTimerHz + ns % kNsPerSecond * kTimerHz / kNsPerSecond;
}

void AcpiPm::save_state(StateWriter& out) const {
    out.u8(1);
    out.u16(status_);
    out.u16(enable_);
    out.u16(control_);
    out.u64(elapsed_ticks());
    out.u64(next_timer_carry_);
}

bool AcpiPm::load_state(std::span<const uint8_t> blob) noexcept {
    StateReader in(blob);
    uint8_t version = 0;
    uint16_t status = 0, enable = 0, control = 0;
    uint64_t ticks = 0, carry = 0;
    in.u8(version);
    in.u16(status);
    in.u16(enable);
    in.u16(control);
    in.u64(ticks);
    in.u64(carry);
    // A timer below a millennium of ticks (2^55: no overflow ahead), and a next carry on a bit-23
    // boundary no further than one period past the ticks (it may lag: it is brought up to date lazily).
    constexpr uint64_t kMaxTicks = uint64_t{1} << 55;
    if (!in.finished() || version != 1 || (status & ~kTmrSts) || (enable & ~kEnableMask) ||
        (control & ~(kBmRld | kSlpTypMask)) || ticks > kMaxTicks || carry == 0 || carry % kTimerStatusPeriod != 0 ||
        carry > (ticks / kTimerStatusPeriod + 1) * kTimerStatusPeriod)
        return false;
    status_ = status;
    enable_ = enable;
    control_ = control;
    base_ticks_ = ticks;
    start_ns_ = now_ns_();
    next_timer_carry_ = carry;
    return true;
}

// TMR_STS is set whenever bit 23 of the timer changes (§4.8.3.1.1). Evaluated lazily, when
// PM1_STS is accessed, instead of with a host timer.
void AcpiPm::refresh_timer_status() noexcept {
    const uint64_t ticks = elapsed_ticks();
    if (ticks < next_timer_carry_) return;
    status_ |= kTmrSts;
    next_timer_carry_ = (ticks / kTimerStatusPeriod + 1) * kTimerStatusPeriod;
}

void AcpiPm::read(uint64_t offset, std::span<uint8_t> data) noexcept {
    const uint64_t end = offset + data.size();
    if (offset < kEnableOffset) refresh_timer_status();
    const uint16_t control = static_cast<uint16_t>(control_ | kSciEn);  // SLP_EN reads 0
    const uint32_t timer = end > kTimerOffset ? static_cast<uint32_t>(elapsed_ticks()) & kTimerMask : 0;

    std::array<uint8_t, kSize> image{};
    store_le(std::span(image).subspan(kStatusOffset, 2), status_);
    store_le(std::span(image).subspan(kEnableOffset, 2), enable_);
    store_le(std::span(image).subspan(kControlOffset, 2), control);
    image[6] = image[7] = 0xFF;  // nothing decodes the gap between PM1_CNT and PM_TMR
    store_le(std::span(image).subspan(kTimerOffset, 4), timer);

    for (size_t i = 0; i < data.size(); ++i) {
        const uint64_t at = offset + i;
        data[i] = at < kSize ? image[at] : 0xFF;
    }
}

void AcpiPm::write(uint64_t offset, std::span<const uint8_t> data) noexcept {
    // Gather the bytes into (value, byte-mask) per register, so a byte write touches only its
    // half of a 16-bit register and a 4-byte write at +0 updates PM1_STS and PM1_EN together.
    uint16_t status_value = 0, status_mask = 0;
    uint16_t enable_value = 0, enable_mask = 0;
    uint16_t control_value = 0, control_mask = 0;
    for (size_t i = 0; i < data.size(); ++i) {
        const uint64_t at = offset + i;
        const unsigned shift = 8 * static_cast<unsigned>(at & 1);
        const auto value = static_cast<uint16_t>(data[i] << shift);
        const auto mask = static_cast<uint16_t>(0xFF << shift);
        if (at < kEnableOffset) {
            status_value |= value;
            status_mask |= mask;
        } else if (at < kControlOffset) {
            enable_value |= value;
            enable_mask |= mask;
        } else if (at < kControlOffset + 2) {
            control_value |= value;
            control_mask |= mask;
        }
        // +6..+7 decode nothing; PM_TMR is read-only (§4.8.3.3): writes are ignored.
    }

    if (status_mask != 0) {
        refresh_timer_status();  // a carry that already happened is cleared by this write too
        status_ &= static_cast<uint16_t>(~(status_value & status_mask));
    }
    if (enable_mask != 0)
        enable_ = static_cast<uint16_t>(((enable_ & ~enable_mask) | (enable_value & enable_mask)) & kEnableMask);
    if (control_mask != 0) write_control(control_value, control_mask);
}

void AcpiPm::write_control(uint16_t value, uint16_t mask) noexcept {
    const auto merged = static_cast<uint16_t>((control_ & ~mask) | (value & mask));
    // Only BM_RLD and SLP_TYP are storage; SCI_EN is fixed at 1, GBL_RLS and SLP_EN are
    // write-only and read as 0 (§4.8.3.2.1).
    control_ = merged & (kBmRld | kSlpTypMask);
    if (!(mask & value & kSlpEn)) return;
    const unsigned sleep_type = (merged & kSlpTypMask) >> kSlpTypShift;
    if (sleep_type == platform::kSleepTypeS5) {
        log::debug("acpi-pm: S5 (soft-off) requested");
        system_.request_poweroff();
        return;
    }
    log::debug("acpi-pm: sleep type {} requested; only S5 is supported, ignored", sleep_type);
}

}  // namespace minivmm
