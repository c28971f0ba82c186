#include "vmm/machine_devices.hpp"

#include "acpi/tpm_tables.hpp"
#include "firmware/fw_cfg_setup.hpp"
#include "firmware/linux_boot_rom.hpp"
#include "firmware/smbios.hpp"
#include "vmm/base/bytes.hpp"
#include "vmm/base/error.hpp"
#include "vmm/base/log.hpp"
#include "vmm/base/platform.hpp"

namespace minivmm {

namespace {

// The host objects behind the spec's devices are there, and nothing else is.
const MachineDevices::Wiring& checked(const MachineDevices::Wiring& w) {
    if (w.spec.disk != (w.disk != nullptr) || w.spec.kernel != (w.kernel != nullptr) ||
        w.spec.serial != (w.serial_out != nullptr) || w.spec.debugcon != (w.debug_out != nullptr) ||
        w.spec.tpm.has_value() != w.tpm.present())
        throw SetupError(kExitInternal, "machine: the disk, kernel, consoles or TPM given do not match its spec");
    return w;
}

AcpiBlobs make_acpi(const MachineDevices::Wiring& w) {
    AcpiConfig config;
    config.cpus = w.spec.cpus;
    config.pci_mmio32_start = w.spec.ram_below_4g();
    if (w.spec.tpm) {
        add_tpm_acpi(config, w.spec.tpm->version, w.spec.tpm->interface,
                     w.spec.tpm_irq() ? std::optional<uint8_t>(platform::kTpmTisIrq) : std::nullopt, w.spec.tpm->ppi);
        // -kernel: SeaBIOS tells where it put the event log, so the kernel's events can follow its own.
        if (w.spec.kernel && w.spec.firmware) config.write_pointers.push_back({kTpmLogAddressFile, kTpmLogFile});
    }
    return build_acpi(config);
}

}  // namespace

MachineDevices::MachineDevices(const Wiring& w)
    : acpi_(make_acpi(checked(w))),
      com1_irq_(w.vm, platform::kCom1Irq),
      virtio_irq_(w.vm, platform::pci_intx_gsi(platform::kVirtioBlkSlot, 0)),
      msi_(w.vm),
      uart_(com1_irq_, w.serial_out),
      cmos_(CmosConfig{w.spec.ram_below_4g(), w.spec.ram_above_4g(), w.spec.cpus}),
      a20_(w.events),
      reset_(w.events),
      acpi_pm_(w.events),
      fw_cfg_(w.memory),
      pci_(w.pio, w.mmio),
      cf8_ports_(pci_, reset_) {
    using D = MachineSpec::Device;
    auto map = [&w](D device, Device& model) {
        const MachineSpec::Placement p = w.spec.place(device);
        w.pio.insert(p.base, p.size, model);
    };
    map(D::cmos, cmos_);
    map(D::a20, a20_);
    map(D::com1, uart_);
    map(D::fw_cfg, fw_cfg_);
    map(D::acpi_pm, acpi_pm_);
    map(D::pci_config, cf8_ports_);
    map(D::boot_marker, boot_marker_);
    if (w.spec.debugcon) {
        debug_port_ = std::make_unique<DebugPort>(w.debug_out);
        map(D::debugcon, *debug_port_);
    }
    if (w.spec.disk) {
        virtio_blk_ = std::make_unique<VirtioBlk>(w.memory, *w.disk, virtio_irq_, msi_);
        Vm& vm = w.vm;
        disk_io_ = std::make_unique<VirtioIoThread>(
            *virtio_blk_, [&vm](uint64_t gpa, uint32_t length, int fd, bool assign) noexcept {
                return vm.ioeventfd(gpa, length, fd, assign);
            }, w.device_lock, w.events);
        pci_.add(static_cast<uint8_t>(w.spec.place(D::virtio_blk).base), *virtio_blk_);
    }
    // The TPM was power-cycled for this power-on before the machine was built (TpmSlot::power_on),
    // or takes a snapshot's state meanwhile (-restore: vmm/snapshot_restore.hpp restore_machine).
    tpm_ = w.tpm.attach({w.spec, w.vm, w.mmio, w.device_lock, w.tpm_crb_buffer, w.tpm_crb_register_page});

    FwCfgSetup setup;
    setup.ram_below_4g = w.spec.ram_below_4g();
    setup.ram_above_4g = w.spec.ram_above_4g();
    setup.cpus = w.spec.cpus;
    setup.boot_menu_wait_ms = w.spec.boot_menu_wait_ms;
    setup.serial_console = w.spec.serial;
    setup.acpi_tables = acpi_.tables;
    setup.acpi_rsdp = acpi_.rsdp;
    setup.table_loader = acpi_.loader;
    SmbiosBlobs smbios = build_smbios(MINIVMM_VERSION);
    setup.extra_files.emplace_back(kSmbiosAnchorFile, std::move(smbios.anchor));
    setup.extra_files.emplace_back(kSmbiosTablesFile, std::move(smbios.tables));
    if (tpm_) setup.extra_files.emplace_back(kTpmLogFile, std::vector<uint8_t>(kTpmLogSize, 0));
    setup.disk = virtio_blk_ != nullptr;
    setup.tpm_crb_buffer = tpm_ && w.spec.tpm_crb();
    try {
        if (w.spec.kernel && w.spec.firmware) attach_kernel_boot(w, setup);
        populate_fw_cfg(fw_cfg_, setup);
    } catch (const std::exception& e) {
        throw SetupError(kExitInternal, std::string("fw_cfg set-up: ") + e.what());
    }
}

namespace {

// Configuration mechanism #1 through the host bridge's own ports, as firmware uses it.
class HostConfigAccess final : public PciConfigAccess {
public:
    explicit HostConfigAccess(PciHost& host) : host_(host) {}
    uint32_t read32(uint8_t slot, uint16_t reg) override {
        select(slot, reg);
        uint8_t data[4] = {};
        host_.read(4, data);
        return load_le(data);
    }
    void write32(uint8_t slot, uint16_t reg, uint32_t value) override {
        select(slot, reg);
        uint8_t data[4];
        store_le(data, value);
        host_.write(4, data);
    }

private:
    void select(uint8_t slot, uint16_t reg) {
        uint8_t address[4];
        store_le(address, 0x8000'0000u | uint32_t{slot} << 11 | (reg & 0xFCu));
        host_.write(0, address);
    }
    PciHost& host_;
};

}  // namespace

std::string MachineDevices::assign_pci_resources(const PciWindows& windows) {
    HostConfigAccess access(pci_);
    return minivmm::assign_pci_resources(access, windows);
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
    const MachineSpec::Placement p = w.spec.place(MachineSpec::Device::linux_boot_port);
    w.pio.insert(p.base, p.size, *linux_boot_port_);
}

}  // namespace minivmm
