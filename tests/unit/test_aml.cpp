// AML encoder tests. Every expected byte string was produced by compiling the ASL in the comment
// next to it with iasl 20200925 (`iasl -on`, i.e. without name-path optimisation, inside
// DefinitionBlock ("", "SSDT", 2, ...)) and taking the AML after the 36-byte table header.
#include <doctest/doctest.h>

#include <cstdio>
#include <stdexcept>
#include <string>

#include "acpi/aml.hpp"

using namespace minivmm;
using aml::Bytes;

TEST_CASE("integers use the smallest encoding, as iasl") {
    // Name (I000, 0) ... Name (I009, 0xFFFFFFFF) -> only the value bytes after "08 49 30 30 3x"
    CHECK(aml::integer(0) == Bytes{0x00});
    CHECK(aml::integer(1) == Bytes{0x01});
    CHECK(aml::integer(0xFFFF'FFFF'FFFF'FFFF) == Bytes{0xFF});  // Ones
    CHECK(aml::integer(0x12) == Bytes{0x0A, 0x12});
    CHECK(aml::integer(0xFF) == Bytes{0x0A, 0xFF});
    CHECK(aml::integer(0x100) == Bytes{0x0B, 0x00, 0x01});
    CHECK(aml::integer(0x1234) == Bytes{0x0B, 0x34, 0x12});
    CHECK(aml::integer(0x12345678) == Bytes{0x0C, 0x78, 0x56, 0x34, 0x12});
    CHECK(aml::integer(0xFFFFFFFF) == Bytes{0x0C, 0xFF, 0xFF, 0xFF, 0xFF});
    CHECK(aml::integer(0x123456789A) == Bytes{0x0E, 0x9A, 0x78, 0x56, 0x34, 0x12, 0x00, 0x00, 0x00});
    // Name (I000, 0)
    CHECK(aml::name("I000", aml::integer(0)) == Bytes{0x08, 0x49, 0x30, 0x30, 0x30, 0x00});
}

TEST_CASE("strings and EISA ids") {
    // Name (S000, "QEMU0002")
    CHECK(aml::name("S000", aml::string("QEMU0002")) ==
          Bytes{0x08, 0x53, 0x30, 0x30, 0x30, 0x0D, 0x51, 0x45, 0x4D, 0x55, 0x30, 0x30, 0x30, 0x32, 0x00});
    // Name (S001, "")
    CHECK(aml::string("") == Bytes{0x0D, 0x00});
    // Name (E000, EisaId ("PNP0A03")); Name (E001, EisaId ("PNP0501"))
    CHECK(aml::eisa_id("PNP0A03") == Bytes{0x0C, 0x41, 0xD0, 0x0A, 0x03});
    CHECK(aml::eisa_id("PNP0501") == Bytes{0x0C, 0x41, 0xD0, 0x05, 0x01});
    CHECK(aml::eisa_id_value("PNP0A03") == 0x030AD041u);

    CHECK_THROWS_AS(aml::eisa_id("PNP0A0"), std::invalid_argument);
    CHECK_THROWS_AS(aml::eisa_id("pnp0A03"), std::invalid_argument);
    CHECK_THROWS_AS(aml::eisa_id("PNP0A0G"), std::invalid_argument);
    CHECK_THROWS_AS(aml::string(std::string("a\0b", 3)), std::invalid_argument);
    CHECK_THROWS_AS(aml::string("\xC3\xA9"), std::invalid_argument);
}

TEST_CASE("name strings: segments, root, parent, dual and multi paths") {
    CHECK(aml::name_seg("RTC") == Bytes{'R', 'T', 'C', '_'});
    CHECK(aml::name_string("_SB") == Bytes{'_', 'S', 'B', '_'});
    CHECK(aml::name_string("\\_S5") == Bytes{0x5C, '_', 'S', '5', '_'});
    CHECK(aml::name_string("\\") == Bytes{0x5C, 0x00});  // Scope (\) {} -> 10 03 5C 00
    CHECK(aml::name_string("^BAR") == Bytes{0x5E, 'B', 'A', 'R', '_'});
    CHECK(aml::name_string("\\_SB.PCI0") == Bytes{0x5C, 0x2E, '_', 'S', 'B', '_', 'P', 'C', 'I', '0'});
    CHECK(aml::name_string("\\_SB.PCI0.ISA.TPM") ==
          Bytes{0x5C, 0x2F, 0x04, '_', 'S', 'B', '_', 'P', 'C', 'I', '0', 'I', 'S', 'A', '_', 'T', 'P', 'M', '_'});

    for (const char* bad : {"", "TOOLONG", "1ABC", "_SB.", "\\_SB..PCI0", "ab", "^\\X", "A-B"})
        CHECK_THROWS_AS(aml::name_string(bad), std::invalid_argument);
}

TEST_CASE("scopes, devices, methods and packages match iasl") {
    // Scope (\_SB) { Device (PCI0) { Name (_ADR, Zero)
    //     Device (ISA) { Name (_ADR, One) Device (TPM) { Name (_UID, One) } } } }
    const Bytes nested = aml::scope(
        "\\_SB", {aml::device("PCI0", {aml::name("_ADR", aml::integer(0)),
                                       aml::device("ISA", {aml::name("_ADR", aml::integer(1)),
                                                           aml::device("TPM", {aml::name("_UID", aml::integer(1))})})})});
    CHECK(nested == Bytes{0x10, 0x2d, 0x5c, 0x5f, 0x53, 0x42, 0x5f, 0x5b, 0x82, 0x25, 0x50, 0x43, 0x49, 0x30, 0x08,
                          0x5f, 0x41, 0x44, 0x52, 0x00, 0x5b, 0x82, 0x18, 0x49, 0x53, 0x41, 0x5f, 0x08, 0x5f, 0x41,
                          0x44, 0x52, 0x01, 0x5b, 0x82, 0x0b, 0x54, 0x50, 0x4d, 0x5f, 0x08, 0x5f, 0x55, 0x49, 0x44,
                          0x01});
    // Scope (\_SB.PCI0.ISA.TPM) { Name (DESC, "TPM") }
    CHECK(aml::scope("\\_SB.PCI0.ISA.TPM", {aml::name("DESC", aml::string("TPM"))}) ==
          Bytes{0x10, 0x1e, 0x5c, 0x2f, 0x04, 0x5f, 0x53, 0x42, 0x5f, 0x50, 0x43, 0x49, 0x30, 0x49, 0x53, 0x41,
                0x5f, 0x54, 0x50, 0x4d, 0x5f, 0x08, 0x44, 0x45, 0x53, 0x43, 0x0d, 0x54, 0x50, 0x4d, 0x00});
    // Scope (\_SB.PCI0) { Name (^BAR, 0x10) }
    CHECK(aml::scope("\\_SB.PCI0", {aml::name("^BAR", aml::integer(0x10))}) ==
          Bytes{0x10, 0x13, 0x5c, 0x2e, 0x5f, 0x53, 0x42, 0x5f, 0x50, 0x43, 0x49, 0x30, 0x08, 0x5e, 0x42, 0x41,
                0x52, 0x5f, 0x0a, 0x10});
    // Scope (\) { }
    CHECK(aml::scope("\\", {}) == Bytes{0x10, 0x03, 0x5C, 0x00});
    // Method (_STA, 0, NotSerialized) { Return (0x0F) }
    CHECK(aml::method("_STA", 0, false, {aml::return_value(aml::integer(0x0F))}) ==
          Bytes{0x14, 0x09, 0x5f, 0x53, 0x54, 0x41, 0x00, 0xa4, 0x0a, 0x0f});
    // Method (\_SB.FOO, 3, Serialized) { Return (Zero) }
    CHECK(aml::method("\\_SB.FOO", 3, true, {aml::return_value(aml::integer(0))}) ==
          Bytes{0x14, 0x0e, 0x5c, 0x2e, 0x5f, 0x53, 0x42, 0x5f, 0x46, 0x4f, 0x4f, 0x5f, 0x0b, 0xa4, 0x00});
    CHECK_THROWS_AS(aml::method("FOO", 8, false, {}), std::invalid_argument);
    // Name (PKG0, Package () { One, "AB", Package () { 0x1234 } })
    CHECK(aml::name("PKG0", aml::package({aml::integer(1), aml::string("AB"), aml::package({aml::integer(0x1234)})})) ==
          Bytes{0x08, 0x50, 0x4b, 0x47, 0x30, 0x12, 0x0d, 0x03, 0x01, 0x0d, 0x41, 0x42, 0x00, 0x12, 0x05, 0x01,
                0x0b, 0x34, 0x12});
    // Name (\_S5, Package () { Zero, Zero, Zero, Zero })
    CHECK(aml::name("\\_S5", aml::package(std::vector<Bytes>(4, aml::integer(0)))) ==
          Bytes{0x08, 0x5c, 0x5f, 0x53, 0x35, 0x5f, 0x12, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00});
    CHECK_THROWS_AS(aml::package(std::vector<Bytes>(256, aml::integer(0))), std::invalid_argument);
    // Name (BUF0, Buffer () {0x01, 0x02, 0x03})
    CHECK(aml::buffer({1, 2, 3}) == Bytes{0x11, 0x06, 0x0a, 0x03, 0x01, 0x02, 0x03});
}

TEST_CASE("resource descriptors match iasl") {
    // WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, 0, 0xFF, 0, 0x100)
    CHECK(aml::word_bus_number(0, 0xFF) ==
          Bytes{0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00, 0x00, 0x00, 0x01});
    // IO (Decode16, 0x0CF8, 0x0CF8, 0x01, 0x08)
    CHECK(aml::io(aml::Decode::decode16, 0xCF8, 0xCF8, 1, 8) == Bytes{0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08});
    // IO (Decode10, 0x0070, 0x0070, 0x01, 0x02)
    CHECK(aml::io(aml::Decode::decode10, 0x70, 0x70, 1, 2) == Bytes{0x47, 0x00, 0x70, 0x00, 0x70, 0x00, 0x01, 0x02});
    // WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0, 0, 0xCF7, 0, 0xCF8)
    CHECK(aml::word_io(0, 0xCF7) ==
          Bytes{0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x00, 0xf7, 0x0c, 0x00, 0x00, 0xf8, 0x0c});
    // DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable, ReadWrite,
    //              0, 0xA0000, 0xBFFFF, 0, 0x20000)
    CHECK(aml::dword_memory(aml::Cache::cacheable, aml::Access::read_write, 0xA0000, 0xBFFFF) ==
          Bytes{0x87, 0x17, 0x00, 0x00, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00,
                0xff, 0xff, 0x0b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00});
    // DWordMemory (..., NonCacheable, ReadWrite, 0, 0xC0000000, 0xFEBFFFFF, 0, 0x3EC00000)
    CHECK(aml::dword_memory(aml::Cache::non_cacheable, aml::Access::read_write, 0xC0000000, 0xFEBFFFFF) ==
          Bytes{0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0,
                0xff, 0xff, 0xbf, 0xfe, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x3e});
    // QWordMemory (..., Cacheable, ReadWrite, 0, 0x8000000000, 0xFFFFFFFFFF, 0, 0x8000000000)
    CHECK(aml::qword_memory(aml::Cache::cacheable, aml::Access::read_write, 0x80'0000'0000, 0xFF'FFFF'FFFF) ==
          Bytes{0x8a, 0x2b, 0x00, 0x00, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00});
    // Memory32Fixed (ReadWrite, 0xFED40000, 0x5000); Memory32Fixed (ReadOnly, ...)
    CHECK(aml::memory32_fixed(aml::Access::read_write, 0xFED40000, 0x5000) ==
          Bytes{0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0xd4, 0xfe, 0x00, 0x50, 0x00, 0x00});
    CHECK(aml::memory32_fixed(aml::Access::read_only, 0xFED40000, 0x5000) ==
          Bytes{0x86, 0x09, 0x00, 0x00, 0x00, 0x00, 0xd4, 0xfe, 0x00, 0x50, 0x00, 0x00});
    // IRQNoFlags () {4}; {8}; {3,4,15}
    CHECK(aml::irq_no_flags({4}) == Bytes{0x22, 0x10, 0x00});
    CHECK(aml::irq_no_flags({8}) == Bytes{0x22, 0x00, 0x01});
    CHECK(aml::irq_no_flags({3, 4, 15}) == Bytes{0x22, 0x18, 0x80});
    // iasl: Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive, ,, ) {13} and
    // Interrupt (ResourceConsumer, Edge, ActiveLow, Shared, ,, ) {20}
    CHECK(aml::interrupt(aml::Trigger::level, aml::Polarity::active_high, aml::Sharing::exclusive, {13}) ==
          Bytes{0x89, 0x06, 0x00, 0x01, 0x01, 0x0D, 0x00, 0x00, 0x00});
    CHECK(aml::interrupt(aml::Trigger::edge, aml::Polarity::active_low, aml::Sharing::shared, {20}) ==
          Bytes{0x89, 0x06, 0x00, 0x0F, 0x01, 0x14, 0x00, 0x00, 0x00});
    CHECK_THROWS_AS(aml::interrupt(aml::Trigger::level, aml::Polarity::active_high, aml::Sharing::exclusive, {}),
                    std::invalid_argument);

    CHECK_THROWS_AS(aml::irq_no_flags({}), std::invalid_argument);
    CHECK_THROWS_AS(aml::irq_no_flags({16}), std::invalid_argument);
    CHECK_THROWS_AS(aml::io(aml::Decode::decode16, 0x100, 0xFF, 1, 1), std::invalid_argument);
    CHECK_THROWS_AS(aml::word_io(0x200, 0x100), std::invalid_argument);
    CHECK_THROWS_AS(aml::dword_memory(aml::Cache::cacheable, aml::Access::read_write, 2, 1), std::invalid_argument);
    CHECK_THROWS_AS(aml::qword_memory(aml::Cache::cacheable, aml::Access::read_write, 0, ~uint64_t{0}),
                    std::invalid_argument);
}

TEST_CASE("whole devices match iasl") {
    // Device (COM1) { Name (_HID, EisaId ("PNP0501")) Name (_UID, One) Name (_STA, 0x0F)
    //   Name (_CRS, ResourceTemplate () { IO (Decode16, 0x03F8, 0x03F8, 0x01, 0x08) IRQNoFlags () {4} }) }
    const Bytes com1 = aml::device(
        "COM1", {aml::name("_HID", aml::eisa_id("PNP0501")), aml::name("_UID", aml::integer(1)),
                 aml::name("_STA", aml::integer(0x0F)),
                 aml::name("_CRS", aml::resource_template({aml::io(aml::Decode::decode16, 0x3F8, 0x3F8, 1, 8),
                                                           aml::irq_no_flags({4})}))});
    CHECK(com1 == Bytes{0x5b, 0x82, 0x32, 0x43, 0x4f, 0x4d, 0x31, 0x08, 0x5f, 0x48, 0x49, 0x44, 0x0c, 0x41, 0xd0,
                        0x05, 0x01, 0x08, 0x5f, 0x55, 0x49, 0x44, 0x01, 0x08, 0x5f, 0x53, 0x54, 0x41, 0x0a, 0x0f,
                        0x08, 0x5f, 0x43, 0x52, 0x53, 0x11, 0x10, 0x0a, 0x0d, 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03,
                        0x01, 0x08, 0x22, 0x10, 0x00, 0x79, 0x00});
    // Device (TPM) { Name (_HID, "MSFT0101") Name (_UID, One) Name (_STA, 0x0F)
    //   Name (_CRS, ResourceTemplate () { Memory32Fixed (ReadWrite, 0xFED40000, 0x00005000) }) }
    const Bytes tpm = aml::device(
        "TPM", {aml::name("_HID", aml::string("MSFT0101")), aml::name("_UID", aml::integer(1)),
                aml::name("_STA", aml::integer(0x0F)),
                aml::name("_CRS", aml::resource_template(
                                      {aml::memory32_fixed(aml::Access::read_write, 0xFED40000, 0x5000)}))});
    CHECK(tpm == Bytes{0x5b, 0x82, 0x38, 0x54, 0x50, 0x4d, 0x5f, 0x08, 0x5f, 0x48, 0x49, 0x44, 0x0d, 0x4d, 0x53,
                       0x46, 0x54, 0x30, 0x31, 0x30, 0x31, 0x00, 0x08, 0x5f, 0x55, 0x49, 0x44, 0x01, 0x08, 0x5f,
                       0x53, 0x54, 0x41, 0x0a, 0x0f, 0x08, 0x5f, 0x43, 0x52, 0x53, 0x11, 0x11, 0x0a, 0x0e, 0x86,
                       0x09, 0x00, 0x01, 0x00, 0x00, 0xd4, 0xfe, 0x00, 0x50, 0x00, 0x00, 0x79, 0x00});
}

TEST_CASE("package length: 1, 2, 3 and 4 byte forms at their boundaries, as iasl") {
    // Buffer () { 60 x 0xAA }: body 62 bytes -> total 63 fits one byte: 11 3F 0A 3C AA...
    Bytes b = aml::buffer(Bytes(60, 0xAA));
    CHECK(Bytes(b.begin(), b.begin() + 4) == Bytes{0x11, 0x3F, 0x0A, 0x3C});
    CHECK(b.size() == 1 + 63);
    // Buffer () { 61 x 0xAA }: body 63 -> two bytes, total 65: 11 41 04 0A 3D
    b = aml::buffer(Bytes(61, 0xAA));
    CHECK(Bytes(b.begin(), b.begin() + 5) == Bytes{0x11, 0x41, 0x04, 0x0A, 0x3D});
    // Buffer () { 4090 x 0xAA }: body 4093 -> total 4095, the two-byte maximum: 11 4F FF 0B FA 0F
    b = aml::buffer(Bytes(4090, 0xAA));
    CHECK(Bytes(b.begin(), b.begin() + 6) == Bytes{0x11, 0x4F, 0xFF, 0x0B, 0xFA, 0x0F});
    // Buffer () { 4091 x 0xAA }: body 4094 -> three bytes, total 4097: 11 81 00 01 0B FB 0F
    b = aml::buffer(Bytes(4091, 0xAA));
    CHECK(Bytes(b.begin(), b.begin() + 7) == Bytes{0x11, 0x81, 0x00, 0x01, 0x0B, 0xFB, 0x0F});

    // Scope (\_SB) { Name (S000, "AAA...") ... Name (S299, "AAA...") }: 299 strings of 3490
    // characters and a last one of 2957 -> body 1048572, total 0xFFFFF (three-byte maximum):
    // 10 8F FF FF 5C 5F 53 42 5F; one more character -> four bytes, total 0x100001: 10 C1 00 00 01
    for (const auto& [last, prefix] : {std::pair{size_t{2957}, Bytes{0x10, 0x8F, 0xFF, 0xFF, 0x5C}},
                                       std::pair{size_t{2958}, Bytes{0x10, 0xC1, 0x00, 0x00, 0x01, 0x5C}}}) {
        std::vector<Bytes> names;
        for (int i = 0; i < 300; ++i) {
            char seg[5];
            std::snprintf(seg, sizeof seg, "S%03d", i);
            names.push_back(aml::name(seg, aml::string(std::string(i < 299 ? 3490 : last, 'A'))));
        }
        const Bytes s = aml::scope("\\_SB", names);
        CHECK(Bytes(s.begin(), s.begin() + static_cast<long>(prefix.size())) == prefix);
    }

    // The encoder directly, and the decoder on each form.
    CHECK(aml::pkg_length(0) == Bytes{0x01});
    CHECK(aml::pkg_length(62) == Bytes{0x3F});
    CHECK(aml::pkg_length(63) == Bytes{0x41, 0x04});
    CHECK(aml::pkg_length(4093) == Bytes{0x4F, 0xFF});
    CHECK(aml::pkg_length(4094) == Bytes{0x81, 0x00, 0x01});
    CHECK(aml::pkg_length(0xFFFFF - 3) == Bytes{0x8F, 0xFF, 0xFF});
    CHECK(aml::pkg_length(0xFFFFF - 2) == Bytes{0xC1, 0x00, 0x00, 0x01});
    CHECK(aml::pkg_length(0xFFFFFFF - 4) == Bytes{0xCF, 0xFF, 0xFF, 0xFF});
    CHECK_THROWS_AS(aml::pkg_length(0xFFFFFFF - 3), std::invalid_argument);
    for (size_t body : {size_t{0}, size_t{62}, size_t{63}, size_t{4093}, size_t{4094}, size_t{0xFFFFC}, size_t{0xFFFFD}}) {
        const Bytes enc = aml::pkg_length(body);
        const auto dec = aml::decode_pkg_length(enc.data(), enc.size());
        REQUIRE(dec.has_value());
        CHECK(dec->encoded_size == enc.size());
        CHECK(dec->length == body + enc.size());
    }
    const uint8_t truncated[] = {0x81, 0x00};
    CHECK_FALSE(aml::decode_pkg_length(truncated, sizeof truncated).has_value());
    const uint8_t reserved_bits[] = {0x50, 0x00};
    CHECK_FALSE(aml::decode_pkg_length(reserved_bits, sizeof reserved_bits).has_value());
    CHECK_FALSE(aml::decode_pkg_length(nullptr, 0).has_value());
}
