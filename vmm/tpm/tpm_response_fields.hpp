// TpmResponseFields: a bounds-checked reader of the fields of one whole TPM response, all
// big-endian (TPM 2.0 Part 1 §18, TPM 1.2 Part 2), for the EK code (vmm/tpm/ek_manufacture*.cpp).
// Not swtpm::TpmResponseReader, which assembles a response from a socket stream. A field past the
// end throws std::runtime_error "<what>: malformed TPM response".
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>

#include <fmt/core.h>

#include "vmm/base/bytes.hpp"

namespace minivmm {

class TpmResponseFields {
public:
    TpmResponseFields(std::span<const uint8_t> bytes, const char* what) : b_(bytes), what_(what) {}
    uint8_t u8() { return take(1)[0]; }
    uint16_t u16() { return static_cast<uint16_t>(load_be(take(2))); }
    uint32_t u32() { return static_cast<uint32_t>(load_be(take(4))); }
    std::span<const uint8_t> sized() { return take(u16()); }  // a TPM2B
    std::span<const uint8_t> take(size_t n) {
        if (b_.size() - at_ < n) throw std::runtime_error(fmt::format("{}: malformed TPM response", what_));
        auto s = b_.subspan(at_, n);
        at_ += n;
        return s;
    }
    void skip(size_t n) { take(n); }
    size_t offset() const noexcept { return at_; }
    size_t left() const noexcept { return b_.size() - at_; }

private:
    std::span<const uint8_t> b_;
    size_t at_ = 0;
    const char* what_;
};

}  // namespace minivmm
