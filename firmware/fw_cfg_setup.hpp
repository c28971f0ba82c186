// What minivmm tells SeaBIOS through fw_cfg: CPU count, RAM map, boot order, boot menu, serial
// console and the ACPI tables (SeaBIOS src/fw/paravirt.c, src/boot.c, src/sercon.c). Every item
// SeaBIOS reads with romfile_loadint is a 1/2/4/8-byte little-endian integer (SeaBIOS
// src/romfile.c ignores any other size and uses its default).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "devices/fw_cfg.hpp"

namespace minivmm {

struct FwCfgSetup {
    uint64_t ram_below_4g = 0, ram_above_4g = 0;
    unsigned cpus = 1;
    std::optional<uint32_t> boot_menu_wait_ms;  // nullopt: no menu, no delay
    bool serial_console = true;                 // SeaBIOS screen output to COM1 (etc/sercon-port)
    bool disk = true;                           // the virtio-blk disk is in the boot order
    bool tpm_crb_buffer = false;                // e820 reserves the TPM CRB's buffer RAM
    std::optional<std::string> boot_rom_path;   // a ROM's boot path, first in the boot order (-kernel)
    std::vector<uint8_t> acpi_tables, acpi_rsdp, table_loader;
    std::vector<std::pair<std::string, std::vector<uint8_t>>> extra_files;  // e.g. "etc/tpm/log" later
};

// The OpenFirmware path SeaBIOS matches for the virtio-blk disk at PCI 00:slot.0
// (SeaBIOS src/boot.c build_pci_path/bootprio_find_pci_device; the form QEMU emits).
std::string virtio_blk_boot_path(unsigned pci_slot);

// Boot retry delay after "No bootable device" (fail fast; SeaBIOS then reboots).
inline constexpr uint32_t kBootFailWaitMs = 1000;

// Adds everything to a fresh FwCfg. Throws std::invalid_argument for cpus outside 1..255,
// a bad RAM layout (see build_e820), or a file name FwCfg rejects (including a duplicate of a
// built-in file in extra_files).
void populate_fw_cfg(FwCfg& fw_cfg, const FwCfgSetup& setup);

}  // namespace minivmm
