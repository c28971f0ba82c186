// Building a TPM command in its big-endian wire format (TPM 2.0 Part 1 §18.2, TPM 1.2 Part 3 §1):
// tag, size (filled in by done()), command code, then the parameters. Shared by the PPI actions
// (vmm/tpm/tpm_ppi_actions.cpp) and the tests that talk to real TPMs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace minivmm {

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
