// ACPI table tests: the table-loader script is executed by a small firmware simulator that
// behaves like SeaBIOS's romfile_loader (src/fw/romfile_loader.c): allocate each fw_cfg file at
// an address in its zone, add file addresses into pointer fields, fix checksums. The result is
// then walked like an OS does: RSDP -> RSDT/XSDT -> tables, FADT -> FACS/DSDT.
#include <doctest/doctest.h>

#include <map>
#include <stdexcept>
#include <string>

#include "acpi_loader_sim.hpp"

using namespace minivmm;
using namespace minivmm::acpi_test;

TEST_CASE("checksum helper makes a byte range sum to zero") {
    Bytes b{1, 2, 3, 0, 250};
    b[3] = acpi::checksum(b);
    CHECK(sum8(b.data(), b.size()) == 0);
    CHECK(acpi::checksum(Bytes{}) == 0);
}

TEST_CASE("default tables load through the table-loader and form a valid ACPI tree") {
    AcpiConfig cfg;
    cfg.cpus = 2;
    cfg.pci_mmio32_start = 0x4000'0000;
    const AcpiBlobs blobs = build_acpi(cfg);
    CHECK(blobs.loader.size() % 4096 == 0);
    CHECK(blobs.rsdp.size() == 36);

    FirmwareSim fw = load(blobs);
    CHECK(fw.alloc_order == std::vector<std::string>{kAcpiTablesFile, kAcpiRsdpFile});
    CHECK(fw.addr_of(kAcpiTablesFile) % 64 == 0);
    const Walk w = walk(fw);
    CHECK(w.tables.size() == 2);
    REQUIRE(w.tables.count("FACP") == 1);
    REQUIRE(w.tables.count("APIC") == 1);

    // FADT (§5.2.9) and the tables it points to.
    acpi::Fadt f;
    std::memcpy(&f, fw.table(w.tables.at("FACP"), "FACP"), sizeof f);
    CHECK(f.header.length == 244);
    CHECK(f.header.revision == 3);
    CHECK(f.dsdt == f.x_dsdt);
    CHECK(f.x_firmware_ctrl == 0);
    const uint8_t* facs = fw.at(f.firmware_ctrl, 64);
    CHECK(std::memcmp(facs, "FACS", 4) == 0);
    CHECK(le(facs + 4, 4) == 64);
    CHECK(f.firmware_ctrl % 64 == 0);
    const uint8_t* dsdt = fw.table(f.dsdt, "DSDT");
    CHECK(dsdt[8] == 2);
    CHECK(f.sci_int == platform::kSciIrq);
    CHECK(f.smi_cmd == 0);
    CHECK(f.pm1a_evt_blk == platform::kAcpiPm1aEvt);
    CHECK(f.pm1_evt_len == 4);
    CHECK(f.pm1a_cnt_blk == platform::kAcpiPm1aCnt);
    CHECK(f.pm1_cnt_len == 2);
    CHECK(f.pm_tmr_blk == platform::kAcpiPmTimer);
    CHECK(f.pm_tmr_len == 4);
    CHECK(f.x_pm1a_evt_blk.address == platform::kAcpiPm1aEvt);
    CHECK(f.x_pm1a_evt_blk.bit_width == 32);
    CHECK(f.x_pm1a_cnt_blk.address == platform::kAcpiPm1aCnt);
    CHECK(f.x_pm1a_cnt_blk.bit_width == 16);
    CHECK(f.x_pm_tmr_blk.address == platform::kAcpiPmTimer);
    CHECK(f.x_pm_tmr_blk.space_id == acpi::kGasSystemIo);
    CHECK(f.flags == (acpi::kFadtWbinvd | acpi::kFadtProcC1 | acpi::kFadtSlpButton | acpi::kFadtRtcS4 |
                      acpi::kFadtResetRegSup));
    CHECK((f.flags & acpi::kFadtTmrValExt) == 0);
    CHECK(f.iapc_boot_arch == acpi::kIapcVgaNotPresent);
    CHECK((f.iapc_boot_arch & acpi::kIapc8042) == 0);
    CHECK(f.reset_reg.space_id == acpi::kGasSystemIo);
    CHECK(f.reset_reg.bit_width == 8);
    CHECK(f.reset_reg.address == platform::kResetControlPort);
    CHECK(f.reset_value == platform::kResetValue);
    CHECK(f.preferred_pm_profile == 0);

    // QEMU's order inside etc/acpi/tables: FACS, DSDT, FADT, MADT, RSDT, XSDT.
    const uint64_t base = fw.addr_of(kAcpiTablesFile);
    CHECK(f.firmware_ctrl == base);
    CHECK(f.dsdt == base + 64);
    CHECK(w.tables.at("FACP") > f.dsdt);
    CHECK(w.tables.at("APIC") > w.tables.at("FACP"));
    std::vector<std::string> order;
    for (const auto& [sig, bytes] : blobs.dumps) order.push_back(sig);
    CHECK(order == std::vector<std::string>{"FACS", "DSDT", "FACP", "APIC", "RSDT", "XSDT", "RSDP"});
}

TEST_CASE("MADT lists one enabled LAPIC per CPU, the IOAPIC, the overrides and LINT1 NMI") {
    for (unsigned cpus : {1u, 4u, 255u}) {
        AcpiConfig cfg;
        cfg.cpus = cpus;
        FirmwareSim fw = load(build_acpi(cfg));
        const Walk w = walk(fw);
        const uint8_t* m = fw.table(w.tables.at("APIC"), "APIC");
        const uint32_t len = static_cast<uint32_t>(le(m + 4, 4));
        CHECK(len == 44 + 8 * cpus + 12 + 10 + 10 + 6);
        CHECK(le(m + 36, 4) == platform::kLocalApicBase);
        CHECK(le(m + 40, 4) == acpi::kMadtPcatCompat);
        unsigned lapics = 0, ioapics = 0, nmis = 0;
        std::vector<std::pair<uint8_t, uint32_t>> overrides;
        for (uint32_t at = 44; at < len;) {
            const uint8_t* e = m + at;
            REQUIRE(e[1] >= 2);
            switch (e[0]) {
            case 0:
                CHECK(e[2] == lapics);
                CHECK(e[3] == lapics);
                CHECK(le(e + 4, 4) == 1);
                ++lapics;
                break;
            case 1:
                CHECK(e[2] == 0);
                CHECK(le(e + 4, 4) == platform::kIoApicBase);
                CHECK(le(e + 8, 4) == 0);
                ++ioapics;
                break;
            case 2:
                CHECK(e[2] == 0);
                overrides.emplace_back(e[3], static_cast<uint32_t>(le(e + 4, 4)));
                CHECK(le(e + 8, 2) == (e[3] == 0 ? 0u : 0x000Du));
                break;
            case 4:
                CHECK(e[2] == 0xFF);
                CHECK(le(e + 3, 2) == 0);
                CHECK(e[5] == 1);
                ++nmis;
                break;
            default: FAIL("unexpected MADT entry type");
            }
            at += e[1];
        }
        CHECK(lapics == cpus);
        CHECK(ioapics == 1);
        CHECK(nmis == 1);
        CHECK(overrides == std::vector<std::pair<uint8_t, uint32_t>>{{0, 2}, {platform::kSciIrq, platform::kSciIrq}});
    }
}

TEST_CASE("DSDT contains the devices, _PRT and \\_S5 SeaBIOS and Linux need") {
    AcpiConfig cfg;
    cfg.pci_mmio32_start = 0x2000'0000;
    const Bytes tpm = aml::device("TPM", {aml::name("_HID", aml::string("MSFT0101")),
                                          aml::name("_CRS", aml::resource_template({aml::memory32_fixed(
                                                                aml::Access::read_write, 0xFED40000, 0x5000)}))});
    cfg.extra_dsdt_devices.push_back(tpm);
    const AcpiBlobs blobs = build_acpi(cfg);
    const Bytes& dsdt = blobs.dumps.at(1).second;
    REQUIRE(blobs.dumps.at(1).first == "DSDT");
    CHECK(le(dsdt.data() + 4, 4) == dsdt.size());

    CHECK(contains(dsdt, aml::name("_HID", aml::eisa_id("PNP0A03"))));
    CHECK(contains(dsdt, aml::name("_HID", aml::eisa_id("PNP0501"))));
    CHECK(contains(dsdt, aml::name("_HID", aml::eisa_id("PNP0B00"))));
    CHECK(contains(dsdt, aml::name("_HID", aml::string("QEMU0002"))));
    CHECK(contains(dsdt, tpm));
    CHECK_FALSE(contains(dsdt, aml::eisa_id("PNP0303")));
    CHECK_FALSE(contains(dsdt, aml::eisa_id("PNP0F13")));
    CHECK(contains(dsdt, aml::dword_memory(aml::Cache::non_cacheable, aml::Access::read_write, 0x2000'0000,
                                           static_cast<uint32_t>(platform::kPciMmioWindowEnd - 1))));
    CHECK(contains(dsdt, aml::name("\\_S5", aml::package({aml::integer(platform::kSleepTypeS5),
                                                          aml::integer(platform::kSleepTypeS5), aml::integer(0),
                                                          aml::integer(0)}))));
    // _PRT entries: slots 1..31 x pins 0..3, GSI from the platform's INTx swizzle.
    for (unsigned slot : {1u, 2u, 31u}) {
        for (unsigned pin = 0; pin < 4; ++pin) {
            CHECK(contains(dsdt, aml::package({aml::integer((uint64_t{slot} << 16) | 0xFFFF), aml::integer(pin),
                                               aml::integer(0), aml::integer(platform::pci_intx_gsi(slot, pin))})));
        }
    }
    CHECK_FALSE(contains(dsdt, aml::package({aml::integer(0xFFFF), aml::integer(0), aml::integer(0),
                                             aml::integer(platform::pci_intx_gsi(0, 0))})));
    // No methods: SeaBIOS's DSDT parser skips them (src/fw/dsdt_parser.c).
    CHECK_FALSE(contains(dsdt, Bytes{0x14, 0x09, '_', 'S', 'T', 'A'}));
}

TEST_CASE("an extra table gets listed, checksummed and its pointer patched to etc/tpm/log") {
    AcpiConfig cfg;
    cfg.extra_allocations.push_back({"etc/tpm/log", 1});
    cfg.extra_tables.push_back(tpm2_like_table());
    const AcpiBlobs blobs = build_acpi(cfg);

    FirmwareSim fw = load(blobs, {{"etc/tpm/log", Bytes(0x10000, 0)}});
    CHECK(fw.alloc_order == std::vector<std::string>{"etc/tpm/log", kAcpiTablesFile, kAcpiRsdpFile});
    const Walk w = walk(fw);
    REQUIRE(w.tables.count("TPM2") == 1);
    const uint8_t* t = fw.table(w.tables.at("TPM2"), "TPM2");
    CHECK(le(t + 4, 4) == 76);
    CHECK(le(t + 68, 8) == fw.addr_of("etc/tpm/log"));
    CHECK(le(t + 64, 4) == 0x10000);
    CHECK(w.tables.at("TPM2") > w.tables.at("APIC"));

    std::vector<std::string> order;
    for (const auto& [sig, bytes] : blobs.dumps) order.push_back(sig);
    CHECK(order == std::vector<std::string>{"FACS", "DSDT", "FACP", "APIC", "TPM2", "RSDT", "XSDT", "RSDP"});
}

TEST_CASE("dumps are the table bytes with valid checksums") {
    AcpiConfig cfg;
    cfg.extra_allocations.push_back({"etc/tpm/log", 1});
    cfg.extra_tables.push_back(tpm2_like_table());
    cfg.extra_tables.push_back(tpm2_like_table());  // duplicate signatures get a numbered name
    const AcpiBlobs blobs = build_acpi(cfg);
    size_t offset = 0;
    for (const auto& dump : blobs.dumps) {
        const std::string& sig = dump.first;  // no structured binding: clang cannot capture one in CAPTURE
        const auto& bytes = dump.second;
        CAPTURE(sig);
        if (sig == "RSDP") {
            CHECK(sum8(bytes.data(), 20) == 0);
            CHECK(sum8(bytes.data(), 36) == 0);
            CHECK(std::equal(bytes.begin() + 9, bytes.end() - 4, blobs.rsdp.begin() + 9));
            continue;
        }
        if (sig != "FACS") CHECK(sum8(bytes.data(), bytes.size()) == 0);
        REQUIRE(offset + bytes.size() <= blobs.tables.size());
        Bytes in_blob(blobs.tables.begin() + static_cast<long>(offset),
                      blobs.tables.begin() + static_cast<long>(offset + bytes.size()));
        if (sig != "FACS") {
            CHECK(in_blob[9] == 0);  // left for ADD_CHECKSUM
            in_blob[9] = bytes[9];
        }
        CHECK(in_blob == bytes);
        offset += bytes.size();
    }
    CHECK(offset == blobs.tables.size());
    CHECK(blobs.dumps.at(5).first == "TPM22");
}

TEST_CASE("the simulator notices a broken table-loader script") {
    const AcpiBlobs blobs = build_acpi(AcpiConfig{});
    SUBCASE("loader missing a file") {
        FirmwareSim fw;
        fw.fw_cfg[kAcpiTablesFile] = blobs.tables;
        CHECK_THROWS(fw.run(blobs.loader));
    }
    SUBCASE("extra allocation of a file the VMM did not publish") {
        AcpiConfig cfg;
        cfg.extra_allocations.push_back({"etc/tpm/log", 1});
        cfg.extra_tables.push_back(tpm2_like_table());
        CHECK_THROWS(load(build_acpi(cfg)));
    }
}

TEST_CASE("bad configurations throw std::invalid_argument") {
    auto rejects = [](auto mutate) {
        AcpiConfig cfg;
        mutate(cfg);
        CHECK_THROWS_AS(build_acpi(cfg), std::invalid_argument);
    };
    rejects([](AcpiConfig& c) { c.cpus = 0; });
    rejects([](AcpiConfig& c) { c.cpus = 256; });
    rejects([](AcpiConfig& c) { c.pci_mmio32_start = 0x8'0000; });
    rejects([](AcpiConfig& c) { c.pci_mmio32_start = platform::kPciMmioWindowEnd; });
    rejects([](AcpiConfig& c) { c.extra_dsdt_devices.push_back(aml::name("_HID", aml::integer(1))); });
    rejects([](AcpiConfig& c) {
        Bytes dev = aml::device("TPM", {});
        dev.push_back(0);  // trailing garbage after the Device package
        c.extra_dsdt_devices.push_back(dev);
    });
    rejects([](AcpiConfig& c) { c.extra_dsdt_devices.push_back(Bytes{0x5B}); });
    rejects([](AcpiConfig& c) { c.extra_tables.push_back({Bytes(35, 'A'), {}}); });
    rejects([](AcpiConfig& c) {
        auto t = tpm2_like_table();
        t.bytes[0] = 't';
        c.extra_allocations.push_back({"etc/tpm/log", 1});
        c.extra_tables.push_back(t);
    });
    rejects([](AcpiConfig& c) { c.extra_tables.push_back(tpm2_like_table()); });  // log not allocated
    rejects([](AcpiConfig& c) {
        auto t = tpm2_like_table();
        t.patches[0].offset = 70;  // 70 + 8 > 76
        c.extra_allocations.push_back({"etc/tpm/log", 1});
        c.extra_tables.push_back(t);
    });
    rejects([](AcpiConfig& c) {
        auto t = tpm2_like_table();
        t.patches[0].offset = 4;  // inside the header
        c.extra_allocations.push_back({"etc/tpm/log", 1});
        c.extra_tables.push_back(t);
    });
    rejects([](AcpiConfig& c) {
        auto t = tpm2_like_table();
        t.patches[0].size = 3;
        c.extra_allocations.push_back({"etc/tpm/log", 1});
        c.extra_tables.push_back(t);
    });
    rejects([](AcpiConfig& c) { c.extra_allocations.push_back({"etc/tpm/log", 3}); });
    rejects([](AcpiConfig& c) { c.extra_allocations.push_back({"etc/tpm/log", 0}); });
    rejects([](AcpiConfig& c) { c.extra_allocations.push_back({"", 1}); });
    rejects([](AcpiConfig& c) { c.extra_allocations.push_back({std::string(56, 'x'), 1}); });
    rejects([](AcpiConfig& c) { c.extra_allocations.push_back({kAcpiTablesFile, 1}); });
    rejects([](AcpiConfig& c) {
        c.extra_allocations.push_back({"etc/tpm/log", 1});
        c.extra_allocations.push_back({"etc/tpm/log", 1});
    });

    AcpiConfig ok;
    ok.cpus = 255;
    ok.pci_mmio32_start = platform::kLowMemoryLimit;
    CHECK_NOTHROW(build_acpi(ok));
}
