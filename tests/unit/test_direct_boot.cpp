// -bios none's firmware work without KVM: the 64-bit entry's zero page, GDT and page tables
// (firmware/linux_boot64.hpp), the kernel's e820 map, the table loader run by minivmm
// (firmware/table_loader_run.hpp) on the real ACPI tables, walked as an OS walks them, PCI BAR
// assignment (firmware/pci_resources.hpp) on the real host bridge, and the firmware's events
// (firmware/firmware_events.hpp).
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "acpi/acpi_builder.hpp"
#include "acpi/tpm_tables.hpp"
#include "devices/bus.hpp"
#include "devices/pci_function.hpp"
#include "devices/pci_host.hpp"
#include "firmware/e820.hpp"
#include "firmware/firmware_events.hpp"
#include "firmware/linux_boot64.hpp"
#include "firmware/pci_resources.hpp"
#include "firmware/pvh.hpp"
#include "firmware/table_loader_run.hpp"
#include "firmware/tcg_event_log.hpp"
#include "vmm/base/bytes.hpp"
#include "vmm/base/guest_memory.hpp"

using namespace minivmm;
namespace lb = minivmm::linux_boot;
namespace lb64 = minivmm::linux_boot64;

namespace {

// The header fields linux_boot::plan reads, for a relocatable 64-bit bzImage of `protocol`.
std::vector<uint8_t> bzimage(uint16_t protocol, uint16_t xloadflags) {
    std::vector<uint8_t> k(28 * 512 + 0x10000, 0);
    auto put = [&](size_t at, size_t n, uint64_t v) { store_le(std::span(k).subspan(at, n), v); };
    k[lb::hdr::kSetupSects] = 27;
    put(lb::hdr::kBootFlag, 2, 0xAA55);
    k[0x201] = 0x6A;  // the jump at 0x200: the header ends at 0x26C
    put(lb::hdr::kHeader, 4, 0x53726448);
    put(lb::hdr::kVersion, 2, protocol);
    k[lb::hdr::kLoadFlags] = lb::hdr::kLoadedHigh;
    put(lb::hdr::kInitrdAddrMax, 4, 0x7FFFFFFF);
    put(lb::hdr::kCmdlineSize, 4, 2047);
    put(lb::hdr::kInitSize, 4, 0x100000);
    put(lb::hdr::kSysSize, 4, 0x10000 / 16);
    put(lb::hdr::kPrefAddress, 8, 16ull << 20);
    put(lb::hdr::kKernelAlignment, 4, 2u << 20);
    k[lb::hdr::kRelocatableKernel] = 1;
    put(lb64::kXLoadFlags, 2, xloadflags);
    return k;
}

std::string entry_error(uint16_t protocol, uint16_t xloadflags) {
    try {
        lb64::check_64bit_entry(lb::plan(bzimage(protocol, xloadflags), 0, "console=ttyS0", 512ull << 20));
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "";
}

// Guest RAM of `size` bytes at 0, in a host vector.
struct Ram {
    std::vector<uint8_t> bytes;
    GuestMemory memory;
    explicit Ram(uint64_t size) : bytes(size, 0), memory({{0, size, bytes.data()}}) {}
    uint64_t u64(uint64_t at) const { return load_le(std::span(bytes).subspan(at, 8)); }
    uint32_t u32(uint64_t at) const { return static_cast<uint32_t>(load_le(std::span(bytes).subspan(at, 4))); }
};

uint8_t sum8(std::span<const uint8_t> bytes) {
    uint8_t s = 0;
    for (uint8_t b : bytes) s = static_cast<uint8_t>(s + b);
    return s;
}

}  // namespace

TEST_CASE("the 64-bit entry needs protocol 2.12 and XLF_KERNEL_64") {
    CHECK(entry_error(0x020F, lb64::kXlfKernel64) == "");
    CHECK(entry_error(0x020F, 0).find("XLF_KERNEL_64 is clear") != std::string::npos);
    CHECK(entry_error(0x020B, lb64::kXlfKernel64).find("boot protocol 2.11 has no 64-bit entry") != std::string::npos);
}

TEST_CASE("the zero page carries the patched setup header, the e820 map and the RSDP") {
    const lb::Plan plan = lb::plan(bzimage(0x020F, lb64::kXlfKernel64), 0x1000, "console=ttyS0", 512ull << 20);
    const std::vector<E820Entry> e820 = build_direct_boot_e820(512ull << 20, 0, false, 1 << 20);
    const std::vector<uint8_t> zp = lb64::boot_params(plan, e820, 0xE0000);
    REQUIRE(zp.size() == 4096);
    CHECK(load_le(std::span(zp).subspan(lb64::zp::kAcpiRsdpAddr, 8)) == 0xE0000);
    CHECK(zp[lb64::zp::kE820Entries] == e820.size());
    // The header as plan() patched it: loader type, command line, initrd; nothing past its end.
    CHECK(zp[lb::hdr::kTypeOfLoader] == lb::kLoaderType);
    CHECK(load_le(std::span(zp).subspan(lb::hdr::kCmdLinePtr, 4)) == lb::kCmdlineAddr);
    CHECK(load_le(std::span(zp).subspan(lb::hdr::kRamdiskImage, 4)) == plan.initrd_addr);
    CHECK(load_le(std::span(zp).subspan(lb::hdr::kRamdiskSize, 4)) == 0x1000);
    CHECK(zp[0x26C] == 0);
    // e820 entry 3: RAM from 1 MiB to the firmware area.
    const auto entry = std::span(zp).subspan(lb64::zp::kE820Table + 3 * kE820EntrySize, kE820EntrySize);
    CHECK(load_le(entry.subspan(0, 8)) == 0x100000);
    CHECK(load_le(entry.subspan(8, 8)) == (511ull << 20) - 0x100000);
    CHECK(load_le(entry.subspan(16, 4)) == kE820Ram);
}

TEST_CASE("the kernel's e820 map keeps the low area, the F-segment and the firmware area out of RAM") {
    const std::vector<E820Entry> map = build_direct_boot_e820(3ull << 30, 1ull << 30, true, 1 << 20);
    for (size_t i = 1; i < map.size(); ++i) CHECK(map[i - 1].addr + map[i - 1].size <= map[i].addr);  // sorted, disjoint
    auto type_at = [&](uint64_t a) {
        for (const E820Entry& e : map)
            if (a >= e.addr && a - e.addr < e.size) return e.type;
        return 0u;
    };
    CHECK(type_at(0x9FBFF) == kE820Ram);
    CHECK(type_at(0x9FC00) == kE820Reserved);
    CHECK(type_at(0xB8000) == 0u);
    CHECK(type_at(0xF0000) == kE820Reserved);
    CHECK(type_at(0x100000) == kE820Ram);
    CHECK(type_at((3ull << 30) - (1 << 20) - 1) == kE820Ram);
    CHECK(type_at((3ull << 30) - (1 << 20)) == kE820Reserved);
    CHECK(type_at(0xFED41000) == kE820Reserved);
    CHECK(type_at(0xFEFFC000) == kE820Reserved);
    CHECK(type_at(1ull << 32) == kE820Ram);
    CHECK_THROWS_AS(build_direct_boot_e820(1 << 20, 0, false, 1 << 20), std::invalid_argument);
}

TEST_CASE("the page tables identity-map 4 GiB with 2 MiB pages and the GDT is flat 64-bit") {
    Ram ram(1 << 20);
    REQUIRE(ram.memory.write(lb64::kPageTablesAddr, lb64::page_tables()));
    // Walk as the MMU does (Intel SDM Vol. 3 §4.5): PML4 -> PDPT -> PD (PS=1).
    for (uint64_t va : {0x0ull, 0x100200ull, 0x1234'5678ull, 0xBFFF'F000ull, 0xFEE0'0000ull, 0xFFFF'FFFFull}) {
        const uint64_t pml4e = ram.u64(lb64::kPageTablesAddr + 8 * ((va >> 39) & 511));
        REQUIRE((pml4e & 1) == 1);
        const uint64_t pdpte = ram.u64((pml4e & ~0xFFFull) + 8 * ((va >> 30) & 511));
        REQUIRE((pdpte & 1) == 1);
        const uint64_t pde = ram.u64((pdpte & ~0xFFFull) + 8 * ((va >> 21) & 511));
        REQUIRE((pde & 0x83) == 0x83);
        CHECK((pde & ~0x1FFFFFull & ((1ull << 52) - 1)) + (va & 0x1FFFFF) == va);
    }
    CHECK(lb64::kPageTablesAddr + lb64::kPageTablesSize <= lb::kRealModeAddr);
    const std::vector<uint8_t> gdt = lb64::gdt();
    REQUIRE(gdt.size() == 32);
    const uint64_t code = load_le(std::span(gdt).subspan(lb64::kCodeSelector, 8));
    const uint64_t data = load_le(std::span(gdt).subspan(lb64::kDataSelector, 8));
    CHECK(((code >> 53) & 1) == 1);   // L: 64-bit code
    CHECK(((code >> 47) & 1) == 1);   // present
    CHECK(((code >> 40) & 0xF) == 0xB);
    CHECK(((data >> 40) & 0xF) == 0x3);
    CHECK(((data >> 54) & 1) == 1);   // D/B
}

TEST_CASE("minivmm runs the table loader as SeaBIOS does: tables in the high zone, the RSDP in the F-segment") {
    AcpiConfig config;
    config.cpus = 2;
    config.pci_mmio32_start = 512ull << 20;
    add_tpm_acpi(config, TpmVersion::v2_0, TpmInterface::tis, 13, true);
    const AcpiBlobs acpi = build_acpi(config);
    const std::map<std::string, std::vector<uint8_t>> files{
        {kAcpiTablesFile, acpi.tables}, {kAcpiRsdpFile, acpi.rsdp}, {kTpmLogFile, std::vector<uint8_t>(kTpmLogSize, 0)}};
    Ram ram(512ull << 20);
    const LoaderZones zones{(512ull << 20) - (1 << 20), 512ull << 20, 0xE0000, 0x100000};
    const LoaderResult r = run_table_loader(acpi.loader, files, zones, ram.memory);
    REQUIRE_MESSAGE(r.ok, r.error);
    const uint64_t rsdp = r.addresses.at(kAcpiRsdpFile), log = r.addresses.at(kTpmLogFile);
    CHECK(rsdp >= 0xE0000);
    CHECK(rsdp % 16 == 0);  // ACPI 6.5 §5.2.5.1: on a 16-byte boundary, where Linux scans
    CHECK(std::memcmp(ram.bytes.data() + rsdp, "RSD PTR ", 8) == 0);
    CHECK(sum8(std::span(ram.bytes).subspan(rsdp, 20)) == 0);
    CHECK(sum8(std::span(ram.bytes).subspan(rsdp, 36)) == 0);
    // RSDP -> XSDT -> every table, each checksummed; the TPM2 table's LASA is the log's address.
    const uint64_t xsdt = ram.u64(rsdp + 24);
    REQUIRE(xsdt >= zones.high_base);
    REQUIRE(std::memcmp(ram.bytes.data() + xsdt, "XSDT", 4) == 0);
    const uint32_t xsdt_len = ram.u32(xsdt + 4);
    CHECK(sum8(std::span(ram.bytes).subspan(xsdt, xsdt_len)) == 0);
    bool tpm2 = false;
    for (uint64_t at = xsdt + 36; at < xsdt + xsdt_len; at += 8) {
        const uint64_t table = ram.u64(at);
        REQUIRE(table >= zones.high_base);
        REQUIRE(table < zones.high_end);
        CHECK(sum8(std::span(ram.bytes).subspan(table, ram.u32(table + 4))) == 0);
        if (std::memcmp(ram.bytes.data() + table, "TPM2", 4) == 0) {
            tpm2 = true;
            CHECK(ram.u32(table + 64) == kTpmLogSize);  // LAML
            CHECK(ram.u64(table + 68) == log);          // LASA
        }
    }
    CHECK(tpm2);
    CHECK(r.high_used <= 1u << 20);
}

TEST_CASE("a bad table-loader script is one error line and nothing written") {
    AcpiConfig config;
    const AcpiBlobs acpi = build_acpi(config);
    Ram ram(16 << 20);
    const LoaderZones zones{15 << 20, 16 << 20, 0xE0000, 0x100000};
    const std::map<std::string, std::vector<uint8_t>> files{{kAcpiTablesFile, acpi.tables}, {kAcpiRsdpFile, acpi.rsdp}};
    auto error = [&](std::vector<uint8_t> script, const std::map<std::string, std::vector<uint8_t>>& f) {
        std::fill(ram.bytes.begin(), ram.bytes.end(), 0);
        const LoaderResult r = run_table_loader(script, f, zones, ram.memory);
        CHECK(std::all_of(ram.bytes.begin(), ram.bytes.end(), [](uint8_t b) { return b == 0; }));
        return r.ok ? std::string() : r.error;
    };
    std::vector<uint8_t> script = acpi.loader;
    CHECK(error(std::vector<uint8_t>(script.begin(), script.end() - 1), files).find("whole number") != std::string::npos);
    CHECK(error(script, {{kAcpiRsdpFile, acpi.rsdp}}).find("no such file") != std::string::npos);
    // An ADD_POINTER (command 2) whose field lies past its file's end.
    for (size_t at = 0; at < script.size(); at += 128)
        if (script[at] == 2) {
            store_le(std::span(script).subspan(at + 116, 4), 0xFFFF'FFF0);
            break;
        }
    CHECK(error(script, files).find("outside the file") != std::string::npos);
    // A zone too small for the tables.
    const LoaderResult tiny = run_table_loader(acpi.loader, files, {15 << 20, (15 << 20) + 64, 0xE0000, 0x100000}, ram.memory);
    CHECK(!tiny.ok);
    CHECK(tiny.error.find("do not fit the high zone") != std::string::npos);
}

namespace {

struct NullDevice final : Device {
    std::string_view name() const noexcept override { return "bar"; }
    void read(uint64_t, std::span<uint8_t> data) noexcept override { std::fill(data.begin(), data.end(), 0); }
    void write(uint64_t, std::span<const uint8_t>) noexcept override {}
};

struct Function final : PciFunction {
    NullDevice small, big, io, wide;
    Function() : PciFunction("fn", PciIdentity{0x1AF4, 0x1042, 1, 0x010000, 0x1AF4, 2, 1}) {
        add_bar(0, PciBarType::mem32, 0x1000, small);
        add_bar(1, PciBarType::io, 0x40, io);
        add_bar(2, PciBarType::mem64, 0x10000, wide);  // BAR2 and BAR3
        add_bar(4, PciBarType::mem32, 0x4000, big);
    }
};

struct HostAccess final : PciConfigAccess {
    PciHost& host;
    explicit HostAccess(PciHost& h) : host(h) {}
    void select(uint8_t slot, uint16_t reg) {
        std::array<uint8_t, 4> a{};
        store_le(a, 0x8000'0000u | uint32_t{slot} << 11 | reg);
        host.write(0, a);
    }
    uint32_t read32(uint8_t slot, uint16_t reg) override {
        select(slot, reg);
        std::array<uint8_t, 4> d{};
        host.read(4, d);
        return static_cast<uint32_t>(load_le(d));
    }
    void write32(uint8_t slot, uint16_t reg, uint32_t value) override {
        select(slot, reg);
        std::array<uint8_t, 4> d{};
        store_le(d, value);
        host.write(4, d);
    }
};

}  // namespace

TEST_CASE("PCI BARs get naturally aligned addresses in the windows and decoding is enabled") {
    Bus pio{"pio"}, mmio{"mmio"};
    PciHost host(pio, mmio);
    Function a, b;
    host.add(1, a);
    host.add(5, b);
    HostAccess access(host);
    REQUIRE(assign_pci_resources(access, {0xC000'0000, 0xFEC0'0000, 0xC000, 0x10000}) == "");
    for (uint8_t slot : {uint8_t{1}, uint8_t{5}}) {
        Function& f = slot == 1 ? a : b;
        CHECK((access.read32(slot, 0x04) & 3) == 3);  // I/O and memory decode on
        const uint32_t bar0 = access.read32(slot, 0x10) & ~0xFu;
        const uint32_t io = access.read32(slot, 0x14) & ~0x3u;
        const uint64_t wide = (access.read32(slot, 0x18) & ~0xFull) | uint64_t{access.read32(slot, 0x1C)} << 32;
        const uint32_t bar4 = access.read32(slot, 0x20) & ~0xFu;
        CHECK(bar0 >= 0xC000'0000);
        CHECK(bar0 % 0x1000 == 0);
        CHECK(wide % 0x10000 == 0);
        CHECK(wide < 0xFEC0'0000);
        CHECK(bar4 % 0x4000 == 0);
        CHECK(io >= 0xC000);
        CHECK(io % 0x40 == 0);
        // Mapped where assigned: the host bridge maps on the buses as the guest's writes would.
        CHECK(mmio.find(bar0, 4).device == &f.small);
        CHECK(mmio.find(wide, 4).device == &f.wide);
        CHECK(mmio.find(bar4 + 0x3FFC, 4).device == &f.big);
        CHECK(pio.find(io, 1).device == &f.io);
    }
    // A window too small: one line, and nothing enabled.
    Bus pio2{"pio"}, mmio2{"mmio"};
    PciHost host2(pio2, mmio2);
    Function c;
    host2.add(1, c);
    HostAccess access2(host2);
    CHECK(assign_pci_resources(access2, {0xC000'0000, 0xC000'8000, 0xC000, 0x10000}).find("does not fit the memory window") !=
          std::string::npos);
    CHECK((access2.read32(1, 0x04) & 3) == 0);
}

TEST_CASE("the firmware's events: CRTM version in PCR 0, ACPI and SMBIOS in PCR 1, separators in PCRs 0-7") {
    const std::pair<std::string, std::vector<uint8_t>> files[] = {
        {"etc/acpi/rsdp", {1, 2, 3}}, {"etc/acpi/tables", {4, 5}}, {"etc/smbios/smbios-tables", {6}}};
    const std::vector<FirmwareEvent> events = firmware_events("1.2.3", files);
    REQUIRE(events.size() == 1 + 3 + 8);
    CHECK(events[0].pcr == 0);
    CHECK(events[0].type == tcg_log::kEvSCrtmVersion);
    const std::vector<uint8_t> ucs2{'m', 0, 'i', 0, 'n', 0, 'i', 0, 'v', 0, 'm', 0, 'm', 0, ' ', 0, '1', 0, '.', 0,
                                    '2', 0, '.', 0, '3', 0, 0, 0};
    CHECK(events[0].data == ucs2);
    CHECK(events[0].measured == ucs2);
    CHECK(events[1].pcr == 1);
    CHECK(events[1].type == tcg_log::kEvPlatformConfigFlags);
    CHECK(std::string(reinterpret_cast<const char*>(events[1].data.data())) == "etc/acpi/rsdp");
    CHECK(events[2].measured == std::vector<uint8_t>{4, 5});
    CHECK(events[3].pcr == 1);
    CHECK(std::string(reinterpret_cast<const char*>(events[3].data.data())) == "etc/smbios/smbios-tables");
    CHECK(events[3].measured == std::vector<uint8_t>{6});
    for (uint32_t pcr = 0; pcr <= 7; ++pcr) {
        const FirmwareEvent& e = events[4 + pcr];
        CHECK(e.pcr == pcr);
        CHECK(e.type == tcg_log::kEvSeparator);
        CHECK(e.data == std::vector<uint8_t>(4, 0));
    }
}

TEST_CASE("PVH: hvm_start_info version 1 with the initrd module and the memory map, and a 32-bit GDT with a TSS") {
    const std::vector<E820Entry> map = build_direct_boot_e820(512ull << 20, 0, false, 1 << 20);
    const std::vector<uint8_t> block = pvh::start_info(0x20000, pvh::Module{0x1000'0000, 0x1234}, 0xE0000, map);
    auto u32 = [&](uint64_t a) { return load_le(std::span(block).subspan(a - pvh::kStartInfoAddr, 4)); };
    auto u64 = [&](uint64_t a) { return load_le(std::span(block).subspan(a - pvh::kStartInfoAddr, 8)); };
    // xen/include/public/arch-x86/hvm/start_info.h: magic, version, flags, nr_modules, modlist_paddr,
    // cmdline_paddr, rsdp_paddr, memmap_paddr, memmap_entries.
    CHECK(u32(pvh::kStartInfoAddr) == pvh::kStartInfoMagic);
    CHECK(u32(pvh::kStartInfoAddr + 4) == 1);
    CHECK(u32(pvh::kStartInfoAddr + 12) == 1);
    CHECK(u64(pvh::kStartInfoAddr + 16) == pvh::kModlistAddr);
    CHECK(u64(pvh::kStartInfoAddr + 24) == 0x20000);
    CHECK(u64(pvh::kStartInfoAddr + 32) == 0xE0000);
    CHECK(u64(pvh::kStartInfoAddr + 40) == pvh::kMemmapAddr);
    CHECK(u32(pvh::kStartInfoAddr + 48) == map.size());
    CHECK(u64(pvh::kModlistAddr) == 0x1000'0000);
    CHECK(u64(pvh::kModlistAddr + 8) == 0x1234);
    for (size_t i = 0; i < map.size(); ++i) {
        const uint64_t e = pvh::kMemmapAddr + i * pvh::kMemmapEntrySize;
        CHECK(u64(e) == map[i].addr);
        CHECK(u64(e + 8) == map[i].size);
        CHECK(u32(e + 16) == map[i].type);
    }
    CHECK(pvh::kStartInfoAddr + block.size() <= linux_boot64::kBootParamsAddr);  // clear of the 64-bit entry's pages
    const std::vector<uint8_t> none = pvh::start_info(0x20000, std::nullopt, 0xE0000, map);
    CHECK(load_le(std::span(none).subspan(12, 4)) == 0);
    CHECK(load_le(std::span(none).subspan(16, 8)) == 0);
    const std::vector<uint8_t> gdt = pvh::gdt();
    const uint64_t code = load_le(std::span(gdt).subspan(pvh::kCodeSelector, 8));
    const uint64_t tss = load_le(std::span(gdt).subspan(pvh::kTssSelector, 8));
    CHECK(((code >> 54) & 1) == 1);  // D: 32-bit code
    CHECK(((code >> 53) & 1) == 0);  // not 64-bit
    CHECK(((tss >> 40) & 0xF) == 0xB);
    CHECK((tss & 0xFFFF) == 0x67);
}
