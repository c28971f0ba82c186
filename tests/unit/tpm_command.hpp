// Building TPM commands and reading responses in tests: the big-endian wire format with its
// size field filled in, and the empty-password session most TPM 2.0 commands need.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace minivmm::testing {

// A TPM command in the big-endian wire format (TPM 2.0 Part 1 §18.2, TPM 1.2 Part 3 §1).
class Cmd {
public:
    Cmd(uint16_t tag, uint32_t code) {
        u16(tag);
        u32(0);
        u32(code);
    }
    Cmd& u8(uint8_t v) {
        b_.push_back(v);
        return *this;
    }
    Cmd& u16(uint16_t v) { return u8(static_cast<uint8_t>(v >> 8)).u8(static_cast<uint8_t>(v)); }
    Cmd& u32(uint32_t v) { return u16(static_cast<uint16_t>(v >> 16)).u16(static_cast<uint16_t>(v)); }
    Cmd& bytes(const std::vector<uint8_t>& v) {
        b_.insert(b_.end(), v.begin(), v.end());
        return *this;
    }
    // TPM 2.0 authorization area with one empty-password session (TPM_RS_PW, Part 1 §19.8.4).
    Cmd& password_session() { return u32(9).u32(0x40000009).u16(0).u8(0).u16(0); }
    std::vector<uint8_t> done() const {
        auto v = b_;
        uint32_t n = static_cast<uint32_t>(v.size());
        for (int i = 0; i < 4; ++i) v[2 + i] = static_cast<uint8_t>(n >> (24 - 8 * i));
        return v;
    }

private:
    std::vector<uint8_t> b_;
};

inline uint32_t be32(const std::vector<uint8_t>& r, size_t at) {
    return uint32_t{r.at(at)} << 24 | uint32_t{r.at(at + 1)} << 16 | uint32_t{r.at(at + 2)} << 8 | r.at(at + 3);
}
inline uint16_t be16(const std::vector<uint8_t>& r, size_t at) { return static_cast<uint16_t>(r.at(at) << 8 | r.at(at + 1)); }

}  // namespace minivmm::testing
