// The -kernel boot option ROM (firmware/linux_boot_rom.S, assembled at build time by
// firmware/make_option_rom.py), published to SeaBIOS as fw_cfg file kLinuxBootRomFile.
#pragma once

#include <cstdint>
#include <span>

namespace minivmm {

inline constexpr const char* kLinuxBootRomFile = "genroms/minivmm-linuxboot.bin";
// SeaBIOS src/boot.c bootprio_find_named_rom matches "/rom@<fw_cfg file name>".
inline constexpr const char* kLinuxBootRomBootPath = "/rom@genroms/minivmm-linuxboot.bin";

// The ROM image: a whole number of 512-byte blocks, checksums set.
std::span<const uint8_t> linux_boot_rom();

}  // namespace minivmm
