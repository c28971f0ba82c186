// ACPI table tests: the table-loader script is executed by a small firmware simulator that
// behaves like SeaBIOS's romfile_loader (src/fw/romfile_loader.c): allocate each fw_cfg file at
// an address in its zone, add file addresses into pointer fields, fix checksums. The result is
// then walked like an OS does: RSDP -> RSDT/XSDT -> tables, FADT -> FACS/DSDT.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>

#include "acpi/acpi_builder.hpp"
#include "acpi/aml.hpp"
#include "acpi/tables.hpp"
#include "firmware/table_loader.hpp"

using namespace minivmm;
using Bytes = std::vector<uint8_t>;

namespace {

uint64_t le(const uint8_t* p, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= uint64_t{p[i]} << (8 * i);
    return v;
}

uint8_t sum8(const uint8_t* p, size_t n) {
    uint8_t s = 0;
    for (size_t i = 0; i < n; ++i) s = static_cast<uint8_t>(s + p[i]);
    return s;
}

bool contains(const Bytes& hay, const Bytes& needle) {
    return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) != hay.end();
}

class FirmwareSim {
public:
    struct Region {
        uint64_t addr;
        Bytes data;
    };
    std::map<std::string, Bytes> fw_cfg;  // the files the VMM publishes
    std::map<std::string, Region> mem;    // the allocated copies
    std::vector<std::string> alloc_order;

    void run(const Bytes& loader) {
        if (loader.size() % 128 != 0) throw std::runtime_error("loader size not a multiple of 128");
        for (size_t at = 0; at < loader.size(); at += 128) {
            const uint8_t* e = loader.data() + at;
            switch (le(e, 4)) {
            case 1: {
                const std::string file = name(e + 4);
                const auto it = fw_cfg.find(file);
                if (it == fw_cfg.end() || it->second.empty()) throw std::runtime_error("ALLOCATE of missing " + file);
                const uint64_t align = std::max<uint64_t>(le(e + 60, 4), 16);
                uint64_t& next = e[64] == 2 ? next_fseg_ : next_high_;
                if (e[64] != 1 && e[64] != 2) throw std::runtime_error("bad zone");
                const uint64_t addr = (next + align - 1) / align * align;
                next = addr + it->second.size();
                if (e[64] == 2 && next > 0x100000) throw std::runtime_error("FSEG full");
                mem[file] = Region{addr, it->second};
                alloc_order.push_back(file);
                break;
            }
            case 2: {
                Region& dest = region(name(e + 4));
                const Region& src = region(name(e + 60));
                const uint64_t off = le(e + 116, 4), size = e[120];
                if ((size != 1 && size != 2 && size != 4 && size != 8) || off + size > dest.data.size())
                    throw std::runtime_error("bad ADD_POINTER");
                uint64_t v = le(dest.data.data() + off, size) + src.addr;
                for (size_t i = 0; i < size; ++i) dest.data[off + i] = static_cast<uint8_t>(v >> (8 * i));
                break;
            }
            case 3: {
                Region& r = region(name(e + 4));
                const uint64_t off = le(e + 60, 4), start = le(e + 64, 4), len = le(e + 68, 4);
                if (off >= r.data.size() || start > r.data.size() || len > r.data.size() - start)
                    throw std::runtime_error("bad ADD_CHECKSUM");
                r.data[off] = static_cast<uint8_t>(r.data[off] - sum8(r.data.data() + start, len));
                break;
            }
            default: break;  // SeaBIOS skips unknown commands (the zero padding)
            }
        }
    }

    // Guest-physical read of [addr, addr + len) that must lie inside one allocated file.
    const uint8_t* at(uint64_t addr, size_t len) const {
        for (const auto& [file, r] : mem)
            if (addr >= r.addr && addr - r.addr + len <= r.data.size()) return r.data.data() + (addr - r.addr);
        throw std::runtime_error("pointer to unallocated memory");
    }
    // A whole table at `addr`, checked for signature, length and checksum.
    const uint8_t* table(uint64_t addr, const char* sig) const {
        const uint8_t* h = at(addr, sizeof(acpi::TableHeader));
        CHECK(std::string(reinterpret_cast<const char*>(h), 4) == sig);
        const uint32_t len = static_cast<uint32_t>(le(h + 4, 4));
        REQUIRE(len >= sizeof(acpi::TableHeader));
        const uint8_t* t = at(addr, len);
        CHECK(sum8(t, len) == 0);
        return t;
    }
    uint64_t addr_of(const std::string& file) const { return mem.at(file).addr; }

private:
    static std::string name(const uint8_t* p) {
        if (p[55] != 0) throw std::runtime_error("file name not NUL-terminated");
        return std::string(reinterpret_cast<const char*>(p));
    }
    Region& region(const std::string& file) {
        const auto it = mem.find(file);
        if (it == mem.end()) throw std::runtime_error("reference to unallocated " + file);
        return it->second;
    }
    uint64_t next_high_ = 0x7FFE'0000;
    uint64_t next_fseg_ = 0xF5000;
};

FirmwareSim load(const AcpiBlobs& blobs, std::map<std::string, Bytes> extra_files = {}) {
    FirmwareSim fw;
    fw.fw_cfg = std::move(extra_files);
    fw.fw_cfg[kAcpiTablesFile] = blobs.tables;
    fw.fw_cfg[kAcpiRsdpFile] = blobs.rsdp;
    fw.run(blobs.loader);
    return fw;
}

struct Walk {
    std::map<std::string, uint64_t> tables;  // signature -> address, from the XSDT
};

// RSDP -> RSDT and XSDT (must list the same tables) -> every table.
Walk walk(const FirmwareSim& fw) {
    const uint64_t rsdp_addr = fw.addr_of(kAcpiRsdpFile);
    CHECK(rsdp_addr >= 0xE0000);
    CHECK(rsdp_addr + sizeof(acpi::Rsdp) <= 0x100000);
    CHECK(rsdp_addr % 16 == 0);
    acpi::Rsdp rsdp;
    std::memcpy(&rsdp, fw.at(rsdp_addr, sizeof rsdp), sizeof rsdp);
    CHECK(std::memcmp(rsdp.signature, "RSD PTR ", 8) == 0);
    CHECK(rsdp.revision == 2);
    CHECK(rsdp.length == 36);
    CHECK(sum8(reinterpret_cast<const uint8_t*>(&rsdp), 20) == 0);
    CHECK(sum8(reinterpret_cast<const uint8_t*>(&rsdp), 36) == 0);

    const uint8_t* rsdt = fw.table(rsdp.rsdt_address, "RSDT");
    const uint8_t* xsdt = fw.table(rsdp.xsdt_address, "XSDT");
    const size_t n = (le(rsdt + 4, 4) - 36) / 4;
    REQUIRE(le(xsdt + 4, 4) == 36 + 8 * n);
    Walk w;
    for (size_t i = 0; i < n; ++i) {
        const uint64_t a32 = le(rsdt + 36 + 4 * i, 4), a64 = le(xsdt + 36 + 8 * i, 8);
        CHECK(a32 == a64);
        const std::string sig(reinterpret_cast<const char*>(fw.at(a64, 4)), 4);
        fw.table(a64, sig.c_str());
        w.tables[sig] = a64;
    }
    return w;
}

AcpiConfig::ExtraTable tpm2_like_table() {
    // A TPM2-shaped table (reference §2.3): LASA at +68 points into "etc/tpm/log".
    AcpiConfig::ExtraTable t;
    t.bytes.assign(76, 0);
    std::memcpy(t.bytes.data(), "TPM2", 4);
    t.bytes[8] = 4;
    t.bytes[48] = 6;  // start method: TIS
    t.bytes[66] = 1;  // LAML 0x10000
    t.patches.push_back({68, 8, "etc/tpm/log"});
    return t;
}

}  // namespace

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
    // No methods: SeaBIOS's DSDT parser skips them (reference §4.4).
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
    for (const auto& [sig, bytes] : blobs.dumps) {
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
