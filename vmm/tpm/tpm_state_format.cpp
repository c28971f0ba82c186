// The TPM state file format (vmm/tpm/tpm_state_dir.hpp): header, CRC-32, encode and decode.
#include <algorithm>
#include <array>

#include "vmm/base/bytes.hpp"
#include "vmm/tpm/tpm_state_dir.hpp"

namespace minivmm {

namespace tpmstate {

namespace {

constexpr std::array<uint8_t, 8> kMagic = {'M', 'V', 'M', 'T', 'P', 'M', 'S', 'T'};

constexpr std::array<uint32_t, 256> make_crc_table() {
    std::array<uint32_t, 256> table{};
    for (uint32_t i = 0; i < 256; ++i) {
        uint32_t c = i;
        for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    return table;
}
constexpr auto kCrcTable = make_crc_table();

uint32_t version_code(TpmVersion v) noexcept { return v == TpmVersion::v2_0 ? 20 : 12; }


}  // namespace

// CRC-32 as in IEEE 802.3 / zlib (reflected polynomial 0xEDB88320, pre- and post-inverted).
uint32_t crc32(std::span<const uint8_t> bytes, uint32_t crc) noexcept {
    crc = ~crc;
    for (uint8_t b : bytes) crc = kCrcTable[(crc ^ b) & 0xff] ^ (crc >> 8);
    return ~crc;
}

std::vector<uint8_t> encode_file(TpmVersion version, std::span<const uint8_t> payload) {
    std::vector<uint8_t> file(kHeaderSize + payload.size());
    std::copy(kMagic.begin(), kMagic.end(), file.begin());
    store_le(std::span(file).subspan(8, 4), kFormatVersion);
    store_le(std::span(file).subspan(12, 4), version_code(version));
    store_le(std::span(file).subspan(16, 4), static_cast<uint32_t>(payload.size()));
    std::copy(payload.begin(), payload.end(), file.begin() + kHeaderSize);
    uint32_t crc = crc32(std::span<const uint8_t>(file.data(), 20));
    store_le(std::span(file).subspan(20, 4), crc32(payload, crc));
    return file;
}

Decoded decode_file(std::span<const uint8_t> file, TpmVersion expected) noexcept {
    Decoded d;
    if (file.size() < kHeaderSize) {
        d.status = file.size() >= kMagic.size() && std::equal(kMagic.begin(), kMagic.end(), file.begin())
                       ? DecodeStatus::truncated
                       : DecodeStatus::bad_magic;
        return d;
    }
    if (!std::equal(kMagic.begin(), kMagic.end(), file.begin())) return d;
    if (load_le32(file, 8) != kFormatVersion) {
        d.status = DecodeStatus::unsupported_format;
        return d;
    }
    uint32_t length = load_le32(file, 16);
    if (file.size() - kHeaderSize < length) {
        d.status = DecodeStatus::truncated;
        return d;
    }
    if (file.size() - kHeaderSize > length) {
        d.status = DecodeStatus::too_long;
        return d;
    }
    auto payload = file.subspan(kHeaderSize, length);
    if (crc32(payload, crc32(file.first(20))) != load_le32(file, 20)) {
        d.status = DecodeStatus::checksum_mismatch;
        return d;
    }
    uint32_t code = load_le32(file, 12);
    if (code != 12 && code != 20) {
        d.status = DecodeStatus::unsupported_format;
        return d;
    }
    d.version = code == 20 ? TpmVersion::v2_0 : TpmVersion::v1_2;
    if (d.version != expected) {
        d.status = DecodeStatus::wrong_version;
        return d;
    }
    d.status = DecodeStatus::ok;
    d.payload = payload;
    return d;
}

std::string_view version_text(TpmVersion version) noexcept { return version == TpmVersion::v2_0 ? "2.0" : "1.2"; }

}  // namespace tpmstate

}  // namespace minivmm
