// The e820 encoder and populate_fw_cfg: what SeaBIOS reads at start-up.
#include <doctest/doctest.h>

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "devices/fw_cfg.hpp"
#include "firmware/e820.hpp"
#include "firmware/fw_cfg_setup.hpp"
#include "tests/unit/fw_cfg_test_helpers.hpp"
#include "vmm/base/platform.hpp"

using namespace minivmm;
using namespace minivmm::test;

TEST_CASE("e820: layout and SeaBIOS's 20-byte encoding") {
    auto map = build_e820(512ull << 20, 0);
    REQUIRE(map.size() == 2);
    CHECK(map[0].addr == 0);
    CHECK(map[0].size == 512ull << 20);
    CHECK(map[0].type == kE820Ram);
    CHECK(map[1].addr == platform::kKvmIdentityMapAddr);
    CHECK(map[1].size == platform::kKvmReservedSize);
    CHECK(map[1].type == kE820Reserved);

    // -tpm-interface crb: the CRB's buffer RAM is reserved, so the OS never takes it as its own.
    map = build_e820(512ull << 20, 0, true);
    REQUIRE(map.size() == 3);
    CHECK(map[2].addr == 0xFED41000);
    CHECK(map[2].size == 0x2000);
    CHECK(map[2].type == kE820Reserved);

    map = build_e820(3ull << 30, 5ull << 30);
    REQUIRE(map.size() == 3);
    CHECK(map[1].addr == 1ull << 32);
    CHECK(map[1].size == 5ull << 30);
    CHECK(map[1].type == kE820Ram);

    E820Entry one{0x0102030405060708, 0x1112131415161718, 0x21222324};
    auto bytes = encode_e820(std::span(&one, 1));
    CHECK(bytes == std::vector<uint8_t>{0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, 0x18, 0x17,
                                        0x16, 0x15, 0x14, 0x13, 0x12, 0x11, 0x24, 0x23, 0x22, 0x21});
    auto all = encode_e820(map);
    REQUIRE(all.size() == 60);
    CHECK(all[20 + 4] == 0x01);   // 4 GiB: byte 4 of the address
    CHECK(all[40 + 16] == 0x02);  // reserved type
    CHECK(all[40 + 0] == 0x00);
    CHECK(all[40 + 1] == 0xC0);   // 0xFEFFC000
    CHECK(all[40 + 3] == 0xFE);

    CHECK_THROWS_AS(build_e820(0, 0), std::invalid_argument);
    CHECK_THROWS_AS(build_e820(platform::kLowMemoryLimit + 4096, 0), std::invalid_argument);
    CHECK_THROWS_AS(build_e820(1 << 20, UINT64_MAX - 10), std::invalid_argument);
}

namespace {

// SeaBIOS src/boot.c glob_prefix semantics: '*' matches any run of characters up to the next
// glob character or '/', and the glob must end where the string ends or at a '/'.
bool seabios_glob_prefix(const char* glob, const char* str) {
    for (;;) {
        if (!*glob && (!*str || *str == '/')) return true;
        if (*glob == '*') {
            if (!*str || *str == '/' || *str == glob[1])
                ++glob;
            else
                ++str;
            continue;
        }
        if (*glob != *str) return false;
        ++glob;
        ++str;
    }
}

bool is_romfile_int_size(size_t n) { return n == 1 || n == 2 || n == 4 || n == 8; }

}  // namespace

TEST_CASE("fw_cfg setup: what SeaBIOS reads") {
    Ram ram(4096);
    FwCfg fw(ram.memory);
    FwCfgSetup setup;
    setup.ram_below_4g = 3ull << 30;
    setup.ram_above_4g = 1ull << 30;
    setup.cpus = 2;
    setup.acpi_tables = {1, 2, 3};
    setup.acpi_rsdp = {4, 5};
    setup.extra_files.push_back({"etc/tpm/log", {9, 9}});

    SUBCASE("defaults: no menu, serial console") {
        populate_fw_cfg(fw, setup);
        std::map<std::string, std::vector<uint8_t>> files;
        for (const auto& e : read_directory(fw)) files[e.name] = read_file(fw, e.name);

        CHECK(files.at("etc/e820") == encode_e820(build_e820(3ull << 30, 1ull << 30)));
        std::string order(files.at("bootorder").begin(), files.at("bootorder").end());
        CHECK(order == std::string("/pci@i0cf8/scsi@1/disk@0,0\nHALT\0", 32));
        // SeaBIOS's pattern for the virtio-blk function at 00:01.0 matches the first line only.
        CHECK(seabios_glob_prefix("/pci@i0cf8/*@1", order.c_str()));
        CHECK_FALSE(seabios_glob_prefix("/pci@i0cf8/*@2", order.c_str()));
        CHECK_FALSE(seabios_glob_prefix("/pci@i0cf8/*@1", "/pci@i0cf8/scsi@10/disk@0,0"));

        CHECK(files.at("etc/show-boot-menu") == std::vector<uint8_t>{0, 0});
        CHECK(files.count("etc/boot-menu-wait") == 0);
        CHECK(files.at("etc/boot-fail-wait") == std::vector<uint8_t>{0xE8, 0x03, 0, 0});
        CHECK(files.at("etc/sercon-port") == std::vector<uint8_t>{0xF8, 0x03});
        CHECK(files.at("etc/acpi/tables") == std::vector<uint8_t>{1, 2, 3});
        CHECK(files.at("etc/acpi/rsdp") == std::vector<uint8_t>{4, 5});
        CHECK(files.count("etc/table-loader") == 0);
        CHECK(files.at("etc/tpm/log") == std::vector<uint8_t>{9, 9});
        for (const char* name : {"etc/show-boot-menu", "etc/boot-fail-wait", "etc/sercon-port"})
            CHECK(is_romfile_int_size(files.at(name).size()));

        select(fw, fw_cfg::kNbCpus);
        CHECK(port_read(fw, 2) == std::vector<uint8_t>{2, 0});
        select(fw, fw_cfg::kMaxCpus);
        CHECK(port_read(fw, 2) == std::vector<uint8_t>{2, 0});
        select(fw, fw_cfg::kIrq0Override);
        CHECK(port_read(fw, 1) == std::vector<uint8_t>{1});
        CHECK(fw.item(fw_cfg::kNoGraphic) == nullptr);
        CHECK(fw.item(fw_cfg::kBootMenu) == nullptr);
    }
    SUBCASE("boot menu with a wait, no serial console, table-loader") {
        setup.boot_menu_wait_ms = 500;
        setup.serial_console = false;
        setup.table_loader = std::vector<uint8_t>(128, 0);
        populate_fw_cfg(fw, setup);
        CHECK(read_file(fw, "etc/show-boot-menu") == std::vector<uint8_t>{1, 0});
        CHECK(read_file(fw, "etc/boot-menu-wait") == std::vector<uint8_t>{0xF4, 0x01, 0, 0});
        CHECK(read_file(fw, "etc/table-loader").size() == 128);
        CHECK_FALSE(fw.file_key("etc/sercon-port").has_value());
    }
    SUBCASE("bad input") {
        FwCfgSetup bad = setup;
        bad.extra_files.push_back({"bootorder", {}});
        CHECK_THROWS_AS(populate_fw_cfg(fw, bad), std::invalid_argument);
        Ram ram2(4096);
        FwCfg fw2(ram2.memory);
        bad = setup;
        bad.cpus = 0;
        CHECK_THROWS_AS(populate_fw_cfg(fw2, bad), std::invalid_argument);
        bad.cpus = 256;
        CHECK_THROWS_AS(populate_fw_cfg(fw2, bad), std::invalid_argument);
        Ram ram3(4096);
        FwCfg fw3(ram3.memory);
        bad = setup;
        bad.ram_below_4g = 0;
        CHECK_THROWS_AS(populate_fw_cfg(fw3, bad), std::invalid_argument);
    }
}
