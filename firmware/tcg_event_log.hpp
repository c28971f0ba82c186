// The firmware's TPM event log, as SeaBIOS writes it into the area the TPM2/TCPA table points at
// (LASA): reading where its last event ends, and appending events after it.
//   TPM 1.2: TCG_PCClientPCREventStruc entries, SHA-1 only (TCG PC Client Specific Implementation
//            Specification for Conventional BIOS 1.21, §11.1.1).
//   TPM 2.0: crypto-agile: a first SHA-1-format event of type EV_NO_ACTION whose data is the
//            "Spec ID Event03" structure listing every algorithm, then TCG_PCR_EVENT2 entries
//            with one digest per listed algorithm (TCG PC Client Platform Firmware Profile 1.05,
//            §10.2.1 and §10.4.5).
// The unused rest of the area is zero; readers (Linux drivers/char/tpm/eventlog/tpm1.c, tpm2.c)
// stop at an event whose type and data size are 0, so an appended event simply extends the log.
// Pure and noexcept: the log lives in guest memory and is read as untrusted input.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "devices/tpm_types.hpp"

namespace minivmm::tcg_log {

// TPM_ALG_ID values (TCG Algorithm Registry).
inline constexpr uint16_t kAlgSha1 = 0x0004;
inline constexpr uint16_t kAlgSha256 = 0x000B;
inline constexpr uint16_t kAlgSha384 = 0x000C;
inline constexpr uint16_t kAlgSha512 = 0x000D;

// Event types (PC Client PFP §10.4.1).
inline constexpr uint32_t kEvPostCode = 0x01;
inline constexpr uint32_t kEvNoAction = 0x03;
inline constexpr uint32_t kEvSeparator = 0x04;
inline constexpr uint32_t kEvSCrtmVersion = 0x08;
inline constexpr uint32_t kEvPlatformConfigFlags = 0x0A;
inline constexpr uint32_t kEvIpl = 0x0D;  // what GRUB logs for the kernel, initrd and command line

struct Algorithm {
    uint16_t id;
    uint16_t digest_size;
};

struct Layout {
    TpmVersion version = TpmVersion::v2_0;
    std::vector<Algorithm> algorithms;  // TPM 1.2: SHA-1 alone; TPM 2.0: the Spec ID event's list
    size_t end = 0;                     // offset of the first byte after the last event
    unsigned events = 0;                // events found, the Spec ID event included
};

// Walks the log in `area` up to where Linux's reader stops (an event of type 0 with no data, or one
// that is malformed or runs past the area). nullopt when a TPM 2.0 log does not start with a valid
// Spec ID event (each algorithm listed once, digest sizes 1..64).
std::optional<Layout> parse(std::span<const uint8_t> area, TpmVersion version) noexcept;

// Starts a new, empty log in `area`, as SeaBIOS does at TPM start-up (src/tcgbios.c tpm20_startup ->
// tpm20_write_EfiSpecIdEventStruct): zeroes the whole area, then TPM 2.0: writes the Spec ID event
// listing `algorithms` in the given order (the TPM's active PCR banks); TPM 1.2: writes nothing (a
// 1.2 log has no header), and `algorithms` must be exactly {SHA-1, 20}. Returns what parse() returns
// for the result. nullopt, with the area untouched, when `algorithms` is empty, lists an algorithm
// twice, has a digest size 0 or over 64, has more than 16 entries, or the header does not fit.
std::optional<Layout> start(std::span<uint8_t> area, TpmVersion version, std::span<const Algorithm> algorithms) noexcept;

struct Digest {
    uint16_t algorithm;
    std::vector<uint8_t> value;
};

// Appends one event at layout.end and advances it. TPM 2.0: `digests` must hold one digest of the
// right size for every algorithm in layout.algorithms (in any order); TPM 1.2: a SHA-1 digest.
// False, with the area unchanged, when a digest is missing or the event does not fit.
bool append(std::span<uint8_t> area, Layout& layout, uint32_t pcr, uint32_t type, std::span<const Digest> digests,
            std::span<const uint8_t> data) noexcept;

}  // namespace minivmm::tcg_log
