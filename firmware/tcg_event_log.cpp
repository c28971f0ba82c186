#include "firmware/tcg_event_log.hpp"

#include <algorithm>
#include <cstring>

#include "vmm/base/bytes.hpp"

namespace minivmm::tcg_log {

namespace {

// TCG_PCClientPCREventStruc: pcrIndex, eventType, digest[20], eventDataSize, then the data.
constexpr size_t kSha1EventHeader = 32;
constexpr size_t kSha1Digest = 20;
// Spec ID Event03 (PFP §10.4.5.1): signature[16], platformClass, specVersionMinor/Major,
// specErrata, uintnSize, numberOfAlgorithms, then {algorithmId, digestSize} pairs.
constexpr char kSpecIdSignature[16] = "Spec ID Event03";
constexpr size_t kSpecIdAlgCount = 24;
constexpr uint32_t kMaxAlgorithms = 16;  // the registry has fewer hash algorithms
constexpr uint16_t kMaxDigestSize = 64;  // SHA-512, the largest (TCG Algorithm Registry)

// True when [at, at + n) lies inside a span of `size` bytes (no overflow).
bool fits(size_t size, size_t at, size_t n) { return at <= size && n <= size - at; }

// Both walks stop where Linux's readers stop (drivers/char/tpm/eventlog/tpm1.c
// tpm1_bios_measurements_start, tpm2.c __calc_tpm2_event_size): at an event of type 0 with no data
// (the zeroed rest of the area), or one that is malformed or runs past the area. An event appended
// there is the next one Linux reads.
std::optional<Layout> parse_sha1_log(std::span<const uint8_t> area) {
    Layout layout{TpmVersion::v1_2, {{kAlgSha1, kSha1Digest}}, 0, 0};
    size_t at = 0;
    while (fits(area.size(), at, kSha1EventHeader)) {
        const uint32_t type = load_le32(area, at + 4), size = load_le32(area, at + 28);
        if ((type == 0 && size == 0) || !fits(area.size(), at + kSha1EventHeader, size)) break;
        at += kSha1EventHeader + size;
        ++layout.events;
    }
    layout.end = at;
    return layout;
}

// The size of the TCG_PCR_EVENT2 at `at`, or 0 where Linux stops: a digest count other than the
// header's, an algorithm it does not list, type 0 with no data, or past the area.
size_t agile_event_size(std::span<const uint8_t> area, size_t at, const std::vector<Algorithm>& algorithms) {
    if (!fits(area.size(), at, 12) || load_le32(area, at + 8) != algorithms.size()) return 0;
    size_t pos = at + 12;
    for (size_t d = 0; d < algorithms.size(); ++d) {
        if (!fits(area.size(), pos, 2)) return 0;
        const uint16_t alg = load_le16(area, pos);
        auto known = std::find_if(algorithms.begin(), algorithms.end(), [alg](const Algorithm& a) { return a.id == alg; });
        if (known == algorithms.end()) return 0;
        pos += 2 + known->digest_size;
    }
    if (!fits(area.size(), pos, 4)) return 0;
    const uint32_t size = load_le32(area, pos);
    if ((load_le32(area, at + 4) == 0 && size == 0) || !fits(area.size(), pos + 4, size)) return 0;
    return pos + 4 + size - at;
}

std::optional<Layout> parse_agile_log(std::span<const uint8_t> area) {
    Layout layout;
    // The header event: PCR 0, EV_NO_ACTION, a zero SHA-1 digest, the Spec ID Event03 data.
    if (!fits(area.size(), 0, kSha1EventHeader)) return std::nullopt;
    const uint32_t first_size = load_le32(area, 28);
    if (load_le32(area, 0) != 0 || load_le32(area, 4) != kEvNoAction || !fits(area.size(), kSha1EventHeader, first_size) ||
        first_size < kSpecIdAlgCount + 4 ||
        std::any_of(area.begin() + 8, area.begin() + 28, [](uint8_t b) { return b != 0; }))
        return std::nullopt;
    const auto spec = area.subspan(kSha1EventHeader, first_size);
    if (std::memcmp(spec.data(), kSpecIdSignature, sizeof kSpecIdSignature) != 0) return std::nullopt;
    const uint32_t count = load_le32(spec, kSpecIdAlgCount);
    if (count == 0 || count > kMaxAlgorithms || !fits(spec.size(), kSpecIdAlgCount + 4, size_t{count} * 4))
        return std::nullopt;
    for (uint32_t i = 0; i < count; ++i) {
        const size_t at = kSpecIdAlgCount + 4 + 4 * i;
        const Algorithm alg{load_le16(spec, at), load_le16(spec, at + 2)};
        // Each algorithm once, with a digest size a hash can have: otherwise events are ambiguous.
        if (alg.digest_size == 0 || alg.digest_size > kMaxDigestSize) return std::nullopt;
        for (const Algorithm& seen : layout.algorithms)
            if (seen.id == alg.id) return std::nullopt;
        layout.algorithms.push_back(alg);
    }
    size_t at = kSha1EventHeader + first_size;
    layout.events = 1;
    while (const size_t size = agile_event_size(area, at, layout.algorithms)) {
        at += size;
        ++layout.events;
    }
    layout.end = at;
    return layout;
}

// A list a Spec ID event can carry: 1..16 algorithms, each once, digest sizes 1..64.
bool valid_algorithms(std::span<const Algorithm> algorithms) {
    if (algorithms.empty() || algorithms.size() > kMaxAlgorithms) return false;
    for (size_t i = 0; i < algorithms.size(); ++i) {
        if (algorithms[i].digest_size == 0 || algorithms[i].digest_size > kMaxDigestSize) return false;
        for (size_t j = 0; j < i; ++j)
            if (algorithms[j].id == algorithms[i].id) return false;
    }
    return true;
}

// The header event of a crypto-agile log: TCG_PCClientPCREventStruc (PCR 0, EV_NO_ACTION, a zero
// SHA-1 digest) whose data is TCG_EfiSpecIdEventStruct (PFP §10.4.5.1), with the field values
// SeaBIOS writes (src/tcgbios.c tpm20_write_EfiSpecIdEventStruct): platformClass 0
// (TPM_TCPA_ACPI_CLASS_CLIENT), specVersionMinor 0, specVersionMajor 2, specErrata 2, uintnSize 2
// (UINT64), the algorithms, vendorInfoSize 0.
std::vector<uint8_t> spec_id_event(std::span<const Algorithm> algorithms) {
    std::vector<uint8_t> spec(kSpecIdSignature, kSpecIdSignature + sizeof kSpecIdSignature);
    append_le(spec, 0, 4);                 // platformClass
    spec.insert(spec.end(), {0, 2, 2, 2});  // specVersionMinor, specVersionMajor, specErrata, uintnSize
    append_le(spec, algorithms.size(), 4);  // numberOfAlgorithms
    for (const Algorithm& alg : algorithms) {
        append_le(spec, alg.id, 2);
        append_le(spec, alg.digest_size, 2);
    }
    spec.push_back(0);  // vendorInfoSize
    std::vector<uint8_t> event;
    append_le(event, 0, 4);            // pcrIndex
    append_le(event, kEvNoAction, 4);  // eventType
    event.insert(event.end(), kSha1Digest, 0);
    append_le(event, spec.size(), 4);
    event.insert(event.end(), spec.begin(), spec.end());
    return event;
}

const Digest* find(std::span<const Digest> digests, const Algorithm& alg) {
    for (const Digest& d : digests)
        if (d.algorithm == alg.id && d.value.size() == alg.digest_size) return &d;
    return nullptr;
}

}  // namespace

std::optional<Layout> parse(std::span<const uint8_t> area, TpmVersion version) noexcept {
    try {
        return version == TpmVersion::v2_0 ? parse_agile_log(area) : parse_sha1_log(area);
    } catch (...) {
        return std::nullopt;  // out of memory for the algorithm list
    }
}

std::optional<Layout> start(std::span<uint8_t> area, TpmVersion version, std::span<const Algorithm> algorithms) noexcept {
    try {
        if (!valid_algorithms(algorithms)) return std::nullopt;
        Layout layout{version, {algorithms.begin(), algorithms.end()}, 0, 0};
        std::vector<uint8_t> header;
        if (version == TpmVersion::v2_0) {
            header = spec_id_event(algorithms);
            layout.events = 1;
        } else if (algorithms.size() != 1 || algorithms[0].id != kAlgSha1 || algorithms[0].digest_size != kSha1Digest) {
            return std::nullopt;  // a 1.2 log is SHA-1 only
        }
        if (header.size() > area.size()) return std::nullopt;
        std::fill(area.begin(), area.end(), uint8_t{0});
        std::copy(header.begin(), header.end(), area.begin());
        layout.end = header.size();
        return layout;
    } catch (...) {
        return std::nullopt;  // out of memory, before the area was touched
    }
}

bool append(std::span<uint8_t> area, Layout& layout, uint32_t pcr, uint32_t type, std::span<const Digest> digests,
            std::span<const uint8_t> data) noexcept {
    try {
        std::vector<uint8_t> event;
        append_le(event, pcr, 4);
        append_le(event, type, 4);
        if (layout.version == TpmVersion::v2_0) append_le(event, layout.algorithms.size(), 4);
        for (const Algorithm& alg : layout.algorithms) {
            const Digest* d = find(digests, alg);
            if (!d) return false;
            if (layout.version == TpmVersion::v2_0) {
                event.push_back(static_cast<uint8_t>(alg.id));
                event.push_back(static_cast<uint8_t>(alg.id >> 8));
            }
            event.insert(event.end(), d->value.begin(), d->value.end());
        }
        append_le(event, data.size(), 4);
        event.insert(event.end(), data.begin(), data.end());
        if (!fits(area.size(), layout.end, event.size())) return false;
        std::memcpy(area.data() + layout.end, event.data(), event.size());
        layout.end += event.size();
        ++layout.events;
        return true;
    } catch (...) {
        return false;
    }
}

}  // namespace minivmm::tcg_log
