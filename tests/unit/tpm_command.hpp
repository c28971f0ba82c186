// TPM commands (vmm/tpm/tpm_command.hpp) and big-endian response fields in tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "vmm/tpm/tpm_command.hpp"

namespace minivmm::testing {

using Cmd = minivmm::TpmCommand;

inline uint32_t be32(const std::vector<uint8_t>& r, size_t at) {
    return uint32_t{r.at(at)} << 24 | uint32_t{r.at(at + 1)} << 16 | uint32_t{r.at(at + 2)} << 8 | r.at(at + 3);
}
inline uint16_t be16(const std::vector<uint8_t>& r, size_t at) { return static_cast<uint16_t>(r.at(at) << 8 | r.at(at + 1)); }

}  // namespace minivmm::testing
