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
