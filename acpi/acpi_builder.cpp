// Lays the tables out in "etc/acpi/tables" in QEMU's order (FACS, DSDT, FADT, MADT, extra
// tables, RSDT, XSDT) and writes the table-loader script that links them (firmware/table_loader.hpp).
#include "acpi/acpi_builder.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string_view>

#include "acpi/aml.hpp"
#include "acpi/table_builders.hpp"
#include "firmware/table_loader.hpp"

namespace minivmm {

namespace {

using acpi::Bytes;
using Zone = TableLoader::Zone;

constexpr uint32_t kTablesAlign = 64;  // the FACS at offset 0 must be 64-byte aligned (§5.2.10)
constexpr uint32_t kRsdpAlign = 16;    // the OS scans for "RSD PTR " on 16-byte boundaries
constexpr unsigned kMaxCpus = 255;     // xAPIC ids 0..254 (255 is the broadcast id)
constexpr size_t kMaxExtraTableSize = 64 * 1024;
constexpr size_t kChecksumOffset = offsetof(acpi::TableHeader, checksum);

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument("ACPI config: " + what); }

bool is_allocated(const AcpiConfig& config, std::string_view file) {
    return std::any_of(config.extra_allocations.begin(), config.extra_allocations.end(),
                       [&](const AcpiConfig::Allocation& a) { return a.file == file; });
}

void validate(const AcpiConfig& config) {
    if (config.cpus < 1 || config.cpus > kMaxCpus)
        bad("cpus must be 1.." + std::to_string(kMaxCpus) + ", got " + std::to_string(config.cpus));
    if (config.pci_mmio32_start < platform::kBiosShadowEnd || config.pci_mmio32_start > platform::kLowMemoryLimit)
        bad("pci_mmio32_start must lie between 1 MiB and the low-memory limit");
    for (const auto& dev : config.extra_dsdt_devices) {
        // Must be exactly one DefDevice: ExtOpPrefix DeviceOp PkgLength covering the rest.
        const auto len = dev.size() > 2 ? aml::decode_pkg_length(dev.data() + 2, dev.size() - 2) : std::nullopt;
        if (dev.size() < 2 || dev[0] != 0x5B || dev[1] != 0x82 || !len || len->length != dev.size() - 2)
            bad("extra_dsdt_devices entries must be single encoded AML Device() objects");
    }
    for (size_t i = 0; i < config.extra_allocations.size(); ++i) {
        const auto& a = config.extra_allocations[i];
        if (a.file.empty() || a.file.size() >= TableLoader::kFileNameSize)
            bad("bad allocation file name '" + a.file + "'");
        if (a.file == kAcpiTablesFile || a.file == kAcpiRsdpFile || a.file == kTableLoaderFile)
            bad("allocation '" + a.file + "' clashes with a file the ACPI builder owns");
        if (a.align == 0 || (a.align & (a.align - 1)) != 0) bad("allocation '" + a.file + "': alignment not a power of two");
        for (size_t j = 0; j < i; ++j)
            if (config.extra_allocations[j].file == a.file) bad("allocation '" + a.file + "' listed twice");
    }
    for (const auto& t : config.extra_tables) {
        if (t.bytes.size() < sizeof(acpi::TableHeader) || t.bytes.size() > kMaxExtraTableSize)
            bad("extra table size must be 36 bytes .. 64 KiB");
        for (size_t i = 0; i < 4; ++i) {
            const uint8_t c = t.bytes[i];
            if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
                bad("extra table signature must be 4 upper-case letters or digits");
        }
        for (const auto& p : t.patches) {
            if (p.size != 1 && p.size != 2 && p.size != 4 && p.size != 8) bad("pointer patch size must be 1, 2, 4 or 8");
            if (p.offset < sizeof(acpi::TableHeader) || p.offset > t.bytes.size() - p.size)
                bad("pointer patch outside the table body");
            if (!is_allocated(config, p.file)) bad("pointer patch target '" + p.file + "' is not in extra_allocations");
        }
    }
    for (const auto& w : config.write_pointers)
        if (!is_allocated(config, w.src_file)) bad("write pointer source '" + w.src_file + "' is not in extra_allocations");
}

std::string signature_of(const Bytes& table) { return std::string(table.begin(), table.begin() + 4); }

// Fills in the checksum of a copy (for the dumps; the fw_cfg blob keeps 0 for ADD_CHECKSUM).
Bytes checksummed(Bytes table, size_t checksum_offset, size_t length) {
    table[checksum_offset] = 0;
    table[checksum_offset] = acpi::checksum({table.data(), length});
    return table;
}

class Layout {
public:
    // Appends a table to "etc/acpi/tables" and returns its offset.
    uint32_t add(Bytes table, bool has_checksum) {
        const auto offset = static_cast<uint32_t>(tables_.size());
        aml::append(tables_, table);
        const std::string sig = signature_of(table);
        const size_t length = table.size();
        if (has_checksum) table = checksummed(std::move(table), kChecksumOffset, length);
        dump(sig, std::move(table));
        if (has_checksum) pending_checksums_.push_back({offset, static_cast<uint32_t>(tables_.size() - offset)});
        return offset;
    }
    // ADD_POINTER for the field at `field_offset` of the table starting at `table_offset`.
    void pointer(uint32_t table_offset, uint32_t field_offset, uint8_t size, std::string_view target) {
        loader_.add_pointer(kAcpiTablesFile, target, table_offset + field_offset, size);
    }
    // Emits the ADD_CHECKSUM of the most recently added table (after its pointers).
    void checksum_last() {
        const auto [offset, length] = pending_checksums_.back();
        loader_.add_checksum(kAcpiTablesFile, offset + static_cast<uint32_t>(kChecksumOffset), offset, length);
    }
    void dump(const std::string& sig, Bytes bytes) {
        std::string key = sig;
        for (int n = 2; std::any_of(dumps_.begin(), dumps_.end(), [&](const auto& d) { return d.first == key; }); ++n)
            key = sig + std::to_string(n);
        dumps_.emplace_back(key, std::move(bytes));
    }
    TableLoader& loader() { return loader_; }
    Bytes& tables() { return tables_; }
    std::vector<std::pair<std::string, Bytes>>& dumps() { return dumps_; }

private:
    struct Range {
        uint32_t offset, length;
    };
    TableLoader loader_;
    Bytes tables_;
    std::vector<Range> pending_checksums_;
    std::vector<std::pair<std::string, Bytes>> dumps_;
};

}  // namespace

AcpiBlobs build_acpi(const AcpiConfig& config) {
    validate(config);
    Layout l;
    for (const auto& a : config.extra_allocations) l.loader().allocate(a.file, a.align, Zone::high);
    l.loader().allocate(kAcpiTablesFile, kTablesAlign, Zone::high);
    // SeaBIOS looks for the RSDP only in its F-segment zone (src/fw/biostables.c find_acpi_rsdp).
    l.loader().allocate(kAcpiRsdpFile, kRsdpAlign, Zone::fseg);

    const uint32_t facs = l.add(acpi::build_facs(), false);
    const uint32_t dsdt = l.add(acpi::build_dsdt(config), true);
    l.checksum_last();

    const uint32_t fadt = l.add(acpi::build_fadt(facs, dsdt), true);
    l.pointer(fadt, offsetof(acpi::Fadt, firmware_ctrl), 4, kAcpiTablesFile);
    l.pointer(fadt, offsetof(acpi::Fadt, dsdt), 4, kAcpiTablesFile);
    l.pointer(fadt, offsetof(acpi::Fadt, x_dsdt), 8, kAcpiTablesFile);
    l.checksum_last();

    std::vector<uint32_t> listed{fadt, l.add(acpi::build_madt(config.cpus), true)};
    l.checksum_last();

    for (const auto& t : config.extra_tables) {
        Bytes table = t.bytes;
        const auto length = static_cast<uint32_t>(table.size());
        std::memcpy(table.data() + offsetof(acpi::TableHeader, length), &length, sizeof length);
        table[kChecksumOffset] = 0;
        const uint32_t at = l.add(std::move(table), true);
        for (const auto& p : t.patches) l.pointer(at, p.offset, p.size, p.file);
        l.checksum_last();
        listed.push_back(at);
    }

    const uint32_t rsdt = l.add(acpi::build_sdt("RSDT", acpi::kRsdtEntrySize, listed), true);
    for (size_t i = 0; i < listed.size(); ++i)
        l.pointer(rsdt, static_cast<uint32_t>(sizeof(acpi::TableHeader) + i * acpi::kRsdtEntrySize), 4, kAcpiTablesFile);
    l.checksum_last();
    const uint32_t xsdt = l.add(acpi::build_sdt("XSDT", acpi::kXsdtEntrySize, listed), true);
    for (size_t i = 0; i < listed.size(); ++i)
        l.pointer(xsdt, static_cast<uint32_t>(sizeof(acpi::TableHeader) + i * acpi::kXsdtEntrySize), 8, kAcpiTablesFile);
    l.checksum_last();

    // RSDP (§5.2.5.3): pointers first, then the 20-byte checksum, then the extended checksum
    // that covers the first one.
    AcpiBlobs out;
    out.rsdp = acpi::build_rsdp(rsdt, xsdt);
    l.loader().add_pointer(kAcpiRsdpFile, kAcpiTablesFile, offsetof(acpi::Rsdp, rsdt_address), 4);
    l.loader().add_pointer(kAcpiRsdpFile, kAcpiTablesFile, offsetof(acpi::Rsdp, xsdt_address), 8);
    l.loader().add_checksum(kAcpiRsdpFile, offsetof(acpi::Rsdp, checksum), 0, acpi::kRsdpV1Size);
    l.loader().add_checksum(kAcpiRsdpFile, offsetof(acpi::Rsdp, extended_checksum), 0, sizeof(acpi::Rsdp));
    Bytes rsdp_dump = checksummed(out.rsdp, offsetof(acpi::Rsdp, checksum), acpi::kRsdpV1Size);
    l.dump("RSDP", checksummed(std::move(rsdp_dump), offsetof(acpi::Rsdp, extended_checksum), sizeof(acpi::Rsdp)));

    // SeaBIOS romfile_loader_write_pointer: an 8-byte address, written by fw_cfg DMA.
    for (const auto& w : config.write_pointers) l.loader().write_pointer(w.dest_file, 0, w.src_file, 0, 8);

    out.tables = std::move(l.tables());
    out.loader = l.loader().blob();
    out.dumps = std::move(l.dumps());
    return out;
}

}  // namespace minivmm
