#include "acpi/aml_code.hpp"

#include <stdexcept>
#include <string>

namespace minivmm::aml {

namespace {

// AML opcodes (ACPI 6.5 §20.3).
constexpr uint8_t kLocal0Op = 0x60, kArg0Op = 0x68, kStoreOp = 0x70, kDerefOfOp = 0x83, kSizeOfOp = 0x87;
constexpr uint8_t kIndexOp = 0x88, kObjectTypeOp = 0x8E, kLEqualOp = 0x93, kLGreaterOp = 0x94, kIfOp = 0xA0;
constexpr uint8_t kToIntegerOp = 0x99;
constexpr uint8_t kExtOpPrefix = 0x5B, kOpRegionOp = 0x80, kFieldOp = 0x81;
constexpr uint8_t kNullName = 0x00;
constexpr uint8_t kSystemMemory = 0x00;
// FieldFlags (§20.2.5.2): AccessType bits 3:0 (3 = DWordAcc), LockRule bit 4 (0 = NoLock),
// UpdateRule bits 6:5 (0 = Preserve).
constexpr uint8_t kDWordAccNoLockPreserve = 0x03;

Bytes op2(uint8_t op, const Bytes& a, const Bytes& b) {
    Bytes out{op};
    append(out, a);
    append(out, b);
    return out;
}

Bytes op1(uint8_t op, const Bytes& a) {
    Bytes out{op};
    append(out, a);
    return out;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

Bytes arg(unsigned n) {
    if (n > 6) throw std::invalid_argument("AML: Arg" + std::to_string(n) + " does not exist (Arg0..Arg6)");
    return {static_cast<uint8_t>(kArg0Op + n)};
}

Bytes local(unsigned n) {
    if (n > 7) throw std::invalid_argument("AML: Local" + std::to_string(n) + " does not exist (Local0..Local7)");
    return {static_cast<uint8_t>(kLocal0Op + n)};
}

Bytes if_(const Bytes& predicate, const std::vector<Bytes>& terms) {
    Bytes body = predicate;
    for (const Bytes& t : terms) append(body, t);
    Bytes out{kIfOp};
    append(out, pkg_length(body.size()));
    append(out, body);
    return out;
}

Bytes store(const Bytes& source, const Bytes& target) { return op2(kStoreOp, source, target); }
Bytes lequal(const Bytes& a, const Bytes& b) { return op2(kLEqualOp, a, b); }
Bytes lgreater(const Bytes& a, const Bytes& b) { return op2(kLGreaterOp, a, b); }
Bytes size_of(const Bytes& object) { return op1(kSizeOfOp, object); }
Bytes object_type(const Bytes& object) { return op1(kObjectTypeOp, object); }
Bytes deref_of(const Bytes& reference) { return op1(kDerefOfOp, reference); }

Bytes index(const Bytes& object, const Bytes& i) {
    Bytes out = op2(kIndexOp, object, i);
    out.push_back(kNullName);  // Target: none
    return out;
}

Bytes to_integer(const Bytes& operand) {
    Bytes out = op1(kToIntegerOp, operand);
    out.push_back(kNullName);  // Target: none
    return out;
}

Bytes to_uuid(std::string_view uuid) {
    // ACPI 6.5 §19.6.142 ToUUID: "aabbccdd-eeff-gghh-iijj-kkllmmnnoopp" becomes
    // dd cc bb aa ff ee hh gg ii jj kk ll mm nn oo pp.
    auto bad = [&] { return std::invalid_argument("AML: bad UUID '" + std::string(uuid) + "'"); };
    if (uuid.size() != 36) throw bad();
    std::string hex;
    for (size_t i = 0; i < uuid.size(); ++i) {
        const bool dash_here = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash_here != (uuid[i] == '-') || (!dash_here && hex_digit(uuid[i]) < 0)) throw bad();
        if (!dash_here) hex.push_back(uuid[i]);
    }
    Bytes raw;  // 32 hex digits
    for (size_t i = 0; i < hex.size(); i += 2)
        raw.push_back(static_cast<uint8_t>(hex_digit(hex[i]) << 4 | hex_digit(hex[i + 1])));
    const Bytes ordered{raw[3], raw[2], raw[1], raw[0], raw[5], raw[4], raw[7], raw[6],
                        raw[8], raw[9], raw[10], raw[11], raw[12], raw[13], raw[14], raw[15]};
    return buffer(ordered);
}

Bytes system_memory_region(std::string_view name, uint64_t base, uint64_t length) {
    Bytes out{kExtOpPrefix, kOpRegionOp};
    append(out, name_string(name));
    out.push_back(kSystemMemory);
    append(out, integer(base));
    append(out, integer(length));
    return out;
}

Bytes dword_field(std::string_view region, const std::vector<std::pair<std::string_view, unsigned>>& fields) {
    Bytes body = name_string(region);
    body.push_back(kDWordAccNoLockPreserve);
    for (const auto& [field_name, bits] : fields) {
        // NamedField := NameSeg PkgLength, the PkgLength being the width in bits (§20.2.5.2).
        if (bits == 0 || bits > 0x3F) throw std::invalid_argument("AML: field widths are 1..63 bits here");
        append(body, name_seg(field_name));
        body.push_back(static_cast<uint8_t>(bits));
    }
    Bytes out{kExtOpPrefix, kFieldOp};
    append(out, pkg_length(body.size()));
    append(out, body);
    return out;
}

}  // namespace minivmm::aml
