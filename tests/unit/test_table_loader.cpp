#include <doctest/doctest.h>

#include <stdexcept>

#include "devices/device.hpp"
#include "firmware/table_loader.hpp"

using namespace minivmm;

TEST_CASE("table-loader entries have SeaBIOS's 128-byte layout") {
    TableLoader loader;
    loader.allocate("etc/acpi/rsdp", 16, TableLoader::Zone::fseg);
    loader.add_pointer("etc/acpi/rsdp", "etc/acpi/tables", 16, 4);
    loader.add_checksum("etc/acpi/rsdp", 8, 0, 20);
    auto blob = loader.blob();
    REQUIRE(blob.size() == 4096);  // padded to 4 KiB like QEMU
    CHECK(loader.entries() == 3);
    const uint8_t* e = blob.data();
    CHECK(load_le({e, 4}) == 1);
    CHECK(std::string(reinterpret_cast<const char*>(e + 4)) == "etc/acpi/rsdp");
    CHECK(load_le({e + 60, 4}) == 16);
    CHECK(e[64] == 2);
    e += 128;
    CHECK(load_le({e, 4}) == 2);
    CHECK(std::string(reinterpret_cast<const char*>(e + 60)) == "etc/acpi/tables");
    CHECK(load_le({e + 116, 4}) == 16);
    CHECK(e[120] == 4);
    e += 128;
    CHECK(load_le({e, 4}) == 3);
    CHECK(load_le({e + 60, 4}) == 8);
    CHECK(load_le({e + 64, 4}) == 0);
    CHECK(load_le({e + 68, 4}) == 20);
    for (size_t i = 3 * 128; i < blob.size(); ++i) REQUIRE(blob[i] == 0);  // padding = skipped entries
}

TEST_CASE("table-loader rejects what SeaBIOS would reject") {
    TableLoader loader;
    CHECK_THROWS_AS(loader.allocate(std::string(56, 'x'), 16, TableLoader::Zone::high), std::invalid_argument);
    CHECK_NOTHROW(loader.allocate(std::string(55, 'x'), 16, TableLoader::Zone::high));
    CHECK_THROWS_AS(loader.allocate("", 16, TableLoader::Zone::high), std::invalid_argument);
    CHECK_THROWS_AS(loader.allocate("f", 3, TableLoader::Zone::high), std::invalid_argument);
    CHECK_THROWS_AS(loader.add_pointer("a", "b", 0, 3), std::invalid_argument);
}

TEST_CASE("WRITE_POINTER has SeaBIOS's romfile_loader_entry_s wr_pointer layout") {
    TableLoader loader;
    loader.write_pointer("etc/minivmm/tpm-log-address", 0, "etc/tpm/log", 0x10, 8);
    const auto blob = loader.blob();
    const uint8_t* e = blob.data();
    CHECK(load_le({e, 4}) == 4);  // ROMFILE_LOADER_COMMAND_WRITE_POINTER
    CHECK(std::string(reinterpret_cast<const char*>(e + 4)) == "etc/minivmm/tpm-log-address");
    CHECK(std::string(reinterpret_cast<const char*>(e + 60)) == "etc/tpm/log");
    CHECK(load_le({e + 116, 4}) == 0);     // dst_offset
    CHECK(load_le({e + 120, 4}) == 0x10);  // src_offset
    CHECK(e[124] == 8);
    CHECK_THROWS_AS(loader.write_pointer("a", 0, "b", 0, 3), std::invalid_argument);
}
