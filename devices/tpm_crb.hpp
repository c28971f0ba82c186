// TPM 2.0 Command Response Buffer (CRB) interface (TCG PC Client Platform TPM Profile (PTP)
// Specification, "CRB Interface"), with QEMU tpm-crb's register values: one 4 KiB page at
// platform::kTpmTisBase holding the locality-0 registers and the control area at +0x40; no
// interrupt (INT_ENABLE/INT_STS read 0). The command/response buffer is not in that page but in
// guest RAM (`buffer`, at buffer_gpa, platform::kTpmCrbBufferBase in the machine): the guest
// writes the command and reads the response without a single exit, and CTRL_CMD_LADDR/HADDR,
// CTRL_RSP_ADDR and the sizes point at it (Linux tpm_crb.c crb_map_io maps it from them and the
// _CRS; SeaBIOS tpm_drivers.c crb_init reads them).
//
// Protocol (PTP "CRB Interface" flows, as Linux tpm_crb and SeaBIOS drive it): LOC_CTRL
// requestAccess assigns locality 0; CTRL_REQ cmdReady leaves the Idle state; the command is
// written into the buffer; CTRL_START = 1 copies the header's paramSize bytes out of guest RAM
// (once: the guest may change the buffer meanwhile, the TPM sees the copy) to the
// TpmPort and reads 1 until command_completed() has written the response into the
// buffer; CTRL_REQ goIdle and LOC_CTRL relinquish end the session. A command shorter than its
// 10-byte header sets CTRL_STS.tpmSts (fatal error) and is not sent.
//
// Access rules: registers take naturally aligned 1, 2 or 4-byte accesses (decoded on 4-byte
// words, a narrower read sees the word shifted right by its byte position; a write acts at the
// register's first byte only), an aligned 8-byte access is two 4-byte ones (low word first);
// anything else reads all-ones and its writes are dropped. The page beyond 0x80 is reserved
// (reads 0). Reads have no side effects, so the machine serves the page from memory where it can
// (devices/register_mirror.hpp); elsewhere, every register write takes effect before the next
// register read, so the machine may queue the writes in KVM's coalesced MMIO ring.
//
// No lock inside (devices/device.hpp): every call runs under the machine's device lock.
// The port's submit() and cancel() must not call command_completed() before they return.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

#include "devices/device_state.hpp"
#include "devices/tpm_crb_regs.hpp"
#include "devices/tpm_port.hpp"
#include "vmm/base/guest_memory.hpp"

namespace minivmm {

class TpmCrb final : public TpmFrontend, public SavesState {
public:
    // `memory` holds the buffer, [buffer_gpa, buffer_gpa + capacity) (capacity at most
    // crb::kMaxBufferSize); it must outlive the device. The buffer's size, as CMD_SIZE/RSP_SIZE
    // read, is the smaller of capacity and the TPM's buffer_size().
    TpmCrb(TpmPort& port, const GuestMemory& memory, uint64_t buffer_gpa, uint32_t capacity) noexcept;

    std::string_view name() const noexcept override { return "tpm-crb"; }
    void read(uint64_t offset, std::span<uint8_t> data) noexcept override;
    void write(uint64_t offset, std::span<const uint8_t> data) noexcept override;

    // The TPM finished the command started through CTRL_START: the response (at most the
    // buffer's size, and at most its header's paramSize) is written into the guest's buffer and
    // the rest of the buffer to 0. A response shorter than a header sets CTRL_STS.tpmSts.
    void command_completed(std::span<const uint8_t> response) noexcept override;

    // Snapshots of the registers (tpm_crb_state.cpp has the format; the buffer is guest RAM).
    // Precondition of save_state(): no command outstanding; load_state() refuses a blob with
    // CTRL_START set, or for another buffer size or address.
    void save_state(StateWriter& out) const override;
    bool load_state(std::span<const uint8_t> blob) noexcept override;

    // Diagnostics and tests.
    bool command_outstanding() const noexcept { return start_; }
    bool locality_assigned() const noexcept { return assigned_; }
    uint32_t buffer_size() const noexcept { return buffer_size_; }

private:
    uint32_t read_register(uint32_t word) const noexcept;
    void write_register(uint32_t offset, uint32_t value) noexcept;
    void write_loc_ctrl(uint32_t value) noexcept;
    void write_ctrl_req(uint32_t value) noexcept;
    void start_command() noexcept;

    TpmPort& port_;
    const GuestMemory& memory_;
    uint64_t buffer_gpa_;
    uint32_t buffer_size_;  // min(port.buffer_size(), capacity)
    std::array<uint8_t, crb::kMaxBufferSize> command_{};  // the copy CTRL_START takes
    bool assigned_ = false;      // LOC_STATE.locAssigned (= LOC_STS.Granted for locality 0)
    bool idle_ = true;           // CTRL_STS.tpmIdle
    bool error_ = false;         // CTRL_STS.tpmSts
    bool start_ = false;         // CTRL_START.Start: a command is with the TPM
    uint32_t cancel_ = 0;        // CTRL_CANCEL as last written (bit 0)
};

}  // namespace minivmm
