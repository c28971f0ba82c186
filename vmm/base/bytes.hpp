// Byte order, in one place: values of 1 to 8 bytes read from and written to byte buffers in
// little-endian (x86 registers, ACPI, fw_cfg selector data, the boot protocol, TCG event logs) or
// big-endian order (TPM commands and responses, the swtpm control channel, fw_cfg DMA descriptors).
// A span longer than 8 bytes uses its first 8 (little-endian) or last 8 (big-endian).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace minivmm {

inline uint64_t load_le(std::span<const uint8_t> data) noexcept {
    uint64_t v = 0;
    for (size_t i = 0; i < data.size() && i < 8; ++i) v |= uint64_t{data[i]} << (8 * i);
    return v;
}

inline void store_le(std::span<uint8_t> data, uint64_t value) noexcept {
    for (size_t i = 0; i < data.size() && i < 8; ++i) data[i] = static_cast<uint8_t>(value >> (8 * i));
}

inline uint64_t load_be(std::span<const uint8_t> data) noexcept {
    uint64_t v = 0;
    for (uint8_t b : data) v = (v << 8) | b;
    return v;
}

inline void store_be(std::span<uint8_t> data, uint64_t value) noexcept {
    for (size_t i = data.size(); i > 0; --i) {
        data[i - 1] = static_cast<uint8_t>(value);
        value >>= 8;
    }
}

// Fixed-width forms for the common TPM and log fields; `at` must leave room (callers check sizes).
inline uint16_t load_be16(std::span<const uint8_t> data, size_t at = 0) noexcept {
    return static_cast<uint16_t>(load_be(data.subspan(at, 2)));
}
inline uint32_t load_be32(std::span<const uint8_t> data, size_t at = 0) noexcept {
    return static_cast<uint32_t>(load_be(data.subspan(at, 4)));
}
inline uint16_t load_le16(std::span<const uint8_t> data, size_t at = 0) noexcept {
    return static_cast<uint16_t>(load_le(data.subspan(at, 2)));
}
inline uint32_t load_le32(std::span<const uint8_t> data, size_t at = 0) noexcept {
    return static_cast<uint32_t>(load_le(data.subspan(at, 4)));
}

// Appends `size` bytes of `value` to a growing buffer.
inline void append_le(std::vector<uint8_t>& out, uint64_t value, size_t size) {
    for (size_t i = 0; i < size; ++i) out.push_back(static_cast<uint8_t>(i < 8 ? value >> (8 * i) : 0));
}
inline void append_be(std::vector<uint8_t>& out, uint64_t value, size_t size) {
    for (size_t i = size; i > 0; --i) out.push_back(static_cast<uint8_t>(i > 8 ? 0 : value >> (8 * (i - 1))));
}

}  // namespace minivmm
