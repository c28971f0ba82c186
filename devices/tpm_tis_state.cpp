// TpmTis snapshots (devices/device_state.hpp). Format version 1, in this order:
//   u8 1, u8 TPM version (1 = 1.2, 2 = 2.0), u32 buffer size, u32 TPM_INTERFACE_ID,
//   per locality 0..4: u8 state, u8 TPM_ACCESS as stored, u32 TPM_STS flags, u32 INT_ENABLE,
//   u32 INT_STATUS; u8 active locality (0xFF: none), the shared buffer (bytes, 4096),
//   u32 FIFO position, u32 response length, bool interrupt line level.
// A snapshot is taken only between commands (the machine waits for the TPM worker first), so
// no command is outstanding, no abort waits for one and no locality is in the Execution state:
// a blob with a locality in Execution is refused (its command's response would never come).
// The TPM version and buffer size come from the TPM port and must match the new device's.
#include <algorithm>

#include "devices/tpm_tis.hpp"

namespace minivmm {

using namespace tis;

namespace {

constexpr uint8_t kFormat = 1;
constexpr uint8_t kAccessStored = kAccessRegValidSts | kAccessRequestUse | kAccessBeenSeized | kAccessActiveLocality;
constexpr uint32_t kStsStored = kStsSticky | kStsCommandReady | kStsExpect | kStsValid | kStsDataAvailable;

}  // namespace

void TpmTis::save_state(StateWriter& out) const {
    out.u8(kFormat);
    out.u8(version_ == TpmVersion::v2_0 ? 2 : 1);
    out.u32(static_cast<uint32_t>(buffer_size_));
    out.u32(loc_[0].iface_id);
    for (const Locality& l : loc_) {
        out.u8(static_cast<uint8_t>(l.state));
        out.u8(l.access);
        out.u32(l.sts);
        out.u32(l.inte);
        out.u32(l.ints);
    }
    out.u8(active_);
    out.bytes(buffer_);
    out.u32(static_cast<uint32_t>(rw_offset_));
    out.u32(static_cast<uint32_t>(response_len_));
    out.boolean(irq_level_);
}

bool TpmTis::load_state(std::span<const uint8_t> blob) noexcept {
    StateReader in(blob);
    uint8_t format = 0, tpm = 0, active = 0;
    uint32_t buffer_size = 0, iface_id = 0, rw_offset = 0, response_len = 0;
    std::array<Locality, kNumLocalities> loc{};
    std::array<uint8_t, 5> states{};
    bool level = false;
    in.u8(format);
    in.u8(tpm);
    in.u32(buffer_size);
    in.u32(iface_id);
    for (size_t i = 0; i < kNumLocalities; ++i) {
        in.u8(states[i]);
        in.u8(loc[i].access);
        in.u32(loc[i].sts);
        in.u32(loc[i].inte);
        in.u32(loc[i].ints);
    }
    in.u8(active);
    std::array<uint8_t, kBufferMax> buffer{};
    in.bytes(buffer);
    in.u32(rw_offset);
    in.u32(response_len);
    in.boolean(level);
    const bool tpm2 = version_ == TpmVersion::v2_0;
    if (!in.finished() || format != kFormat || tpm != (tpm2 ? 2 : 1) || buffer_size != buffer_size_ ||
        rw_offset > buffer_size_ || response_len > buffer_size_ || (active != kNoLocality && active >= 4))
        return false;
    const uint32_t iface_base = tpm2 ? kInterfaceIdTpm20 : kInterfaceIdTpm12;
    if (iface_id != iface_base && iface_id != (iface_base | kInterfaceIdIntSelLock)) return false;
    const uint32_t family = tpm2 ? kStsFamily20 : kStsFamily12;
    const uint32_t selftest = loc[0].sts & kStsSelftestDone;  // set in every locality at once
    bool pending = false;
    for (uint8_t i = 0; i < kNumLocalities; ++i) {
        Locality& l = loc[i];
        if (states[i] > static_cast<uint8_t>(State::reception) || states[i] == static_cast<uint8_t>(State::execution))
            return false;
        l.state = static_cast<State>(states[i]);
        l.iface_id = iface_id;
        const bool is_active = i == active;
        if ((l.access & ~kAccessStored) || !(l.access & kAccessRegValidSts) ||
            ((l.access & kAccessActiveLocality) != 0) != is_active || (is_active && (l.access & kAccessRequestUse)) ||
            (l.sts & ~kStsStored) || (l.sts & kStsFamilyMask) != family || (l.sts & kStsSelftestDone) != selftest ||
            (l.inte & ~kIntEnableWritable) || (l.ints & ~kIntSupported))
            return false;
        // Locality 4 takes no software writes: it stays as it was at power-on.
        if (i == 4 && (l.state != State::idle || l.access != kAccessRegValidSts || (l.sts & ~kStsSticky) ||
                       l.inte != kIntPolarityLowLevel || l.ints != 0))
            return false;
        pending = pending || l.ints != 0;
    }
    if (level && !pending) return false;  // the line drops once no locality has an event latched
    loc_ = loc;
    buffer_ = buffer;
    rw_offset_ = rw_offset;
    response_len_ = response_len;
    active_ = active;
    aborting_ = next_ = kNoLocality;
    outstanding_ = false;
    command_locality_ = 0;
    selftest_command_ = false;
    irq_level_ = level;
    irq_latched_since_enable_ = true;  // not saved: a restored guest's driver tested the interrupt before
    if (irq_ != nullptr) irq_->set(level);  // the line follows the restored device
    return true;
}

}  // namespace minivmm
