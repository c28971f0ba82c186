// TPM 2.0 Command Response Buffer (CRB) interface (TCG PC Client Platform TPM Profile (PTP)
// Specification, "CRB Interface"), with QEMU tpm-crb's observable behaviour: one 4 KiB page at
// platform::kTpmTisBase holding the locality-0 registers, the control area at +0x40 and one
// command/response data buffer of 0xF80 bytes at +0x80; no interrupt (INT_ENABLE/INT_STS read 0).
//
// Protocol (PTP "CRB Interface" flows, as Linux tpm_crb and SeaBIOS drive it): LOC_CTRL
// requestAccess assigns locality 0; CTRL_REQ cmdReady leaves the Idle state; the command is
// written into the data buffer; CTRL_START = 1 hands the header's paramSize bytes to the
// TpmDeviceBackend and reads 1 until command_completed() has put the response into the buffer;
// CTRL_REQ goIdle and LOC_CTRL relinquish end the session. A command shorter than its 10-byte
// header sets CTRL_STS.tpmSts (fatal error) and is not sent.
//
// Access rules: the data buffer is plain memory (any 1..8-byte access inside it); registers take
// naturally aligned 1, 2 or 4-byte accesses (decoded on 4-byte words, a narrower read sees the
// word shifted right by its byte position; a write acts at the register's first byte only), an
// aligned 8-byte access is two 4-byte ones (low word first); anything else reads all-ones and its
// writes are dropped.
//
// No lock inside (devices/device.hpp): every call runs under the machine's device lock.
// The backend's submit() and cancel() must not call command_completed() before they return.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

#include "devices/tpm_crb_regs.hpp"
#include "devices/tpm_interface.hpp"

namespace minivmm {

class TpmCrb final : public TpmFrontend {
public:
    explicit TpmCrb(TpmDeviceBackend& backend) noexcept;

    std::string_view name() const noexcept override { return "tpm-crb"; }
    void read(uint64_t offset, std::span<uint8_t> data) noexcept override;
    void write(uint64_t offset, std::span<const uint8_t> data) noexcept override;

    // The backend finished the command started through CTRL_START: the response (at most the
    // buffer's size, and at most its header's paramSize) replaces the buffer's contents and the
    // rest of the buffer reads 0. A response shorter than a header sets CTRL_STS.tpmSts.
    void command_completed(std::span<const uint8_t> response) noexcept override;

    // Diagnostics and tests.
    bool command_outstanding() const noexcept { return start_; }
    bool locality_assigned() const noexcept { return assigned_; }

private:
    uint32_t read_register(uint32_t word) const noexcept;
    void write_register(uint32_t offset, uint32_t value) noexcept;
    void write_loc_ctrl(uint32_t value) noexcept;
    void write_ctrl_req(uint32_t value) noexcept;
    void start_command() noexcept;

    TpmDeviceBackend& backend_;
    size_t command_limit_;  // min(backend.buffer_size(), the data buffer)
    std::array<uint8_t, crb::kBufferSize> buffer_{};
    bool assigned_ = false;      // LOC_STATE.locAssigned (= LOC_STS.Granted for locality 0)
    bool idle_ = true;           // CTRL_STS.tpmIdle
    bool error_ = false;         // CTRL_STS.tpmSts
    bool start_ = false;         // CTRL_START.Start: a command is with the TPM
    uint32_t cancel_ = 0;        // CTRL_CANCEL as last written (bit 0)
};

}  // namespace minivmm
