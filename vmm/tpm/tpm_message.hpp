// TPM messages, whichever TPM answers them (swtpm, libtpms, the PPI actions, the tests): the
// 10-byte command/response header (tag u16, size u32, code u32, big-endian; TPM 2.0 Part 1 §18,
// TPM 1.2 Part 3 §1), the error responses minivmm answers itself, the command-size check both
// backends apply, and a builder for commands.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "devices/tpm_types.hpp"

namespace minivmm {

inline constexpr size_t kTpmHeaderSize = 10;
inline constexpr uint16_t kTpm2TagNoSessions = 0x8001;
inline constexpr uint16_t kTpm12TagRspCommand = 0x00c4;
inline constexpr uint32_t kTpm2RcFailure = 0x101;
inline constexpr uint32_t kTpm2RcCommandSize = 0x142;
inline constexpr uint32_t kTpm12Fail = 0x09;
inline constexpr uint32_t kTpm12BadParamSize = 0x19;

uint16_t tpm_tag(std::span<const uint8_t> message) noexcept;   // 0 if shorter than 2
uint32_t tpm_size(std::span<const uint8_t> message) noexcept;  // 0 if shorter than 6
uint32_t tpm_code(std::span<const uint8_t> message) noexcept;  // 0 if shorter than 10

// A 10-byte error response in the version's format: tag 0x8001 (2.0) / 0x00c4 (1.2).
std::array<uint8_t, kTpmHeaderSize> tpm_error_response(TpmVersion version, uint32_t code) noexcept;
// What the guest gets when the TPM is gone: TPM_RC_FAILURE (2.0) / TPM_FAIL (1.2).
std::array<uint8_t, kTpmHeaderSize> tpm_failure_response(TpmVersion version) noexcept;

// What the guest gets when the TPM is gone, written into `response` (at least kTpmHeaderSize
// bytes); returns its size.
size_t write_failure_response(TpmVersion version, std::span<uint8_t> response) noexcept;

// The size check both backends make before a command reaches the TPM (swtpm reads a command in
// one read() and waits for 10 bytes, so a shorter one would stall its data channel): a command
// shorter than the header or longer than `buffer_size` gets TPM_RC_COMMAND_SIZE (2.0) /
// TPM_BAD_PARAM_SIZE (1.2) in `response`. Returns that response's size, or 0 if the command may go.
size_t reject_bad_command_size(TpmVersion version, std::span<const uint8_t> command, size_t buffer_size,
                               std::span<uint8_t> response) noexcept;

// Builds a command in its wire format: tag, size (filled in by done()), command code, then the
// parameters.
class TpmCommand {
public:
    TpmCommand(uint16_t tag, uint32_t code) {
        u16(tag);
        u32(0);
        u32(code);
    }
    TpmCommand& u8(uint8_t v) {
        b_.push_back(v);
        return *this;
    }
    TpmCommand& u16(uint16_t v) { return u8(static_cast<uint8_t>(v >> 8)).u8(static_cast<uint8_t>(v)); }
    TpmCommand& u32(uint32_t v) { return u16(static_cast<uint16_t>(v >> 16)).u16(static_cast<uint16_t>(v)); }
    TpmCommand& bytes(const std::vector<uint8_t>& v) {
        b_.insert(b_.end(), v.begin(), v.end());
        return *this;
    }
    // TPM 2.0 authorization area with one empty-password session: authorizationSize 9,
    // TPM_RS_PW, no nonce, no attributes, empty password (Part 1 §19.8.4).
    TpmCommand& password_session() { return u32(9).u32(0x40000009).u16(0).u8(0).u16(0); }
    std::vector<uint8_t> done() const {
        auto v = b_;
        const auto n = static_cast<uint32_t>(v.size());
        for (int i = 0; i < 4; ++i) v[2 + i] = static_cast<uint8_t>(n >> (24 - 8 * i));
        return v;
    }

private:
    std::vector<uint8_t> b_;
};

}  // namespace minivmm
