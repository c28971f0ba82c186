#include "devices/reset_control.hpp"

#include "vmm/base/log.hpp"

namespace minivmm {

void ResetControl::read(uint64_t /*offset*/, std::span<uint8_t> data) noexcept {
    for (auto& byte : data) byte = value_;
}

void ResetControl::write(uint64_t /*offset*/, std::span<const uint8_t> data) noexcept {
    for (const uint8_t byte : data) {
        value_ = byte & (kSystemReset | kFullReset);
        if (byte & kResetCpu) {
            log::debug("reset-control: reset requested (value {:#04x})", byte);
            system_.request_reset();
        }
    }
}

namespace {

// Version 1 and one byte that has no bit outside `allowed`: the value, or -1.
int load_byte(std::span<const uint8_t> blob, uint8_t allowed) noexcept {
    StateReader in(blob);
    uint8_t version = 0, value = 0;
    in.u8(version);
    in.u8(value);
    return in.finished() && version == 1 && (value & ~allowed) == 0 ? value : -1;
}

}  // namespace

void ResetControl::save_state(StateWriter& out) const {
    out.u8(1);
    out.u8(value_);
}

bool ResetControl::load_state(std::span<const uint8_t> blob) noexcept {
    const int value = load_byte(blob, kSystemReset | kFullReset);
    if (value < 0) return false;
    value_ = static_cast<uint8_t>(value);
    return true;
}

void A20Gate::save_state(StateWriter& out) const {
    out.u8(1);
    out.u8(value_);
}

bool A20Gate::load_state(std::span<const uint8_t> blob) noexcept {
    const int value = load_byte(blob, kA20Enable);
    if (value < 0) return false;
    value_ = static_cast<uint8_t>(value);
    return true;
}

void A20Gate::read(uint64_t /*offset*/, std::span<uint8_t> data) noexcept {
    // Bit 0 reads 0, so a guest doing read-modify-write on bit 1 (SeaBIOS set_a20) never
    // writes the fast-reset bit back by accident.
    for (auto& byte : data) byte = value_;
}

void A20Gate::write(uint64_t /*offset*/, std::span<const uint8_t> data) noexcept {
    for (const uint8_t byte : data) {
        value_ = byte & kA20Enable;
        if (byte & kFastReset) {
            log::debug("a20-gate: fast reset requested (value {:#04x})", byte);
            system_.request_reset();
        }
    }
}

}  // namespace minivmm
