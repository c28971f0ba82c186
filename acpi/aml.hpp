// A small AML (ACPI Machine Language) encoder: just the constructs minivmm's DSDT needs, each a
// function that returns the encoded bytes of one term, so terms compose by value:
//   aml::scope("\\_SB", {aml::device("COM1", {aml::name("_HID", aml::eisa_id("PNP0501"))})})
// Grammar references are to ACPI 6.5 §20 (AML specification); resource descriptors to §6.4.
// Every encoder gives the same bytes as iasl for the equivalent ASL (see tests/unit/test_aml.cpp).
// Bad arguments (malformed names, min > max, too many package elements) throw
// std::invalid_argument: AML is built once at machine set-up.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace minivmm::aml {

using Bytes = std::vector<uint8_t>;

// --- Encoding primitives (§20.2.4, §20.2.2) --------------------------------------------------
// PkgLength for a package whose contents after the PkgLength field are `body_size` bytes. The
// encoded length counts the PkgLength bytes themselves, so the 1..4 byte form is chosen on the
// total. Throws if the total exceeds 2^28 - 1.
Bytes pkg_length(size_t body_size);
// Decodes a PkgLength at the start of `data`: {length value, bytes used}, or nullopt if
// truncated or malformed (reserved bits set in a multi-byte lead byte).
struct DecodedPkgLength {
    size_t length;
    size_t encoded_size;
};
std::optional<DecodedPkgLength> decode_pkg_length(const uint8_t* data, size_t size) noexcept;

// NameSeg: 1..4 characters [A-Z_][A-Z0-9_]*, padded with '_' ("RTC" -> "RTC_").
Bytes name_seg(std::string_view seg);
// NameString: optional root '\' or parent '^' prefixes, then dot-separated segments:
// "\\_SB.PCI0", "PCI0", "^FOO", "\\" (root alone encodes a NullName).
Bytes name_string(std::string_view path);

// --- Data objects (§20.2.3) -----------------------------------------------------------------
// Smallest encoding as iasl chooses it: Zero, One, Ones (all 64 bits set, DSDT revision 2),
// then Byte/Word/DWord/QWord prefix.
Bytes integer(uint64_t value);
// Always a DWordConst, as iasl emits for EisaId(): QEMU-style compressed EISA id such as
// "PNP0A03" (three letters A..Z, four upper-case hex digits).
Bytes eisa_id(std::string_view id);
uint32_t eisa_id_value(std::string_view id);
// String: printable ASCII (0x01..0x7F, no NUL), NUL-terminated.
Bytes string(std::string_view text);
// Buffer (BufferSize = data.size()) { data }
Bytes buffer(const Bytes& data);
// Package (N) { elements }: each element must already be an encoded data object; at most 255.
Bytes package(const std::vector<Bytes>& elements);

// --- Named objects and scopes (§20.2.5) --------------------------------------------------------
Bytes name(std::string_view path, const Bytes& value);
Bytes scope(std::string_view path, const std::vector<Bytes>& terms);
Bytes device(std::string_view path, const std::vector<Bytes>& terms);
// Method (path, args, Serialized/NotSerialized) { terms }; args 0..7, SyncLevel 0.
Bytes method(std::string_view path, unsigned args, bool serialized, const std::vector<Bytes>& terms);
// Return (value) where value is an encoded term (e.g. integer(0x0F)).
Bytes return_value(const Bytes& value);

// --- Resource descriptors (§6.4) ------------------------------------------------------------
// Small items: IO (§6.4.2.5), IRQNoFlags (§6.4.2.1); large items: Memory32Fixed (§6.4.3.4),
// Extended Interrupt (§6.4.3.6),
// Word/DWord/QWord Address Space (§6.4.3.5). The address-space descriptors are emitted as
// ResourceProducer, PosDecode, MinFixed, MaxFixed, granularity 0, translation 0, length
// max - min + 1 (as QEMU's PCI host bridge _CRS).
enum class Decode : uint8_t { decode10 = 0, decode16 = 1 };
enum class Access : uint8_t { read_only = 0, read_write = 1 };
enum class Cache : uint8_t { non_cacheable = 0, cacheable = 1, write_combining = 2, prefetchable = 3 };

Bytes io(Decode decode, uint16_t min, uint16_t max, uint8_t align, uint8_t length);
// IRQNoFlags () { irqs... }: IRQ numbers 0..15, at least one.
Bytes irq_no_flags(const std::vector<uint8_t>& irqs);
// Interrupt (ResourceConsumer, trigger, polarity, sharing) { gsis... }: the extended descriptor,
// whose attributes the OS takes as written (Linux overrides a legacy IRQ () descriptor below 16
// with the ISA default, edge / active high, unless the MADT says otherwise).
enum class Trigger : uint8_t { level, edge };
enum class Polarity : uint8_t { active_high, active_low };
enum class Sharing : uint8_t { exclusive, shared };
Bytes interrupt(Trigger trigger, Polarity polarity, Sharing sharing, const std::vector<uint32_t>& gsis);
Bytes memory32_fixed(Access access, uint32_t base, uint32_t length);
Bytes word_bus_number(uint16_t min, uint16_t max);
// WordIO with EntireRange (ISA and non-ISA ranges), TypeStatic.
Bytes word_io(uint16_t min, uint16_t max);
Bytes dword_memory(Cache cache, Access access, uint32_t min, uint32_t max);
Bytes qword_memory(Cache cache, Access access, uint64_t min, uint64_t max);
// ResourceTemplate () { descriptors }: a Buffer ending in an EndTag with checksum 0, which
// means "no checksum" (§6.4.2.9) and is what iasl emits.
Bytes resource_template(const std::vector<Bytes>& descriptors);

// Appends `tail` to `out` (helper for building term lists).
inline void append(Bytes& out, const Bytes& tail) { out.insert(out.end(), tail.begin(), tail.end()); }

}  // namespace minivmm::aml
