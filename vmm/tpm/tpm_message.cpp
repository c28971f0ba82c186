#include "vmm/tpm/tpm_message.hpp"

#include <algorithm>

#include "vmm/base/bytes.hpp"

namespace minivmm {

uint16_t tpm_tag(std::span<const uint8_t> message) noexcept {
    return message.size() < 2 ? 0 : static_cast<uint16_t>((message[0] << 8) | message[1]);
}

uint32_t tpm_size(std::span<const uint8_t> message) noexcept {
    return message.size() < 6 ? 0 : load_be32(message, 2);
}

uint32_t tpm_code(std::span<const uint8_t> message) noexcept {
    return message.size() < kTpmHeaderSize ? 0 : load_be32(message, 6);
}

std::array<uint8_t, kTpmHeaderSize> tpm_error_response(TpmVersion version, uint32_t code) noexcept {
    std::array<uint8_t, kTpmHeaderSize> r{};
    uint16_t tag = version == TpmVersion::v2_0 ? kTpm2TagNoSessions : kTpm12TagRspCommand;
    r[0] = static_cast<uint8_t>(tag >> 8);
    r[1] = static_cast<uint8_t>(tag);
    store_be(std::span(r).subspan(2, 4), kTpmHeaderSize);
    store_be(std::span(r).subspan(6, 4), code);
    return r;
}

std::array<uint8_t, kTpmHeaderSize> tpm_failure_response(TpmVersion version) noexcept {
    return tpm_error_response(version, version == TpmVersion::v2_0 ? kTpm2RcFailure : kTpm12Fail);
}

size_t write_failure_response(TpmVersion version, std::span<uint8_t> response) noexcept {
    const auto r = tpm_failure_response(version);
    std::copy(r.begin(), r.end(), response.begin());
    return r.size();
}

size_t reject_bad_command_size(TpmVersion version, std::span<const uint8_t> command, size_t buffer_size,
                               std::span<uint8_t> response) noexcept {
    if (command.size() >= kTpmHeaderSize && command.size() <= buffer_size) return 0;
    const auto r = tpm_error_response(version, version == TpmVersion::v2_0 ? kTpm2RcCommandSize : kTpm12BadParamSize);
    std::copy(r.begin(), r.end(), response.begin());
    return r.size();
}

}  // namespace minivmm
