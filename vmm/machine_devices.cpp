#include "vmm/machine_devices.hpp"

#include "acpi/tpm_tables.hpp"
#include "devices/tpm_crb.hpp"
#include "devices/tpm_tis.hpp"
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
    if (w.tpm) {
        const bool irq = w.config.tpm_irq && w.config.tpm_interface == TpmInterface::tis;
        add_tpm_acpi(config, w.tpm->version(), w.config.tpm_interface,
                     irq ? std::optional<uint8_t>(platform::kTpmTisIrq) : std::nullopt, w.tpm_ppi != nullptr);
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
      tpm_irq_(w.vm, platform::kTpmTisIrq),
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
    if (w.tpm) attach_tpm(w);
    if (w.tpm && w.tpm_ppi) w.mmio.insert(platform::kTpmPpiBase, platform::kTpmPpiSize, *w.tpm_ppi);

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
    if (w.tpm) setup.extra_files.emplace_back(kTpmLogFile, std::vector<uint8_t>(kTpmLogSize, 0));
    setup.disk = w.disk != nullptr;
    setup.tpm_crb_buffer = w.tpm && w.config.tpm_interface == TpmInterface::crb;
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
    if (w.tpm) tpm_log_address_key_ = fw_cfg_.add_writable_file(kTpmLogAddressFile, 8);
    const GuestMemory& memory = w.memory;
    const KernelBoot& kernel = *w.kernel;
    linux_boot_port_ = std::make_unique<LinuxBootPort>([this, &memory, &kernel]() noexcept {
        std::optional<uint64_t> log_address;
        if (tpm_log_address_key_) {
            const std::vector<uint8_t> value = fw_cfg_.contents(*tpm_log_address_key_);
            if (value.size() == 8 && load_le(value) != 0) log_address = load_le(value);
        }
        return kernel.boot(memory, log_address, kTpmLogSize, tpm_worker_.get());
    });
    w.pio.insert(platform::kLinuxBootPort, LinuxBootPort::kSize, *linux_boot_port_);
}

void MachineDevices::before_dispatch(const kvm_run& run) noexcept {
    if (!tpm_worker_ || run.exit_reason != KVM_EXIT_MMIO || run.mmio.is_write) return;
    if (run.mmio.phys_addr - platform::kTpmTisBase >= platform::kTpmTisSize) return;
    tpm_worker_->wait_idle(kTpmPollStall);
}

void MachineDevices::after_dispatch(const kvm_run& run) noexcept {
    if (!tpm_worker_ || run.exit_reason != KVM_EXIT_MMIO || !run.mmio.is_write) return;
    if (run.mmio.phys_addr - platform::kTpmTisBase >= platform::kTpmTisSize) return;
    tpm_worker_->wait_idle(kTpmStartStall);
}

void MachineDevices::attach_tpm(const Wiring& w) {
    // The TPM was power-cycled for this power-on before the machine was built (main.cpp).
    std::mutex& lock = w.device_lock;
    tpm_worker_ = std::make_unique<TpmWorker>(*w.tpm, [this, &lock](std::span<const uint8_t> response) {
        std::lock_guard guard(lock);
        tpm_device_->command_completed(response);
        if (crb_registers_) crb_registers_->refresh();  // CTRL_START reads 0 from memory now
    });
    tpm_interface_ = w.config.tpm_interface;
    if (tpm_interface_ == TpmInterface::crb) {
        if (w.tpm->version() != TpmVersion::v2_0)  // main.cpp and the CLI say so first
            throw SetupError(kExitTpm, "the CRB interface needs a TPM 2.0");
        tpm_device_ = std::make_unique<TpmCrb>(*tpm_worker_, w.tpm_crb_buffer, platform::kTpmCrbBufferBase,
                                               static_cast<uint32_t>(platform::kTpmCrbBufferSize));
        if (w.tpm_crb_register_page.empty()) {
            w.mmio.insert(platform::kTpmTisBase, crb::kPageSize, *tpm_device_);
        } else {  // reads from memory, writes exit (devices/register_mirror.hpp)
            crb_registers_ = std::make_unique<RegisterMirror>(*tpm_device_, w.tpm_crb_register_page, crb::kRegisterSpace,
                                                              crb::kChangingRegisters);
            w.mmio.insert(platform::kTpmTisBase, crb::kPageSize, *crb_registers_);
        }
    } else {
        if (w.config.tpm_irq)  // the TIS interrupt, as the DSDT lists it
            tpm_device_ = std::make_unique<TpmTis>(*tpm_worker_, &tpm_irq_, platform::kTpmTisIrq);
        else  // polled, as QEMU's DSDT describes it
            tpm_device_ = std::make_unique<TpmTis>(*tpm_worker_, nullptr);
        w.mmio.insert(platform::kTpmTisBase, platform::kTpmTisSize, *tpm_device_);
    }
}

std::vector<MachineDevices::MmioZone> MachineDevices::coalescible_tpm_zones() const {
    std::vector<MmioZone> zones;
    if (!tpm_device_) return zones;
    if (tpm_interface_ == TpmInterface::crb) {
        // Served from memory, the page's writes must exit: the page is re-rendered before the
        // guest's next read, which no longer exits to replay a queue.
        if (crb_registers_) return zones;
        // As MMIO, the whole register page: no CRB register write raises an interrupt or needs an
        // answer before the guest's next read of a register (Linux and SeaBIOS read back every
        // write: LOC_STATE, CTRL_REQ, CTRL_START), and that read's exit replays the writes first.
        // The buffer is RAM and needs no exit at all.
        zones.push_back({platform::kTpmTisBase, crb::kPageSize});
        return zones;
    }
    for (uint64_t loc = 0; loc < platform::kTpmTisSize / 0x1000; ++loc) {
        const uint64_t page = platform::kTpmTisBase + loc * 0x1000;
        zones.push_back({page + tis::kRegDataFifo, 4});
        zones.push_back({page + tis::kRegXDataFifo, tis::kRegXDataFifoEnd + 4 - tis::kRegXDataFifo});
    }
    return zones;
}

}  // namespace minivmm
