// The swtpm control-channel protocol and the data channel's response framing as pure functions, so every
// encoding and every malformed reply can be unit-tested without a socket.
// Source: swtpm include/swtpm/tpm_ioctl.h and man3/swtpm_ioctls.pod ("Commands used by the
// non-CUSE TPMs"); all words on both swtpm sockets are big-endian.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "devices/tpm_types.hpp"
#include "vmm/tpm/tpm_message.hpp"

namespace minivmm::swtpm {

// Control-channel command codes (tpm_ioctl.h CMD_*).
enum class CtrlCmd : uint32_t {
    get_capability = 0x01,
    init = 0x02,
    shutdown = 0x03,
    get_tpm_established = 0x04,
    set_locality = 0x05,
    cancel_tpm_cmd = 0x09,
    reset_tpm_established = 0x0b,
    get_stateblob = 0x0c,
    set_stateblob = 0x0d,
    stop = 0x0e,
    set_datafd = 0x10,
    set_buffersize = 0x11,
    lock_storage = 0x13,
};

// PTM_CAP_* bits returned by CMD_GET_CAPABILITY.
inline constexpr uint32_t kCapInit = 1u << 0;
inline constexpr uint32_t kCapShutdown = 1u << 1;
inline constexpr uint32_t kCapGetTpmEstablished = 1u << 2;
inline constexpr uint32_t kCapSetLocality = 1u << 3;
inline constexpr uint32_t kCapCancelTpmCmd = 1u << 5;
inline constexpr uint32_t kCapResetTpmEstablished = 1u << 7;
inline constexpr uint32_t kCapGetStateBlob = 1u << 8;
inline constexpr uint32_t kCapSetStateBlob = 1u << 9;
inline constexpr uint32_t kCapStop = 1u << 10;
inline constexpr uint32_t kCapSetDataFd = 1u << 12;
inline constexpr uint32_t kCapSetBufferSize = 1u << 13;
inline constexpr uint32_t kCapLockStorage = 1u << 16;  // swtpm 0.8+

// What we need, as QEMU's tpm_emulator_check_caps: TPM 1.2 = 0x340f, TPM 2.0 also
// RESET_TPMESTABLISHED (0x348f). CANCEL_TPM_CMD is optional (cancel() is a no-op without it).
uint32_t required_caps(TpmVersion version) noexcept;
// Comma-separated names of the bits in `missing`, e.g. "SET_DATAFD, STOP".
std::string cap_names(uint32_t missing);

// ptm_res values seen on the control channel (libtpms tpm_error.h). Bit 0x800 marks a non-fatal
// result (TPM_NON_FATAL: TPM_RETRY = 0x800 is "no such state blob" for CMD_GET_STATEBLOB).
inline constexpr uint32_t kPtmSuccess = 0;
inline constexpr uint32_t kPtmBadParameter = 0x03;
inline constexpr uint32_t kPtmFail = 0x09;
inline constexpr uint32_t kPtmBadOrdinal = 0x0a;
inline constexpr uint32_t kPtmIoError = 0x1f;
inline constexpr uint32_t kPtmBadLocality = 0x3d;
inline constexpr uint32_t kPtmNonFatal = 0x800;

std::string_view ctrl_cmd_name(CtrlCmd cmd) noexcept;
// "TPM_BAD_ORDINAL (0xa)" or "0x1234" for unknown values.
std::string ptm_result_text(uint32_t result);

// One control request: the command word and its payload, to be sent in ONE write (swtpm parses
// what the first recvmsg returns for most commands). At most 16 bytes (CMD_GET_STATEBLOB).
struct CtrlRequest {
    std::array<uint8_t, 16> bytes{};
    size_t size = 0;
    std::span<const uint8_t> view() const noexcept { return {bytes.data(), size}; }
};
CtrlRequest encode_ctrl(CtrlCmd cmd) noexcept;
// Commands with a u32 argument (INIT flags, SET_BUFFERSIZE size).
CtrlRequest encode_ctrl_u32(CtrlCmd cmd, uint32_t value) noexcept;
// Commands with a locality byte; sent as 4 bytes (loc, 0, 0, 0) as QEMU does.
CtrlRequest encode_ctrl_locality(CtrlCmd cmd, uint8_t locality) noexcept;

// Length of the full success reply of `cmd`, including the 4-byte ptm_res.
size_t ctrl_success_reply_size(CtrlCmd cmd) noexcept;

// Assembles one control reply from however many reads it arrives in. swtpm sends only the
// 4-byte ptm_res on any error (except CMD_GET_STATEBLOB, whose 16-byte header follows a non-fatal
// result, ctrlchannel_return_state: TPM_RETRY when the blob does not exist), so the reader asks for 4 bytes first and for the rest of the
// success reply only when ptm_res is 0. Read exactly wanted() bytes each time: nothing beyond
// the reply is ever consumed.
class CtrlReply {
public:
    explicit CtrlReply(CtrlCmd cmd) noexcept;
    size_t wanted() const noexcept;
    // Appends the bytes that belong to this reply (bytes after its end are not taken); returns
    // the number taken.
    size_t feed(std::span<const uint8_t> bytes) noexcept;
    bool complete() const noexcept { return wanted() == 0; }
    uint32_t result() const noexcept;  // valid once at least 4 bytes arrived
    // The bytes after ptm_res of a complete success reply.
    std::span<const uint8_t> payload() const noexcept;

private:
    std::array<uint8_t, 16> buf_{};
    size_t have_ = 0;
    size_t success_size_;
    bool header_on_retry_;  // CMD_GET_STATEBLOB: a non-fatal result still carries the header
};

struct BufferSizes {
    uint32_t current = 0;
    uint32_t min = 0;
    uint32_t max = 0;
};
// Payload decoders for complete success replies; false if the payload is too short.
bool parse_capabilities(std::span<const uint8_t> payload, uint32_t& caps) noexcept;
bool parse_established(std::span<const uint8_t> payload, bool& established) noexcept;
bool parse_buffer_sizes(std::span<const uint8_t> payload, BufferSizes& sizes) noexcept;

// Assembles one TPM response from the data channel: the 10-byte header first, then exactly
// size-10 more bytes. A size field below 10 or above `max_size` is malformed (the stream can
// then no longer be trusted).
class TpmResponseReader {
public:
    enum class State { need_more, complete, malformed };
    TpmResponseReader(std::span<uint8_t> out, size_t max_size) noexcept;
    size_t wanted() const noexcept;
    // Writes up to wanted() bytes into the output buffer; returns the number taken.
    size_t feed(std::span<const uint8_t> bytes) noexcept;
    // Where the next read may write directly (wanted() bytes), then call received(n).
    std::span<uint8_t> next_space() noexcept;
    void received(size_t n) noexcept;
    State state() const noexcept { return state_; }
    size_t size() const noexcept { return have_; }
    uint32_t declared_size() const noexcept { return declared_; }

private:
    void update() noexcept;
    std::span<uint8_t> out_;
    size_t max_size_;
    size_t have_ = 0;
    uint32_t declared_ = 0;
    State state_ = State::need_more;
};

// Version probe as QEMU's tpm_util_test_tpmdev: TPM2_ReadClock must come back with tag 0x8001
// on a TPM 2.0, TPM_GetTicks with tag 0x00c4 on a TPM 1.2. Both are answered even before
// CMD_INIT (swtpm then returns its fatal-error response, in the version's format).
inline constexpr std::array<uint8_t, 10> kTpm2ReadClock = {0x80, 0x01, 0, 0, 0, 0x0a, 0, 0, 0x01, 0x81};
inline constexpr std::array<uint8_t, 10> kTpm12GetTicks = {0x00, 0xc1, 0, 0, 0, 0x0a, 0, 0, 0x00, 0xf1};
// True if `response` is a well-formed answer (size field == length) carrying `expected_tag`.
bool probe_response_matches(std::span<const uint8_t> response, uint16_t expected_tag) noexcept;

}  // namespace minivmm::swtpm
