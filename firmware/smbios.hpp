// SMBIOS tables handed to SeaBIOS through fw_cfg ("etc/smbios/smbios-anchor" and
// "etc/smbios/smbios-tables", SeaBIOS src/fw/biostables.c smbios_romfile_setup), as QEMU does.
// Giving SeaBIOS finished tables also spares it its legacy builder, which zeroes a 32 KiB
// buffer byte by byte: measurable when firmware code is emulated (DMTF DSP0134 3.x).
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
// end marker. SeaBIOS adds its own type 0 (BIOS Information) when none is given.
SmbiosBlobs build_smbios(const std::string& version);

}  // namespace minivmm
