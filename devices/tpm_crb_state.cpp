// TpmCrb snapshots (devices/device_state.hpp). Format version 1, in this order:
//   u8 1, u32 buffer size, u64 buffer address, bool locality assigned, bool idle, bool tpmSts
//   (fatal error), bool CTRL_START, u32 CTRL_CANCEL.
// Only the registers: the command/response buffer is guest RAM, saved with the machine's memory.
// A snapshot is taken only between commands, so a blob with CTRL_START set (a command with the
// TPM) is refused: its response would never arrive. The buffer's size and address come from the
// machine and the TPM and must match the new device's. A RegisterMirror over the device must be
// refresh()ed after load_state (TpmSlot::Attachment::load_state does).
#include "devices/tpm_crb.hpp"

namespace minivmm {

using namespace crb;

namespace {
constexpr uint8_t kFormat = 1;
}  // namespace

void TpmCrb::save_state(StateWriter& out) const {
    out.u8(kFormat);
    out.u32(buffer_size_);
    out.u64(buffer_gpa_);
    out.boolean(assigned_);
    out.boolean(idle_);
    out.boolean(error_);
    out.boolean(start_);
    out.u32(cancel_);
}

bool TpmCrb::load_state(std::span<const uint8_t> blob) noexcept {
    StateReader in(blob);
    uint8_t format = 0;
    uint32_t buffer_size = 0, cancel = 0;
    uint64_t buffer_gpa = 0;
    bool assigned = false, idle = false, error = false, start = false;
    in.u8(format);
    in.u32(buffer_size);
    in.u64(buffer_gpa);
    in.boolean(assigned);
    in.boolean(idle);
    in.boolean(error);
    in.boolean(start);
    in.u32(cancel);
    if (!in.finished() || format != kFormat || buffer_size != buffer_size_ || buffer_gpa != buffer_gpa_ || start ||
        (cancel & ~kCancelInvoke))
        return false;
    assigned_ = assigned;
    idle_ = idle;
    error_ = error;
    start_ = false;
    cancel_ = cancel;
    return true;
}

}  // namespace minivmm
