// SMBIOS tables (DMTF DSP0134 3.x). With SeaBIOS they go through fw_cfg ("etc/smbios/smbios-anchor"
// and "etc/smbios/smbios-tables", SeaBIOS src/fw/biostables.c smbios_romfile_setup), as QEMU does;
// giving SeaBIOS finished tables also spares it its legacy builder, which zeroes a 32 KiB buffer
// byte by byte: measurable when firmware code is emulated. With -bios none minivmm places them
// itself (vmm/direct_boot.cpp): the entry point in the F-segment, where an OS scans for it
// (DSP0134 §5.2.1: 0xF0000-0xFFFFF, 16-byte aligned; Linux drivers/firmware/dmi_scan.c), the
// structure table in the reserved firmware area.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace minivmm {

inline constexpr const char* kSmbiosAnchorFile = "etc/smbios/smbios-anchor";
inline constexpr const char* kSmbiosTablesFile = "etc/smbios/smbios-tables";

struct SmbiosBlobs {
    std::vector<uint8_t> anchor;  // SMBIOS 2.1 (32-bit) entry point, 31 bytes
    std::vector<uint8_t> tables;  // structure table
};

// Type 1 (System Information) naming minivmm, type 32 (System Boot Information) and the type 127
// end marker. SeaBIOS adds its own type 0 (BIOS Information) when none is given; with
// `bios_information` the tables start with minivmm's (for -bios none, where minivmm is the firmware).
SmbiosBlobs build_smbios(const std::string& version, bool bios_information = false);

// The entry point with the structure table's 32-bit address filled in (offset 0x18) and both
// checksums fixed, as firmware does when it places the tables.
std::vector<uint8_t> smbios_anchor_at(std::vector<uint8_t> anchor, uint32_t tables_address);

}  // namespace minivmm
