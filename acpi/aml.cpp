#include "acpi/aml.hpp"

#include "vmm/base/bytes.hpp"

#include <stdexcept>
#include <string>

namespace minivmm::aml {

namespace {

// AML opcodes (ACPI 6.5 §20.3).
constexpr uint8_t kZeroOp = 0x00, kOneOp = 0x01, kOnesOp = 0xFF;
constexpr uint8_t kBytePrefix = 0x0A, kWordPrefix = 0x0B, kDWordPrefix = 0x0C, kQWordPrefix = 0x0E;
constexpr uint8_t kStringPrefix = 0x0D;
constexpr uint8_t kNameOp = 0x08, kScopeOp = 0x10, kBufferOp = 0x11, kPackageOp = 0x12, kMethodOp = 0x14;
constexpr uint8_t kExtOpPrefix = 0x5B, kDeviceOp = 0x82, kReturnOp = 0xA4;
constexpr uint8_t kRootChar = 0x5C, kParentPrefix = 0x5E, kDualNamePrefix = 0x2E, kMultiNamePrefix = 0x2F;
constexpr uint8_t kNullName = 0x00;

// Resource descriptor tags (§6.4.2, §6.4.3).
constexpr uint8_t kIrqNoFlagsTag = 0x22, kIoTag = 0x47, kEndTag = 0x79, kExtendedIrqTag = 0x89;
constexpr uint8_t kMemory32FixedTag = 0x86, kDWordAddressTag = 0x87, kWordAddressTag = 0x88, kQWordAddressTag = 0x8A;
// Address space resource types and general flags (§6.4.3.5.1 Table 6.50).
constexpr uint8_t kMemoryRange = 0, kIoRange = 1, kBusNumberRange = 2;
constexpr uint8_t kMinFixed = 1 << 2, kMaxFixed = 1 << 3;  // producer (bit 0 = 0), PosDecode (bit 1 = 0)
constexpr uint8_t kIoEntireRange = 3;                      // I/O type-specific flags (Table 6.51)

constexpr size_t kMaxPkgLength = (size_t{1} << 28) - 1;

Bytes with_pkg_length(std::initializer_list<uint8_t> opcode, const Bytes& body) {
    Bytes out(opcode);
    append(out, pkg_length(body.size()));
    append(out, body);
    return out;
}

bool is_lead_char(char c) { return (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_lead_char(c) || (c >= '0' && c <= '9'); }

// Word/DWord/QWord Address Space Descriptor (§6.4.3.5.1-3): the fields after the flags are
// granularity, min, max, translation offset, length, each `width` bytes.
Bytes address_space(uint8_t tag, unsigned width, uint8_t type, uint8_t type_flags, uint64_t min, uint64_t max) {
    if (min > max) throw std::invalid_argument("AML: address range minimum above maximum");
    Bytes out{tag};
    append_le(out, 3 + 5 * width, 2);  // resource type, general flags, type-specific flags + 5 values
    out.push_back(type);
    out.push_back(kMinFixed | kMaxFixed);
    out.push_back(type_flags);
    append_le(out, 0, width);  // granularity
    append_le(out, min, width);
    append_le(out, max, width);
    append_le(out, 0, width);  // translation offset
    append_le(out, max - min + 1, width);
    return out;
}

}  // namespace

Bytes pkg_length(size_t body_size) {
    // §20.2.4: one byte holds 0..63; otherwise bits 7:6 of the lead byte give the number of
    // following bytes (1..3), its bits 3:0 the low nibble, the following bytes the rest.
    for (unsigned extra = 0; extra <= 3; ++extra) {
        const size_t total = body_size + 1 + extra;
        const size_t limit = extra == 0 ? 0x3F : (size_t{1} << (4 + 8 * extra)) - 1;
        if (total > limit) continue;
        if (total > kMaxPkgLength) break;
        if (extra == 0) return {static_cast<uint8_t>(total)};
        Bytes out{static_cast<uint8_t>((extra << 6) | (total & 0x0F))};
        append_le(out, total >> 4, extra);
        return out;
    }
    throw std::invalid_argument("AML: package too large for a PkgLength (max 2^28 - 1 bytes)");
}

std::optional<DecodedPkgLength> decode_pkg_length(const uint8_t* data, size_t size) noexcept {
    if (data == nullptr || size == 0) return std::nullopt;
    const unsigned extra = data[0] >> 6;
    if (extra == 0) return DecodedPkgLength{size_t{data[0]} & 0x3F, 1};
    if ((data[0] & 0x30) != 0 || size < 1 + size_t{extra}) return std::nullopt;
    size_t length = data[0] & 0x0F;
    for (unsigned i = 0; i < extra; ++i) length |= size_t{data[1 + i]} << (4 + 8 * i);
    return DecodedPkgLength{length, 1 + size_t{extra}};
}

Bytes name_seg(std::string_view seg) {
    if (seg.empty() || seg.size() > 4 || !is_lead_char(seg[0]))
        throw std::invalid_argument("AML: bad name segment '" + std::string(seg) + "'");
    Bytes out;
    for (char c : seg) {
        if (!is_name_char(c)) throw std::invalid_argument("AML: bad name segment '" + std::string(seg) + "'");
        out.push_back(static_cast<uint8_t>(c));
    }
    out.resize(4, '_');
    return out;
}

Bytes name_string(std::string_view path) {
    // §20.2.2: NameString := <RootChar NamePath> | <PrefixPath NamePath>
    Bytes out;
    if (!path.empty() && path[0] == '\\') {
        out.push_back(kRootChar);
        path.remove_prefix(1);
    } else {
        while (!path.empty() && path[0] == '^') {
            out.push_back(kParentPrefix);
            path.remove_prefix(1);
        }
    }
    if (path.empty()) {
        if (out.empty()) throw std::invalid_argument("AML: empty name");
        out.push_back(kNullName);
        return out;
    }
    std::vector<Bytes> segs;
    while (true) {
        const size_t dot = path.find('.');
        segs.push_back(name_seg(path.substr(0, dot)));
        if (dot == std::string_view::npos) break;
        path.remove_prefix(dot + 1);
    }
    if (segs.size() > 255) throw std::invalid_argument("AML: name path has too many segments");
    if (segs.size() == 2) out.push_back(kDualNamePrefix);
    if (segs.size() > 2) {
        out.push_back(kMultiNamePrefix);
        out.push_back(static_cast<uint8_t>(segs.size()));
    }
    for (const Bytes& s : segs) append(out, s);
    return out;
}

Bytes integer(uint64_t value) {
    if (value == 0) return {kZeroOp};
    if (value == 1) return {kOneOp};
    if (value == ~uint64_t{0}) return {kOnesOp};  // 64-bit Ones: definition blocks are revision 2
    Bytes out;
    if (value <= 0xFF) {
        out.push_back(kBytePrefix);
        append_le(out, value, 1);
    } else if (value <= 0xFFFF) {
        out.push_back(kWordPrefix);
        append_le(out, value, 2);
    } else if (value <= 0xFFFF'FFFF) {
        out.push_back(kDWordPrefix);
        append_le(out, value, 4);
    } else {
        out.push_back(kQWordPrefix);
        append_le(out, value, 8);
    }
    return out;
}

uint32_t eisa_id_value(std::string_view id) {
    // Compressed EISA id (ACPI 6.5 §6.1.5 _HID): 3 letters packed 5 bits each, then the product
    // number as 4 hex digits, stored big-endian in the 4 bytes of the DWord.
    auto bad = [&] { return std::invalid_argument("AML: bad EISA id '" + std::string(id) + "'"); };
    if (id.size() != 7) throw bad();
    uint32_t letters = 0;
    for (size_t i = 0; i < 3; ++i) {
        if (id[i] < 'A' || id[i] > 'Z') throw bad();
        letters = (letters << 5) | static_cast<uint32_t>(id[i] - 0x40);
    }
    uint32_t product = 0;
    for (size_t i = 3; i < 7; ++i) {
        const char c = id[i];
        uint32_t digit;
        if (c >= '0' && c <= '9') digit = static_cast<uint32_t>(c - '0');
        else if (c >= 'A' && c <= 'F') digit = static_cast<uint32_t>(c - 'A' + 10);
        else throw bad();
        product = (product << 4) | digit;
    }
    const uint32_t big_endian = (letters << 16) | product;
    return ((big_endian >> 24) & 0xFF) | ((big_endian >> 8) & 0xFF00) | ((big_endian << 8) & 0xFF0000) |
           ((big_endian << 24) & 0xFF000000);
}

Bytes eisa_id(std::string_view id) {
    Bytes out{kDWordPrefix};
    append_le(out, eisa_id_value(id), 4);
    return out;
}

Bytes string(std::string_view text) {
    Bytes out{kStringPrefix};
    for (char c : text) {
        const auto b = static_cast<uint8_t>(c);
        if (b == 0 || b > 0x7F) throw std::invalid_argument("AML: string must be ASCII without NUL");
        out.push_back(b);
    }
    out.push_back(0);
    return out;
}

Bytes buffer(const Bytes& data) {
    Bytes body = integer(data.size());
    append(body, data);
    return with_pkg_length({kBufferOp}, body);
}

Bytes package(const std::vector<Bytes>& elements) {
    // §20.2.5.4 DefPackage: NumElements is a ByteData.
    if (elements.size() > 255) throw std::invalid_argument("AML: Package with more than 255 elements");
    Bytes body{static_cast<uint8_t>(elements.size())};
    for (const Bytes& e : elements) append(body, e);
    return with_pkg_length({kPackageOp}, body);
}

Bytes name(std::string_view path, const Bytes& value) {
    Bytes out{kNameOp};
    append(out, name_string(path));
    append(out, value);
    return out;
}

Bytes scope(std::string_view path, const std::vector<Bytes>& terms) {
    Bytes body = name_string(path);
    for (const Bytes& t : terms) append(body, t);
    return with_pkg_length({kScopeOp}, body);
}

Bytes device(std::string_view path, const std::vector<Bytes>& terms) {
    Bytes body = name_string(path);
    for (const Bytes& t : terms) append(body, t);
    return with_pkg_length({kExtOpPrefix, kDeviceOp}, body);
}

Bytes method(std::string_view path, unsigned args, bool serialized, const std::vector<Bytes>& terms) {
    if (args > 7) throw std::invalid_argument("AML: a method takes at most 7 arguments");
    Bytes body = name_string(path);
    body.push_back(static_cast<uint8_t>(args | (serialized ? 0x08 : 0x00)));  // MethodFlags, SyncLevel 0
    for (const Bytes& t : terms) append(body, t);
    return with_pkg_length({kMethodOp}, body);
}

Bytes return_value(const Bytes& value) {
    Bytes out{kReturnOp};
    append(out, value);
    return out;
}

Bytes io(Decode decode, uint16_t min, uint16_t max, uint8_t align, uint8_t length) {
    if (min > max) throw std::invalid_argument("AML: IO minimum base above maximum base");
    Bytes out{kIoTag, static_cast<uint8_t>(decode)};
    append_le(out, min, 2);
    append_le(out, max, 2);
    out.push_back(align);
    out.push_back(length);
    return out;
}

Bytes irq_no_flags(const std::vector<uint8_t>& irqs) {
    if (irqs.empty()) throw std::invalid_argument("AML: IRQNoFlags needs at least one IRQ");
    uint16_t mask = 0;
    for (uint8_t irq : irqs) {
        if (irq > 15) throw std::invalid_argument("AML: IRQNoFlags takes IRQs 0..15");
        mask = static_cast<uint16_t>(mask | (1u << irq));
    }
    Bytes out{kIrqNoFlagsTag};
    append_le(out, mask, 2);
    return out;
}

// Extended Interrupt Descriptor (§6.4.3.6): tag 0x89, length, flags (bit 0 consumer, _HE bit 1
// (1 = edge), _LL bit 2 (1 = active low), _SHR bit 3), the count, then each interrupt as a DWord.
Bytes interrupt(Trigger trigger, Polarity polarity, Sharing sharing, const std::vector<uint32_t>& gsis) {
    if (gsis.empty() || gsis.size() > 255) throw std::invalid_argument("AML: Interrupt takes 1..255 interrupts");
    Bytes out{kExtendedIrqTag};
    append_le(out, 2 + 4 * gsis.size(), 2);
    out.push_back(static_cast<uint8_t>(0x01 | (trigger == Trigger::edge ? 0x02 : 0x00) |
                                       (polarity == Polarity::active_low ? 0x04 : 0x00) |
                                       (sharing == Sharing::shared ? 0x08 : 0x00)));
    out.push_back(static_cast<uint8_t>(gsis.size()));
    for (uint32_t gsi : gsis) append_le(out, gsi, 4);
    return out;
}

Bytes memory32_fixed(Access access, uint32_t base, uint32_t length) {
    Bytes out{kMemory32FixedTag, 0x09, 0x00, static_cast<uint8_t>(access)};
    append_le(out, base, 4);
    append_le(out, length, 4);
    return out;
}

Bytes word_bus_number(uint16_t min, uint16_t max) {
    return address_space(kWordAddressTag, 2, kBusNumberRange, 0, min, max);
}

Bytes word_io(uint16_t min, uint16_t max) {
    return address_space(kWordAddressTag, 2, kIoRange, kIoEntireRange, min, max);
}

Bytes dword_memory(Cache cache, Access access, uint32_t min, uint32_t max) {
    // Memory type-specific flags (Table 6.50): bit 0 read/write, bits 2:1 cacheability;
    // AddressRangeMemory and TypeStatic are zero.
    const auto flags = static_cast<uint8_t>(static_cast<uint8_t>(access) | (static_cast<uint8_t>(cache) << 1));
    return address_space(kDWordAddressTag, 4, kMemoryRange, flags, min, max);
}

Bytes qword_memory(Cache cache, Access access, uint64_t min, uint64_t max) {
    if (min == 0 && max == ~uint64_t{0}) throw std::invalid_argument("AML: QWordMemory length overflows");
    const auto flags = static_cast<uint8_t>(static_cast<uint8_t>(access) | (static_cast<uint8_t>(cache) << 1));
    return address_space(kQWordAddressTag, 8, kMemoryRange, flags, min, max);
}

Bytes resource_template(const std::vector<Bytes>& descriptors) {
    Bytes data;
    for (const Bytes& d : descriptors) append(data, d);
    data.push_back(kEndTag);
    data.push_back(0x00);  // checksum 0: "treated as if the checksum operation succeeded"
    return buffer(data);
}

}  // namespace minivmm::aml
