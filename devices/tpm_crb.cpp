// TPM CRB register access, the command start and completion (TCG PC Client PTP, "CRB Interface";
// QEMU hw/tpm/tpm_crb.c for the values and the exact-value decoding of the request registers).
// The buffer is guest RAM, read and written only through GuestMemory.
#include "devices/tpm_crb.hpp"

#include <algorithm>

#include "vmm/base/bytes.hpp"
#include "vmm/base/log.hpp"
#include "vmm/base/platform.hpp"

namespace minivmm {

using namespace crb;

static_assert(kPageSize <= platform::kTpmTisSize, "the CRB page lies inside the TPM window");

namespace {

constexpr bool is_register_access(uint64_t offset, size_t size) noexcept {
    return (size == 1 || size == 2 || size == 4) && offset % size == 0;
}

}  // namespace

TpmCrb::TpmCrb(TpmPort& port, const GuestMemory& memory, uint64_t buffer_gpa, uint32_t capacity) noexcept
    : port_(port), memory_(memory), buffer_gpa_(buffer_gpa),
      buffer_size_(static_cast<uint32_t>(std::min<size_t>({port.buffer_size(), capacity, kMaxBufferSize}))) {}

void TpmCrb::read(uint64_t offset, std::span<uint8_t> data) noexcept {
    const size_t size = data.size();
    if (size == 0 || size > 8 || offset >= kPageSize || size > kPageSize - offset) {
        std::fill(data.begin(), data.end(), uint8_t{0xFF});
        return;
    }
    const auto off = static_cast<uint32_t>(offset);
    if (is_register_access(offset, size)) {
        store_le(data, read_register(off & ~3u) >> ((off & 3) * 8));
    } else if (size == 8 && offset % 8 == 0) {
        store_le(data.first(4), read_register(off));
        store_le(data.subspan(4), read_register(off + 4));
    } else {
        log::debug("tpm-crb: unaligned {}-byte read at {:#x} reads all-ones", size, offset);
        std::fill(data.begin(), data.end(), uint8_t{0xFF});
    }
}

void TpmCrb::write(uint64_t offset, std::span<const uint8_t> data) noexcept {
    const size_t size = data.size();
    if (size == 0 || size > 8 || offset >= kPageSize || size > kPageSize - offset) return;
    const auto off = static_cast<uint32_t>(offset);
    if (is_register_access(offset, size)) {
        write_register(off, static_cast<uint32_t>(load_le(data)));
    } else if (size == 8 && offset % 8 == 0) {
        write_register(off, static_cast<uint32_t>(load_le(data.first(4))));
        write_register(off + 4, static_cast<uint32_t>(load_le(data.subspan(4))));
    } else {
        log::debug("tpm-crb: unaligned {}-byte write at {:#x} dropped", size, offset);
    }
}

uint32_t TpmCrb::read_register(uint32_t word) const noexcept {
    switch (word) {
    case kRegLocState: {
        uint32_t v = kLocStateRegValidSts | (assigned_ ? kLocStateLocAssigned : 0);
        // As QEMU (and the TIS's ACCESS.tpmEstablishment): the bit reads 1 while the flag is not set.
        if (!port_.established()) v |= kLocStateEstablished;
        return v;
    }
    case kRegLocSts: return assigned_ ? kLocStsGranted : 0;  // beenSeized: no other locality can seize
    case kRegIntfId: return kIntfId;
    case kRegIntfId2: return kIntfId2;
    case kRegCtrlSts: return (error_ ? kCtrlStsError : 0) | (idle_ ? kCtrlStsIdle : 0);
    case kRegCtrlCancel: return cancel_;
    case kRegCtrlStart: return start_ ? kStartInvoke : 0;
    case kRegCmdSize:
    case kRegRspSize: return buffer_size_;
    case kRegCmdLaddr:
    case kRegRspAddr: return static_cast<uint32_t>(buffer_gpa_);
    case kRegCmdHaddr:
    case kRegRspAddrHigh: return static_cast<uint32_t>(buffer_gpa_ >> 32);
    // LOC_CTRL and CTRL_REQ are done as soon as written; CTRL_EXT and the interrupt registers (no
    // interrupt) are 0, as is every reserved word (the rest of the page included).
    default: return 0;
    }
}

// A write acts only at a register's first byte; the value is what the access wrote.
void TpmCrb::write_register(uint32_t offset, uint32_t value) noexcept {
    switch (offset) {
    case kRegLocCtrl: write_loc_ctrl(value); break;
    case kRegCtrlReq: write_ctrl_req(value); break;
    case kRegCtrlCancel:
        // PTP TPM_CRB_CTRL_CANCEL_x: 1 asks the TPM to abort the command; software writes 0 before
        // the next one (Linux crb_send), and reads it back to tell a cancelled command.
        cancel_ = value & kCancelInvoke;
        if (cancel_ && start_) port_.cancel();
        break;
    case kRegCtrlStart:
        // PTP TPM_CRB_CTRL_START_x: only the assigned locality starts a command, and only one at a time.
        if (!assigned_) {
            log::debug("tpm-crb: CTRL_START with no locality assigned ignored");
        } else if (start_) {
            log::debug("tpm-crb: CTRL_START while a command executes ignored");
        } else if (value & kStartInvoke) {
            start_command();
        }
        break;
    default: break;  // read-only, reserved, or (INT_ENABLE, IntfSelLock) not modelled, as QEMU
    }
}

// TPM_LOC_CTRL_x takes exactly one request per write (QEMU matches the whole value).
void TpmCrb::write_loc_ctrl(uint32_t value) noexcept {
    switch (value) {
    case kLocCtrlRequestAccess: assigned_ = true; break;
    case kLocCtrlRelinquish: assigned_ = false; break;
    // Seize needs a higher locality, resetEstablishment locality 3 or 4: neither exists here.
    case kLocCtrlSeize:
    case kLocCtrlResetEstablishment: break;
    default: log::debug("tpm-crb: LOC_CTRL value {:#x} is no single request, ignored", value); break;
    }
}

// TPM_CRB_CTRL_REQ_x: cmdReady leaves, goIdle enters the Idle state (both complete at once, so
// the register reads 0 again; PTP "CRB Interface State Transitions"). Both bits at once: nothing.
void TpmCrb::write_ctrl_req(uint32_t value) noexcept {
    if (value == kCtrlReqCmdReady) idle_ = false;
    else if (value == kCtrlReqGoIdle) idle_ = true;
}

// One copy out of guest RAM, header first: paramSize comes from the copy, and the rest is copied
// after it, so a guest changing the buffer meanwhile changes nothing the TPM is given twice.
void TpmCrb::start_command() noexcept {
    const std::span<uint8_t> header(command_.data(), kHeaderSize);
    if (buffer_size_ < kHeaderSize || !memory_.read(buffer_gpa_, header)) {
        log::debug("tpm-crb: the command buffer at {:#x} is not guest memory: tpmSts set", buffer_gpa_);
        error_ = true;
        return;
    }
    const uint32_t param_size = load_be32(header, 2);
    if (param_size < kHeaderSize) {
        log::debug("tpm-crb: command of {} bytes is shorter than its header: tpmSts set", param_size);
        error_ = true;
        return;
    }
    const size_t n = std::min<size_t>(param_size, buffer_size_);  // a longer one is cut, as the TIS does
    if (!memory_.read(buffer_gpa_ + kHeaderSize, std::span<uint8_t>(command_.data() + kHeaderSize, n - kHeaderSize))) {
        error_ = true;
        return;
    }
    start_ = true;
    port_.submit(0, std::span<const uint8_t>(command_.data(), n));
}

void TpmCrb::command_completed(std::span<const uint8_t> response) noexcept {
    if (!start_) {
        log::debug("tpm-crb: TPM response with no command outstanding ignored");
        return;
    }
    start_ = false;
    size_t n = std::min<size_t>(response.size(), buffer_size_);
    if (n < kHeaderSize) {
        error_ = true;  // no TPM answer at all: a fatal error, as QEMU reports a failed backend
        n = 0;
    } else {
        n = std::min<size_t>(n, load_be32(response, 2));  // the header's paramSize, not more
    }
    // The response, then zeros up to the buffer's end (CTRL_START still reads 1 meanwhile).
    const std::optional<std::span<uint8_t>> buffer = memory_.span(buffer_gpa_, buffer_size_);
    if (!buffer) {
        error_ = true;
        return;
    }
    std::copy_n(response.begin(), n, buffer->begin());
    std::fill(buffer->begin() + static_cast<ptrdiff_t>(n), buffer->end(), uint8_t{0});
}

}  // namespace minivmm
