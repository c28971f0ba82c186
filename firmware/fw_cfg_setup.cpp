#include "firmware/fw_cfg_setup.hpp"

#include <stdexcept>

#include <fmt/core.h>

#include "devices/device.hpp"
#include "firmware/e820.hpp"
#include "vmm/base/platform.hpp"

namespace minivmm {
namespace {

std::vector<uint8_t> le_bytes(uint64_t value, size_t size) {
    std::vector<uint8_t> out(size);
    store_le(out, value);
    return out;
}

std::vector<uint8_t> string_bytes(const std::string& s) {
    std::vector<uint8_t> out(s.begin(), s.end());
    out.push_back(0);  // QEMU passes strings with their NUL
    return out;
}

}  // namespace

std::string virtio_blk_boot_path(unsigned pci_slot) {
    // SeaBIOS builds "/pci@i0cf8/*@<slot hex>" for the device and glob-matches it as a prefix
    // ending at '/'; QEMU names virtio-blk-pci "scsi" and appends the disk unit.
    return fmt::format("/pci@i0cf8/scsi@{:x}/disk@0,0", pci_slot);
}

void populate_fw_cfg(FwCfg& fw_cfg, const FwCfgSetup& setup) {
    // SeaBIOS's MP and PIR tables and the CMOS 0x5F byte hold at most 255 CPUs.
    if (setup.cpus == 0 || setup.cpus > 255)
        throw std::invalid_argument(fmt::format("fw_cfg: {} CPUs (must be 1..255)", setup.cpus));

    // SeaBIOS src/fw/smp.c waits until this many CPUs have checked in (all vCPUs must run).
    fw_cfg.add_item(fw_cfg::kNbCpus, le_bytes(setup.cpus, 2));
    // etc/max-cpus: APIC IDs are 0..cpus-1, so the limit equals the count (QEMU apic_id_limit).
    fw_cfg.add_item(fw_cfg::kMaxCpus, le_bytes(setup.cpus, 2));
    // IRQ0 is wired to GSI2 on the IOAPIC (KVM in-kernel irqchip), as QEMU reports (u32 1).
    fw_cfg.add_item(fw_cfg::kIrq0Override, le_bytes(1, 4));
    // NOGRAPHIC (0x04) is deliberately absent (reads as 0): its only effect in SeaBIOS 1.16 is
    // to add etc/sercon-port = 0x3F8 when no such file exists (paravirt.c qemu_cfg_init), and
    // we set that file explicitly below, so one switch controls the serial console.

    // Speed: with etc/e820 SeaBIOS sizes RAM from this file in qemu_early_e820 and skips the
    // CMOS fallback and the key 0x8003 reservation list.
    auto e820 = build_e820(setup.ram_below_4g, setup.ram_above_4g, setup.tpm_crb_buffer);
    fw_cfg.add_file("etc/e820", encode_e820(e820));

    // Speed: only the virtio-blk disk, and "HALT" makes the order strict (boot.c
    // is_bootprio_strict): SeaBIOS skips initialising virtio/NVMe devices not listed, and
    // after the disk it goes straight to boot_fail instead of trying floppy/CD/ROM entries.
    // With -kernel the boot ROM comes first, then the disk if there is one (the ROM's BEV returns
    // only when the kernel could not be loaded).
    std::string order;
    if (setup.boot_rom_path) order += *setup.boot_rom_path + "\n";
    if (setup.disk) order += virtio_blk_boot_path(platform::kVirtioBlkSlot) + "\n";
    fw_cfg.add_file("bootorder", string_bytes(order + "HALT"));

    // Speed: show-boot-menu 0 skips "Press ESC for boot menu" and its 2.5 s default wait
    // (boot.c interactive_bootmenu). The file overrides legacy key 0x0E, which we leave unset.
    fw_cfg.add_file("etc/show-boot-menu", le_bytes(setup.boot_menu_wait_ms ? 1 : 0, 2));
    if (setup.boot_menu_wait_ms) fw_cfg.add_file("etc/boot-menu-wait", le_bytes(*setup.boot_menu_wait_ms, 4));

    // Speed: SeaBIOS waits 60 s after "No bootable device" by default; fail fast and reboot.
    fw_cfg.add_file("etc/boot-fail-wait", le_bytes(kBootFailWaitMs, 4));

    // sercon.c: INT 10h output (banner, "Booting from Hard Disk...", a boot loader's text) goes
    // to the UART at this port; there is no VGA. Absent means no serial console.
    if (setup.serial_console) fw_cfg.add_file("etc/sercon-port", le_bytes(platform::kCom1Port, 2));

    // ACPI through the table-loader (SeaBIOS src/fw/romfile_loader.c); etc/table-loader also
    // moves SeaBIOS's idea of the PM base to 0x600 (platform::kAcpiPmBase).
    if (!setup.acpi_tables.empty()) fw_cfg.add_file("etc/acpi/tables", setup.acpi_tables);
    if (!setup.acpi_rsdp.empty()) fw_cfg.add_file("etc/acpi/rsdp", setup.acpi_rsdp);
    if (!setup.table_loader.empty()) fw_cfg.add_file("etc/table-loader", setup.table_loader);

    for (const auto& [name, data] : setup.extra_files) fw_cfg.add_file(name, data);
}

}  // namespace minivmm
