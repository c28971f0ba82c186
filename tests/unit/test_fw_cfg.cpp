// fw_cfg device (QEMU docs/specs/fw_cfg.rst): port interface, DMA, hostile descriptors.
#include <doctest/doctest.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "devices/fw_cfg.hpp"
#include "tests/unit/fw_cfg_test_helpers.hpp"

using namespace minivmm;
using namespace minivmm::test;

TEST_CASE("fw_cfg: signature, ID and directory through the ports") {
    Ram ram(4096);
    FwCfg fw(ram.memory);
    CHECK(port_read(fw, 4) == bytes_of("QEMU"));  // the signature is selected after reset
    select(fw, fw_cfg::kSignature);
    CHECK(port_read(fw, 6) == std::vector<uint8_t>{'Q', 'E', 'M', 'U', 0, 0});  // past the end: 0
    select(fw, fw_cfg::kId);
    CHECK(port_read(fw, 4) == std::vector<uint8_t>{3, 0, 0, 0});

    // Empty directory: count 0.
    select(fw, fw_cfg::kFileDir);
    CHECK(port_read(fw, 4) == std::vector<uint8_t>{0, 0, 0, 0});

    CHECK(fw.add_file("zeta", {1, 2, 3}) == 0x20);
    CHECK(fw.add_file("alpha", std::vector<uint8_t>(300, 7)) == 0x21);
    CHECK(fw.add_file("etc/e820", {}) == 0x22);
    auto dir = read_directory(fw);
    REQUIRE(dir.size() == 3);
    CHECK(dir[0].name == "alpha");  // sorted by name, keys in insertion order
    CHECK(dir[0].key == 0x21);
    CHECK(dir[0].size == 300);
    CHECK(dir[1].name == "etc/e820");
    CHECK(dir[1].size == 0);
    CHECK(dir[2].name == "zeta");
    CHECK(dir[2].key == 0x20);
    CHECK(fw.file_key("alpha") == 0x21);
    CHECK_FALSE(fw.file_key("beta").has_value());

    select(fw, 0x20);
    CHECK(port_read(fw, 5) == std::vector<uint8_t>{1, 2, 3, 0, 0});
    // Re-selecting resets the offset; a byte read at 0x510 also returns data (QEMU "comb").
    select(fw, 0x20);
    uint8_t b = 0;
    fw.read(fw_cfg::kSelectorOffset, std::span(&b, 1));
    CHECK(b == 1);
    // The legacy write-channel bit is ignored when selecting.
    select(fw, 0x4020);
    CHECK(port_read(fw, 1) == std::vector<uint8_t>{1});
    // Unknown keys read as zeros.
    select(fw, 0x0123);
    CHECK(port_read(fw, 3) == std::vector<uint8_t>{0, 0, 0});
}

TEST_CASE("fw_cfg: odd access widths on the ports") {
    Ram ram(4096);
    FwCfg fw(ram.memory);
    fw.add_item(fw_cfg::kNbCpus, {4, 0});

    // DMA address register reads return "QEMU CFG" big-endian at any width.
    uint8_t sig[8];
    fw.read(fw_cfg::kDmaOffset, sig);
    CHECK(std::memcmp(sig, "QEMU CFG", 8) == 0);
    uint8_t low[4];
    fw.read(fw_cfg::kDmaLowOffset, low);
    CHECK(std::memcmp(low, " CFG", 4) == 0);
    uint8_t one = 0;
    fw.read(fw_cfg::kDmaOffset + 1, std::span(&one, 1));
    CHECK(one == 'E');

    select(fw, fw_cfg::kNbCpus);
    // Invalid: a 1-byte selector write, a 16-bit data read, reads at the gap 0x512-0x513,
    // a 2-byte write at the DMA register, a data write. None changes the selection or offset.
    uint8_t sel1 = fw_cfg::kSignature;
    fw.write(fw_cfg::kSelectorOffset, std::span(&sel1, 1));
    fw.write(fw_cfg::kDataOffset, std::span(&sel1, 1));
    uint8_t wide[2] = {0, 0};
    fw.read(fw_cfg::kSelectorOffset, wide);
    CHECK(wide[0] == 0xFF);
    CHECK(wide[1] == 0xFF);
    fw.read(2, std::span(&one, 1));
    CHECK(one == 0xFF);
    uint8_t straddle[4];
    fw.read(2, straddle);
    CHECK(straddle[0] == 0xFF);
    CHECK(straddle[3] == 0xFF);
    fw.write(fw_cfg::kDmaOffset, wide);
    fw.write(fw_cfg::kDmaLowOffset + 2, wide);
    uint8_t four[4] = {0, 0, 0, 0};
    fw.write(2, four);
    CHECK(port_read(fw, 3) == std::vector<uint8_t>{4, 0, 0});
    CHECK(ram.bytes[0] == 0xAA);  // no stray DMA happened
}

TEST_CASE("fw_cfg: DMA reads") {
    Ram ram(64 * 1024);
    FwCfg fw(ram.memory);
    std::vector<uint8_t> content(1000);
    for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<uint8_t>(i * 7 + 1);
    uint16_t key = fw.add_file("etc/blob", content);
    constexpr size_t kDesc = 0x100, kBuf = 0x1000;

    SUBCASE("SELECT+READ of a whole file") {
        put_descriptor(ram.bytes, kDesc, (uint32_t{key} << 16) | fw_cfg::kDmaSelect | fw_cfg::kDmaRead, 1000, kBuf);
        kick(fw, kDesc);
        CHECK(control_at(ram, kDesc) == 0);
        CHECK(std::memcmp(&ram.bytes[kBuf], content.data(), content.size()) == 0);
        CHECK(ram.bytes[kBuf + 1000] == 0xAA);
        // The offset advanced: a further port read is past the end.
        CHECK(port_read(fw, 1) == std::vector<uint8_t>{0});
    }
    SUBCASE("a single 64-bit write at 0x514 also starts the transfer") {
        put_descriptor(ram.bytes, kDesc, (uint32_t{key} << 16) | fw_cfg::kDmaSelect | fw_cfg::kDmaRead, 16, kBuf);
        uint8_t addr[8] = {0, 0, 0, 0, 0, 0, 0x01, 0x00};
        fw.write(fw_cfg::kDmaOffset, addr);
        CHECK(control_at(ram, kDesc) == 0);
        CHECK(std::memcmp(&ram.bytes[kBuf], content.data(), 16) == 0);
    }
    SUBCASE("SKIP then READ continues from the skipped offset") {
        select(fw, key);
        put_descriptor(ram.bytes, kDesc, fw_cfg::kDmaSkip, 10, 0);
        kick(fw, kDesc);
        CHECK(control_at(ram, kDesc) == 0);
        put_descriptor(ram.bytes, kDesc, fw_cfg::kDmaRead, 4, kBuf);
        kick(fw, kDesc);
        CHECK(control_at(ram, kDesc) == 0);
        CHECK(std::memcmp(&ram.bytes[kBuf], &content[10], 4) == 0);
        // SKIP far past the end is not an error and leaves reads at the end.
        put_descriptor(ram.bytes, kDesc, fw_cfg::kDmaSkip, 0xFFFFFFFF, 0);
        kick(fw, kDesc);
        CHECK(control_at(ram, kDesc) == 0);
        CHECK(port_read(fw, 1) == std::vector<uint8_t>{0});
    }
    SUBCASE("READ past the end fills zeros") {
        put_descriptor(ram.bytes, kDesc, (uint32_t{key} << 16) | fw_cfg::kDmaSelect | fw_cfg::kDmaSkip, 990, 0);
        kick(fw, kDesc);
        put_descriptor(ram.bytes, kDesc, fw_cfg::kDmaRead, 30, kBuf);
        kick(fw, kDesc);
        CHECK(control_at(ram, kDesc) == 0);
        CHECK(std::memcmp(&ram.bytes[kBuf], &content[990], 10) == 0);
        for (size_t i = 10; i < 30; ++i) CHECK(ram.bytes[kBuf + i] == 0);
        CHECK(ram.bytes[kBuf + 30] == 0xAA);
    }
    SUBCASE("READ of a missing key fills zeros") {
        put_descriptor(ram.bytes, kDesc, (0x0123u << 16) | fw_cfg::kDmaSelect | fw_cfg::kDmaRead, 8, kBuf);
        kick(fw, kDesc);
        CHECK(control_at(ram, kDesc) == 0);
        for (size_t i = 0; i < 8; ++i) CHECK(ram.bytes[kBuf + i] == 0);
    }
    SUBCASE("SELECT alone selects and completes") {
        put_descriptor(ram.bytes, kDesc, (uint32_t{fw_cfg::kSignature} << 16) | fw_cfg::kDmaSelect, 100, kBuf);
        kick(fw, kDesc);
        CHECK(control_at(ram, kDesc) == 0);
        CHECK(ram.bytes[kBuf] == 0xAA);
        CHECK(port_read(fw, 4) == bytes_of("QEMU"));
    }
    SUBCASE("zero length completes without touching memory") {
        put_descriptor(ram.bytes, kDesc, (uint32_t{key} << 16) | fw_cfg::kDmaSelect | fw_cfg::kDmaRead, 0, kBuf);
        kick(fw, kDesc);
        CHECK(control_at(ram, kDesc) == 0);
        CHECK(ram.bytes[kBuf] == 0xAA);
    }
}

TEST_CASE("fw_cfg: DMA errors from hostile descriptors") {
    Ram ram(4096);
    FwCfg fw(ram.memory);
    uint16_t key = fw.add_file("etc/blob", std::vector<uint8_t>(100, 0x55));
    uint32_t select_read = (uint32_t{key} << 16) | fw_cfg::kDmaSelect | fw_cfg::kDmaRead;

    SUBCASE("descriptor outside RAM: nothing written, device still works") {
        kick(fw, 0x10000);
        kick(fw, 0xFFFF'FFFF'FFFF'FFF8);  // would wrap
        for (uint8_t b : ram.bytes) REQUIRE(b == 0xAA);
        put_descriptor(ram.bytes, 0, select_read, 4, 0x100);
        kick(fw, 0);
        CHECK(control_at(ram, 0) == 0);
        CHECK(ram.bytes[0x100] == 0x55);
    }
    SUBCASE("descriptor straddling the end of RAM: ERROR in the control word") {
        kick(fw, 4096 - 8);
        CHECK(control_at(ram, 4096 - 8) == fw_cfg::kDmaError);
    }
    SUBCASE("high half of the address is honoured, then cleared") {
        put_descriptor(ram.bytes, 0x40, select_read, 4, 0x200);
        uint8_t hi[4] = {0, 0, 0, 1}, lo[4] = {0, 0, 0, 0x40};
        fw.write(fw_cfg::kDmaOffset, hi);
        fw.write(fw_cfg::kDmaLowOffset, lo);  // descriptor at 4 GiB + 0x40: not RAM
        CHECK(control_at(ram, 0x40) == select_read);
        CHECK(ram.bytes[0x200] == 0xAA);
        fw.write(fw_cfg::kDmaLowOffset, lo);  // low half alone: 0x40
        CHECK(control_at(ram, 0x40) == 0);
        CHECK(ram.bytes[0x200] == 0x55);
    }
    SUBCASE("buffer crossing the end of RAM: ERROR and no partial write") {
        put_descriptor(ram.bytes, 0, select_read, 100, 4096 - 50);
        kick(fw, 0);
        CHECK(control_at(ram, 0) == fw_cfg::kDmaError);
        CHECK(ram.bytes[4096 - 50] == 0xAA);
        CHECK(ram.bytes[4095] == 0xAA);
    }
    SUBCASE("buffer entirely outside RAM") {
        put_descriptor(ram.bytes, 0, select_read, 16, 0x8000'0000);
        kick(fw, 0);
        CHECK(control_at(ram, 0) == fw_cfg::kDmaError);
    }
    SUBCASE("huge length fails fast without allocating") {
        put_descriptor(ram.bytes, 0, select_read, 0xFFFF'FFFF, 0x100);
        kick(fw, 0);
        CHECK(control_at(ram, 0) == fw_cfg::kDmaError);
        CHECK(ram.bytes[0x100] == 0xAA);
    }
    SUBCASE("64-bit address + length wrapping around") {
        put_descriptor(ram.bytes, 0, select_read, 0x20, 0xFFFF'FFFF'FFFF'FFF0);
        kick(fw, 0);
        CHECK(control_at(ram, 0) == fw_cfg::kDmaError);
        put_descriptor(ram.bytes, 0, fw_cfg::kDmaRead, 0x10, 0xFFFF'FFFF'FFFF'FFF0);  // ends exactly at 2^64
        kick(fw, 0);
        CHECK(control_at(ram, 0) == fw_cfg::kDmaError);
    }
    SUBCASE("WRITE is rejected: items are read-only") {
        put_descriptor(ram.bytes, 0, (uint32_t{key} << 16) | fw_cfg::kDmaSelect | fw_cfg::kDmaWrite, 4, 0x100);
        kick(fw, 0);
        CHECK(control_at(ram, 0) == fw_cfg::kDmaError);
        CHECK((*fw.item(key))[0] == 0x55);
        // READ wins over WRITE when both are set (QEMU's precedence).
        put_descriptor(ram.bytes, 0, select_read | fw_cfg::kDmaWrite, 4, 0x100);
        kick(fw, 0);
        CHECK(control_at(ram, 0) == 0);
        CHECK(ram.bytes[0x100] == 0x55);
    }
    SUBCASE("descriptor used as its own buffer is harmless") {
        put_descriptor(ram.bytes, 0, select_read, 16, 0);
        kick(fw, 0);
        CHECK(control_at(ram, 0) == 0);  // control written back after the data
        CHECK(ram.bytes[4] == 0x55);
    }
}

TEST_CASE("fw_cfg: DMA across two adjacent RAM regions") {
    std::vector<uint8_t> a(4096, 0xAA), b(4096, 0xAA);
    GuestMemory memory({GuestRegion{0, 4096, a.data()}, GuestRegion{4096, 4096, b.data()}});
    FwCfg fw(memory);
    std::vector<uint8_t> content(64);
    for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<uint8_t>(i + 1);
    uint16_t key = fw.add_file("x", content);
    put_descriptor(a, 0, (uint32_t{key} << 16) | fw_cfg::kDmaSelect | fw_cfg::kDmaRead, 64, 4096 - 32);
    kick(fw, 0);
    CHECK(get_be(a.data(), 4) == 0);
    CHECK(std::memcmp(&a[4096 - 32], content.data(), 32) == 0);
    CHECK(std::memcmp(b.data(), &content[32], 32) == 0);
}

TEST_CASE("fw_cfg: set-up errors") {
    Ram ram(4096);
    FwCfg fw(ram.memory);
    fw.add_item(fw_cfg::kNbCpus, {1, 0});
    CHECK_THROWS_AS(fw.add_item(fw_cfg::kNbCpus, {2, 0}), std::invalid_argument);
    CHECK_THROWS_AS(fw.add_item(fw_cfg::kSignature, {}), std::invalid_argument);
    CHECK_THROWS_AS(fw.add_item(fw_cfg::kId, {}), std::invalid_argument);
    CHECK_THROWS_AS(fw.add_item(fw_cfg::kFileDir, {}), std::invalid_argument);
    CHECK_THROWS_AS(fw.add_item(fw_cfg::kFileFirst, {}), std::invalid_argument);
    CHECK_THROWS_AS(fw.add_item(0x4001, {}), std::invalid_argument);
    CHECK_THROWS_AS(fw.add_item(0x8020, {}), std::invalid_argument);
    fw.add_item(fw_cfg::kIrq0Override, {1, 0, 0, 0});
    CHECK(fw.item(fw_cfg::kIrq0Override)->size() == 4);

    fw.add_file(std::string(55, 'a'), {});
    CHECK_THROWS_AS(fw.add_file(std::string(56, 'b'), {}), std::invalid_argument);
    CHECK_THROWS_AS(fw.add_file(std::string(55, 'a'), {}), std::invalid_argument);
    CHECK_THROWS_AS(fw.add_file("", {}), std::invalid_argument);
    CHECK_THROWS_AS(fw.add_file(std::string("a\0b", 3), {}), std::invalid_argument);
    auto dir = read_directory(fw);
    REQUIRE(dir.size() == 1);
    CHECK(dir[0].name == std::string(55, 'a'));
}

TEST_CASE("fw_cfg: a writable file takes DMA writes within its size, nothing else does") {
    Ram ram(64 * 1024);
    FwCfg fw(ram.memory);
    const uint16_t ro = fw.add_file("etc/ro", {1, 2, 3, 4, 5, 6, 7, 8});
    const uint16_t rw = fw.add_writable_file("etc/minivmm/tpm-log-address", 8);
    constexpr size_t kDesc = 0x100, kBuf = 0x1000;
    for (size_t i = 0; i < 8; ++i) ram.bytes[kBuf + i] = static_cast<uint8_t>(0x10 + i);
    CHECK(fw.contents(rw) == std::vector<uint8_t>(8, 0));

    // SeaBIOS qemu_cfg_write_file: SELECT + WRITE of the whole value.
    put_descriptor(ram.bytes, kDesc, (uint32_t{rw} << 16) | fw_cfg::kDmaSelect | fw_cfg::kDmaWrite, 8, kBuf);
    kick(fw, kDesc);
    CHECK(control_at(ram, kDesc) == 0);
    CHECK(fw.contents(rw) == std::vector<uint8_t>{0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17});
    // SKIP then WRITE of a part.
    select(fw, rw);
    put_descriptor(ram.bytes, kDesc, fw_cfg::kDmaSkip, 6, 0);
    kick(fw, kDesc);
    put_descriptor(ram.bytes, kDesc, fw_cfg::kDmaWrite, 2, kBuf);
    kick(fw, kDesc);
    CHECK(control_at(ram, kDesc) == 0);
    CHECK(fw.contents(rw) == std::vector<uint8_t>{0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x10, 0x11});
    // Past the end: an error, and nothing written.
    put_descriptor(ram.bytes, kDesc, (uint32_t{rw} << 16) | fw_cfg::kDmaSelect | fw_cfg::kDmaWrite, 9, kBuf + 1);
    kick(fw, kDesc);
    CHECK((control_at(ram, kDesc) & fw_cfg::kDmaError) != 0);
    CHECK(fw.contents(rw)[0] == 0x10);
    // A buffer outside RAM: an error.
    put_descriptor(ram.bytes, kDesc, (uint32_t{rw} << 16) | fw_cfg::kDmaSelect | fw_cfg::kDmaWrite, 8, 0xFFFF0000);
    kick(fw, kDesc);
    CHECK((control_at(ram, kDesc) & fw_cfg::kDmaError) != 0);
    // A read-only file and the directory refuse writes.
    put_descriptor(ram.bytes, kDesc, (uint32_t{ro} << 16) | fw_cfg::kDmaSelect | fw_cfg::kDmaWrite, 1, kBuf);
    kick(fw, kDesc);
    CHECK((control_at(ram, kDesc) & fw_cfg::kDmaError) != 0);
    CHECK(fw.contents(ro) == std::vector<uint8_t>{1, 2, 3, 4, 5, 6, 7, 8});
    put_descriptor(ram.bytes, kDesc, (uint32_t{fw_cfg::kFileDir} << 16) | fw_cfg::kDmaSelect | fw_cfg::kDmaWrite, 4, kBuf);
    kick(fw, kDesc);
    CHECK((control_at(ram, kDesc) & fw_cfg::kDmaError) != 0);
    // The directory lists it with its size, like any file.
    CHECK(fw.file_key("etc/minivmm/tpm-log-address") == rw);
}
