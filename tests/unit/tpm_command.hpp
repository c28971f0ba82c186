// TPM commands (vmm/tpm/tpm_command.hpp) and big-endian response fields in tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "vmm/tpm/tpm_backend.hpp"
#include "vmm/tpm/tpm_message.hpp"
#include "vmm/base/bytes.hpp"

namespace minivmm::testing {

using Cmd = minivmm::TpmCommand;

// Bounds-checked (at() throws): a response shorter than the field fails the test, not the process.
inline uint32_t be32(const std::vector<uint8_t>& r, size_t at) { return (void)r.at(at + 3), load_be32(r, at); }
inline uint16_t be16(const std::vector<uint8_t>& r, size_t at) { return (void)r.at(at + 1), load_be16(r, at); }

// Sends one command to a backend (locality 0) and returns its whole response.
inline std::vector<uint8_t> run(TpmBackend& tpm, const std::vector<uint8_t>& command) {
    std::vector<uint8_t> response(tpm.buffer_size());
    response.resize(tpm.execute(0, command, response));
    return response;
}

}  // namespace minivmm::testing
