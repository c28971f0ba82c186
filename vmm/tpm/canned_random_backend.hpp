// minivmm-testhooks only (vmm/main.cpp includes it under MINIVMM_TEST_HOOKS; the production
// binary never contains it): a TpmBackend that answers TPM2_GetRandom from memory, at once, with a
// canned response (TPM 2.0 Part 3 §16.1: TPM_ST_NO_SESSIONS, TPM_RC_SUCCESS, a TPM2B_DIGEST of the
// bytes asked for, a counter pattern, not random), and hands every other command to the real TPM
// behind it, so SeaBIOS's start-up, measurements and event log stay real. With it, a GetRandom
// benchmark measures the interface alone: the exits and the VMM's path, no TPM work (the floor;
// scripts/bench-tpm --floor). MINIVMM_TEST_CANNED_GETRANDOM=1 turns it on.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>

#include "vmm/base/bytes.hpp"
#include "vmm/tpm/forwarding_backend.hpp"

namespace minivmm {

class CannedRandomBackend final : public ForwardingBackend {
public:
    using ForwardingBackend::ForwardingBackend;

    size_t execute(uint8_t locality, std::span<const uint8_t> command, std::span<uint8_t> response) noexcept override {
        // TPM2_GetRandom: tag, commandSize 12, TPM_CC_GetRandom 0x17B, UINT16 bytesRequested.
        if (version() != TpmVersion::v2_0 || command.size() != 12 || load_be32(command, 2) != 12 ||
            load_be32(command, 6) != 0x17B)
            return ForwardingBackend::execute(locality, command, response);
        const size_t n = std::min<size_t>(load_be16(command, 10), 32);  // at most a SHA-256 digest
        if (response.size() < 12 + n) return ForwardingBackend::execute(locality, command, response);
        store_be(response.subspan(0, 2), 0x8001);
        store_be(response.subspan(2, 4), 12 + n);
        store_be(response.subspan(6, 4), 0);
        store_be(response.subspan(10, 2), n);
        for (size_t i = 0; i < n; ++i) response[12 + i] = static_cast<uint8_t>(++counter_);
        return 12 + n;
    }

private:
    uint8_t counter_ = 0;
};

}  // namespace minivmm
