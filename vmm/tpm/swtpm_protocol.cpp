#include "vmm/tpm/swtpm_protocol.hpp"

#include "vmm/base/bytes.hpp"

#include <algorithm>
#include <cstring>

#include <fmt/core.h>

namespace minivmm::swtpm {

namespace {

constexpr uint32_t kBaseCaps = kCapInit | kCapShutdown | kCapGetTpmEstablished | kCapSetLocality | kCapSetDataFd |
                               kCapStop | kCapSetBufferSize;

}  // namespace

uint32_t required_caps(TpmVersion version) noexcept {
    return version == TpmVersion::v2_0 ? (kBaseCaps | kCapResetTpmEstablished) : kBaseCaps;
}

std::string cap_names(uint32_t missing) {
    static constexpr std::pair<uint32_t, const char*> kNames[] = {
        {kCapInit, "INIT"},
        {kCapShutdown, "SHUTDOWN"},
        {kCapGetTpmEstablished, "GET_TPMESTABLISHED"},
        {kCapSetLocality, "SET_LOCALITY"},
        {kCapCancelTpmCmd, "CANCEL_TPM_CMD"},
        {kCapResetTpmEstablished, "RESET_TPMESTABLISHED"},
        {kCapGetStateBlob, "GET_STATEBLOB"},
        {kCapSetStateBlob, "SET_STATEBLOB"},
        {kCapStop, "STOP"},
        {kCapSetDataFd, "SET_DATAFD"},
        {kCapSetBufferSize, "SET_BUFFERSIZE"},
        {kCapLockStorage, "LOCK_STORAGE"},
    };
    std::string out;
    for (auto [bit, name] : kNames) {
        if (!(missing & bit)) continue;
        if (!out.empty()) out += ", ";
        out += name;
        missing &= ~bit;
    }
    if (missing != 0) out += fmt::format("{}0x{:x}", out.empty() ? "" : ", ", missing);
    return out;
}

std::string_view ctrl_cmd_name(CtrlCmd cmd) noexcept {
    switch (cmd) {
    case CtrlCmd::get_capability: return "CMD_GET_CAPABILITY";
    case CtrlCmd::init: return "CMD_INIT";
    case CtrlCmd::shutdown: return "CMD_SHUTDOWN";
    case CtrlCmd::get_tpm_established: return "CMD_GET_TPMESTABLISHED";
    case CtrlCmd::set_locality: return "CMD_SET_LOCALITY";
    case CtrlCmd::cancel_tpm_cmd: return "CMD_CANCEL_TPM_CMD";
    case CtrlCmd::reset_tpm_established: return "CMD_RESET_TPMESTABLISHED";
    case CtrlCmd::get_stateblob: return "CMD_GET_STATEBLOB";
    case CtrlCmd::set_stateblob: return "CMD_SET_STATEBLOB";
    case CtrlCmd::lock_storage: return "CMD_LOCK_STORAGE";
    case CtrlCmd::stop: return "CMD_STOP";
    case CtrlCmd::set_datafd: return "CMD_SET_DATAFD";
    case CtrlCmd::set_buffersize: return "CMD_SET_BUFFERSIZE";
    }
    return "CMD_?";
}

std::string ptm_result_text(uint32_t result) {
    const char* name = nullptr;
    switch (result) {
    case kPtmSuccess: name = "TPM_SUCCESS"; break;
    case kPtmBadParameter: name = "TPM_BAD_PARAMETER"; break;
    case kPtmFail: name = "TPM_FAIL"; break;
    case kPtmBadOrdinal: name = "TPM_BAD_ORDINAL"; break;
    case kPtmIoError: name = "TPM_IOERROR"; break;
    case kPtmBadLocality: name = "TPM_BAD_LOCALITY"; break;
    case kTpm2RcFailure: name = "TPM_RC_FAILURE"; break;
    default: break;
    }
    return name ? fmt::format("{} (0x{:x})", name, result) : fmt::format("0x{:x}", result);
}

CtrlRequest encode_ctrl(CtrlCmd cmd) noexcept {
    CtrlRequest r;
    store_be(std::span(r.bytes).first(4), static_cast<uint32_t>(cmd));
    r.size = 4;
    return r;
}

CtrlRequest encode_ctrl_u32(CtrlCmd cmd, uint32_t value) noexcept {
    CtrlRequest r = encode_ctrl(cmd);
    store_be(std::span(r.bytes).subspan(4, 4), value);
    r.size = 8;
    return r;
}

CtrlRequest encode_ctrl_locality(CtrlCmd cmd, uint8_t locality) noexcept {
    CtrlRequest r = encode_ctrl(cmd);
    r.bytes[4] = locality;
    r.size = 8;
    return r;
}

// Success reply layouts (tpm_ioctl.h): ptm_cap (res + u32 caps), ptm_est (res + u8 bit + 3 pad),
// ptm_setbuffersize (res + buffersize + minsize + maxsize), ptm_getstate's header (res +
// state_flags + totlength + length; the blob bytes follow, read separately); all others are
// ptm_res only.
size_t ctrl_success_reply_size(CtrlCmd cmd) noexcept {
    switch (cmd) {
    case CtrlCmd::get_stateblob: return 16;
    case CtrlCmd::get_capability: return 8;
    case CtrlCmd::get_tpm_established: return 8;
    case CtrlCmd::set_buffersize: return 16;
    default: return 4;
    }
}

CtrlReply::CtrlReply(CtrlCmd cmd) noexcept
    : success_size_(ctrl_success_reply_size(cmd)), header_on_retry_(cmd == CtrlCmd::get_stateblob) {}

size_t CtrlReply::wanted() const noexcept {
    if (have_ < 4) return 4 - have_;
    if (result() != kPtmSuccess && !(header_on_retry_ && (result() & kPtmNonFatal))) return 0;  // errors: ptm_res only
    return success_size_ - have_;
}

size_t CtrlReply::feed(std::span<const uint8_t> bytes) noexcept {
    size_t taken = 0;
    // Twice at most: ptm_res first, then (on success) the rest, which depends on it.
    while (taken < bytes.size() && wanted() > 0) {
        size_t n = std::min(bytes.size() - taken, wanted());
        std::memcpy(buf_.data() + have_, bytes.data() + taken, n);
        have_ += n;
        taken += n;
    }
    return taken;
}

uint32_t CtrlReply::result() const noexcept { return have_ >= 4 ? load_be32(buf_) : kPtmFail; }

std::span<const uint8_t> CtrlReply::payload() const noexcept {
    if (have_ < 4) return {};
    return {buf_.data() + 4, have_ - 4};
}

bool parse_capabilities(std::span<const uint8_t> payload, uint32_t& caps) noexcept {
    if (payload.size() < 4) return false;
    caps = load_be32(payload);
    return true;
}

bool parse_established(std::span<const uint8_t> payload, bool& established) noexcept {
    if (payload.size() < 1) return false;
    established = (payload[0] & 1) != 0;
    return true;
}

bool parse_buffer_sizes(std::span<const uint8_t> payload, BufferSizes& sizes) noexcept {
    if (payload.size() < 12) return false;
    sizes.current = load_be32(payload);
    sizes.min = load_be32(payload, 4);
    sizes.max = load_be32(payload, 8);
    return true;
}

TpmResponseReader::TpmResponseReader(std::span<uint8_t> out, size_t max_size) noexcept
    : out_(out), max_size_(std::min(max_size, out.size())) {
    if (max_size_ < kTpmHeaderSize) state_ = State::malformed;
}

size_t TpmResponseReader::wanted() const noexcept {
    if (state_ != State::need_more) return 0;
    if (have_ < kTpmHeaderSize) return kTpmHeaderSize - have_;
    return declared_ - have_;
}

std::span<uint8_t> TpmResponseReader::next_space() noexcept { return out_.subspan(have_, wanted()); }

void TpmResponseReader::received(size_t n) noexcept {
    have_ += std::min(n, wanted());
    update();
}

size_t TpmResponseReader::feed(std::span<const uint8_t> bytes) noexcept {
    std::span<uint8_t> space = next_space();
    size_t n = std::min(bytes.size(), space.size());
    if (n > 0) std::memcpy(space.data(), bytes.data(), n);  // an empty span may be null: no memcpy
    received(n);
    return n;
}

void TpmResponseReader::update() noexcept {
    if (state_ != State::need_more || have_ < kTpmHeaderSize) return;
    if (declared_ == 0) {
        declared_ = tpm_size(out_.first(have_));
        if (declared_ < kTpmHeaderSize || declared_ > max_size_) {
            state_ = State::malformed;
            return;
        }
    }
    if (have_ == declared_) state_ = State::complete;
}

bool probe_response_matches(std::span<const uint8_t> response, uint16_t expected_tag) noexcept {
    return response.size() >= kTpmHeaderSize && tpm_size(response) == response.size() &&
           tpm_tag(response) == expected_tag;
}

}  // namespace minivmm::swtpm
