#include "vmm/machine_devices.hpp"

#include "acpi/tpm_tables.hpp"
#include "firmware/fw_cfg_setup.hpp"
#include "firmware/linux_boot_rom.hpp"
#include "firmware/smbios.hpp"
#include "vmm/base/error.hpp"
#include "vmm/base/log.hpp"
#include "vmm/base/platform.hpp"

namespace minivmm {

namespace {

AcpiBlobs make_acpi(const MachineDevices::Wiring& w) {
    AcpiConfig config;
    config.cpus = w.config.cpus;
    config.pci_mmio32_start = w.ram_below_4g;
    if (w.tpm.present()) {
        add_tpm_acpi(config, w.tpm.version(), w.tpm.interface(),
                     w.tpm.irq() ? std::optional<uint8_t>(platform::kTpmTisIrq) : std::nullopt, w.tpm.ppi());
        // -kernel: SeaBIOS tells where it put the event log, so the kernel's events can follow its own.
        if (w.kernel) config.write_pointers.push_back({kTpmLogAddressFile, kTpmLogFile});
    }
    return build_acpi(config);
}

}  // namespace

MachineDevices::MachineDevices(const Wiring& w)
    : acpi_(make_acpi(w)),
      com1_irq_(w.vm, platform::kCom1Irq),
      virtio_irq_(w.vm, platform::pci_intx_gsi(platform::kVirtioBlkSlot, 0)),
      msi_(w.vm),
      uart_(com1_irq_, w.serial_out),
      cmos_(CmosConfig{w.ram_below_4g, w.ram_above_4g, w.config.cpus}),
      a20_(w.system),
      reset_(w.system),
      acpi_pm_(w.system),
      fw_cfg_(w.memory),
      pci_(w.pio, w.mmio),
      cf8_ports_(pci_, reset_) {
    w.pio.insert(platform::kCmosPort, 2, cmos_);
    w.pio.insert(platform::kA20Port, 1, a20_);
    w.pio.insert(platform::kCom1Port, Uart16550::kSize, uart_);
    w.pio.insert(platform::kFwCfgPort, platform::kFwCfgPortSize, fw_cfg_);
    w.pio.insert(platform::kAcpiPmBase, platform::kAcpiPmSize, acpi_pm_);
    w.pio.insert(platform::kPciConfigAddress, 8, cf8_ports_);
    if (w.debug_out) {
        debug_port_ = std::make_unique<DebugPort>(w.debug_out);
        w.pio.insert(platform::kDebugPort, DebugPort::kSize, *debug_port_);
    }
    if (w.disk) {
        virtio_blk_ = std::make_unique<VirtioBlk>(w.memory, *w.disk, virtio_irq_, msi_);
        pci_.add(platform::kVirtioBlkSlot, *virtio_blk_);
    }
    // The TPM was power-cycled for this power-on before the machine was built (TpmSlot::power_on).
    tpm_ = w.tpm.attach({w.vm, w.mmio, w.device_lock, w.tpm_crb_buffer, w.tpm_crb_register_page});

    FwCfgSetup setup;
    setup.ram_below_4g = w.ram_below_4g;
    setup.ram_above_4g = w.ram_above_4g;
    setup.cpus = w.config.cpus;
    setup.boot_menu_wait_ms = w.config.boot_menu_wait_ms;
    setup.serial_console = w.serial_out != nullptr;
    setup.acpi_tables = acpi_.tables;
    setup.acpi_rsdp = acpi_.rsdp;
    setup.table_loader = acpi_.loader;
    SmbiosBlobs smbios = build_smbios(MINIVMM_VERSION);
    setup.extra_files.emplace_back(kSmbiosAnchorFile, std::move(smbios.anchor));
    setup.extra_files.emplace_back(kSmbiosTablesFile, std::move(smbios.tables));
    if (tpm_) setup.extra_files.emplace_back(kTpmLogFile, std::vector<uint8_t>(kTpmLogSize, 0));
    setup.disk = w.disk != nullptr;
    setup.tpm_crb_buffer = tpm_ && w.tpm.interface() == TpmInterface::crb;
    try {
        if (w.kernel) attach_kernel_boot(w, setup);
        populate_fw_cfg(fw_cfg_, setup);
    } catch (const std::exception& e) {
        throw SetupError(kExitInternal, std::string("fw_cfg set-up: ") + e.what());
    }
}

void MachineDevices::attach_kernel_boot(const Wiring& w, FwCfgSetup& setup) {
    const std::span<const uint8_t> rom = linux_boot_rom();
    setup.extra_files.emplace_back(kLinuxBootRomFile, std::vector<uint8_t>(rom.begin(), rom.end()));
    setup.boot_rom_path = kLinuxBootRomBootPath;
    if (tpm_) tpm_log_address_key_ = fw_cfg_.add_writable_file(kTpmLogAddressFile, 8);
    const GuestMemory& memory = w.memory;
    const KernelBoot& kernel = *w.kernel;
    linux_boot_port_ = std::make_unique<LinuxBootPort>([this, &memory, &kernel]() noexcept {
        std::optional<uint64_t> log_address;
        if (tpm_log_address_key_) {
            const std::vector<uint8_t> value = fw_cfg_.contents(*tpm_log_address_key_);
            if (value.size() == 8 && load_le(value) != 0) log_address = load_le(value);
        }
        return kernel.boot(memory, log_address, kTpmLogSize, tpm_ ? &tpm_->worker() : nullptr);
    });
    w.pio.insert(platform::kLinuxBootPort, LinuxBootPort::kSize, *linux_boot_port_);
}

}  // namespace minivmm
