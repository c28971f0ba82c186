// Builds minivmm's ACPI tables and the SeaBIOS/QEMU table-loader script that installs them
// (SeaBIOS src/fw/romfile_loader.c, QEMU hw/acpi/bios-linker-loader.c): the firmware allocates "etc/acpi/tables" and "etc/acpi/rsdp", patches the
// pointers between tables and fixes every checksum, so the VMM never picks table addresses.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "vmm/base/platform.hpp"

namespace minivmm {

inline constexpr const char* kAcpiTablesFile = "etc/acpi/tables";
inline constexpr const char* kAcpiRsdpFile = "etc/acpi/rsdp";
inline constexpr const char* kTableLoaderFile = "etc/table-loader";

struct AcpiConfig {
    unsigned cpus = 1;  // 1..255: one enabled local APIC per CPU, APIC ids 0..cpus-1
    // Start of the 32-bit PCI MMIO window = end of RAM below 4 GiB
    // (1 MiB .. platform::kLowMemoryLimit); the window ends at platform::kPciMmioWindowEnd.
    uint64_t pci_mmio32_start = platform::kLowMemoryLimit;
    // Encoded AML Device() objects (aml::device(...)) placed under \_SB, e.g. the TPM.
    std::vector<std::vector<uint8_t>> extra_dsdt_devices;

    // ADD_POINTER inside an extra table: the `size`-byte field at `offset` (which holds an offset
    // into `file`, normally 0) gets the address the firmware gave `file`. `file` must be one of
    // extra_allocations.
    struct PointerPatch {
        uint32_t offset;
        uint8_t size;
        std::string file;
    };
    // A complete table (header included; its length field is set to bytes.size() and its
    // checksum computed by the loader), listed in the RSDT and XSDT, e.g. TPM2 or TCPA.
    struct ExtraTable {
        std::vector<uint8_t> bytes;
        std::vector<PointerPatch> patches;
    };
    std::vector<ExtraTable> extra_tables;

    // Additional fw_cfg files the firmware must ALLOCATE (zone HIGH) before the tables, e.g.
    // "etc/tpm/log". The VMM publishes their contents through fw_cfg itself.
    struct Allocation {
        std::string file;
        uint32_t align;
    };
    std::vector<Allocation> extra_allocations;

    // WRITE_POINTER commands, after everything else: the firmware writes the address of `src_file`
    // (one of extra_allocations) into the guest-writable fw_cfg file `dest_file`, e.g. where the
    // TPM event log is, for the measurements of a -kernel boot.
    struct WritePointer {
        std::string dest_file;
        std::string src_file;
    };
    std::vector<WritePointer> write_pointers;
};

struct AcpiBlobs {
    std::vector<uint8_t> tables;  // fw_cfg "etc/acpi/tables"
    std::vector<uint8_t> rsdp;    // fw_cfg "etc/acpi/rsdp"
    std::vector<uint8_t> loader;  // fw_cfg "etc/table-loader"
    // Each table on its own ({"DSDT", bytes}, ... {"RSDP", bytes}), checksums valid, pointer
    // fields still holding offsets into "etc/acpi/tables": for -dump-acpi and iasl -d.
    std::vector<std::pair<std::string, std::vector<uint8_t>>> dumps;
};

// Throws std::invalid_argument on a bad configuration.
AcpiBlobs build_acpi(const AcpiConfig& config);

}  // namespace minivmm
