#include "vmm/tpm/tpm_stir_random.hpp"

#include <sys/random.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "vmm/base/log.hpp"
#include "vmm/tpm/tpm_message.hpp"

namespace minivmm {

std::vector<uint8_t> make_stir_random(TpmVersion version, std::span<const uint8_t> entropy) {
    const std::vector<uint8_t> data(entropy.begin(), entropy.begin() + static_cast<std::ptrdiff_t>(std::min(entropy.size(), kMaxStirBytes)));
    if (version == TpmVersion::v2_0)
        return TpmCommand(kTpm2TagNoSessions, kTpm2CcStirRandom).u16(static_cast<uint16_t>(data.size())).bytes(data).done();
    return TpmCommand(0x00C1, kTpm12OrdStirRandom).u32(static_cast<uint32_t>(data.size())).bytes(data).done();
}

bool stir_random(TpmBackend& tpm, std::span<const uint8_t> entropy) noexcept {
    try {
        const TpmVersion version = tpm.version();
        const std::vector<uint8_t> command = make_stir_random(version, entropy);
        std::vector<uint8_t> response(std::max<size_t>(tpm.buffer_size(), kTpmHeaderSize));
        response.resize(tpm.execute(0, command, response));
        const uint16_t tag = version == TpmVersion::v2_0 ? kTpm2TagNoSessions : kTpm12TagRspCommand;
        if (response.size() < kTpmHeaderSize || tpm_size(response) != response.size() || tpm_tag(response) != tag ||
            tpm_code(response) != 0) {
            log::error("the TPM refused {} (response of {} bytes, return code 0x{:x}): restored TPMs may share random "
                       "numbers", version == TpmVersion::v2_0 ? "TPM2_StirRandom" : "TPM_StirRandom", response.size(),
                       tpm_code(response));
            return false;
        }
        return true;
    } catch (...) {
        log::error("out of memory stirring the TPM's random number generator");
        return false;
    }
}

bool stir_random_from_host(TpmBackend& tpm) noexcept {
    std::array<uint8_t, kHostStirBytes> entropy{};
    size_t have = 0;
    while (have < entropy.size()) {
        ssize_t n = ::getrandom(entropy.data() + have, entropy.size() - have, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            log::error("getrandom failed ({}): the restored TPM's random number generator is not stirred",
                       std::strerror(errno));
            return false;
        }
        have += static_cast<size_t>(n);
    }
    return stir_random(tpm, entropy);
}

}  // namespace minivmm
