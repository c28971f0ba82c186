#include "vmm/machine_spec.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

#include <fmt/core.h>

#include "devices/boot_marker.hpp"
#include "devices/debug_port.hpp"
#include "devices/linux_boot_port.hpp"
#include "devices/tpm_crb_regs.hpp"
#include "devices/uart16550.hpp"
#include "vmm/base/error.hpp"
#include "vmm/base/platform.hpp"

namespace minivmm {

uint64_t MachineSpec::ram_below_4g() const noexcept {
    return std::min(ram_bytes, platform::kLowMemoryLimit);
}

uint64_t MachineSpec::ram_above_4g() const noexcept {
    return ram_bytes - ram_below_4g();
}

void MachineSpec::validate() const {
    auto invalid = [](const std::string& what) { throw SetupError(kExitUsage, "machine: " + what); };
    if (ram_bytes < kMinRam || ram_bytes > kMaxRam || ram_bytes % kRamGranularity != 0)
        invalid(fmt::format("{} bytes of RAM: whole MiB from {} MiB to {} MiB", ram_bytes, kMinRam >> 20, kMaxRam >> 20));
    if (cpus == 0 || cpus > kMaxCpus) invalid(fmt::format("{} vCPUs: 1 to {}", cpus, kMaxCpus));
    if (tpm_crb() && tpm->version != TpmVersion::v2_0) invalid("the CRB interface needs a TPM 2.0");
    if (!firmware && !kernel) invalid("no firmware and no kernel: nothing to run");
}

std::vector<MachineSpec::Placement> MachineSpec::devices() const {
    using namespace platform;
    std::vector<Placement> list{
        {Device::cmos, "CMOS/RTC", Space::port_io, kCmosPort, 2, std::nullopt},
        {Device::a20, "A20 gate (port 0x92)", Space::port_io, kA20Port, 1, std::nullopt},
        {Device::com1, "COM1 16550", Space::port_io, kCom1Port, Uart16550::kSize, kCom1Irq},
        {Device::fw_cfg, "fw_cfg with DMA", Space::port_io, kFwCfgPort, kFwCfgPortSize, std::nullopt},
        {Device::acpi_pm, "ACPI PM1a event/control, PM timer", Space::port_io, kAcpiPmBase, kAcpiPmSize, kSciIrq},
        {Device::pci_config, "PCI configuration and reset control (0xCF9)", Space::port_io, kPciConfigAddress, 8,
         std::nullopt},
        {Device::boot_marker, "boot-complete marker (write 123)", Space::port_io, kBootMarkerPort, BootMarker::kSize,
         std::nullopt},
    };
    if (debugcon) list.push_back({Device::debugcon, "debug console", Space::port_io, kDebugPort, DebugPort::kSize,
                                  std::nullopt});
    if (kernel && firmware) list.push_back({Device::linux_boot_port, "-kernel boot ROM port", Space::port_io, kLinuxBootPort,
                                LinuxBootPort::kSize, std::nullopt});
    if (disk) list.push_back({Device::virtio_blk, "virtio-blk", Space::pci_slot, kVirtioBlkSlot, 1,
                              pci_intx_gsi(kVirtioBlkSlot, 0)});
    if (tpm_crb()) {
        list.push_back({Device::tpm, "TPM CRB registers", Space::mmio, kTpmTisBase, crb::kPageSize, std::nullopt});
        list.push_back({Device::tpm_crb_buffer, "TPM CRB buffer", Space::ram, kTpmCrbBufferBase, kTpmCrbBufferSize,
                        std::nullopt});
    } else if (tpm) {
        list.push_back({Device::tpm, "TPM TIS", Space::mmio, kTpmTisBase, kTpmTisSize,
                        tpm_irq() ? std::optional<uint32_t>(kTpmTisIrq) : std::nullopt});
    }
    if (tpm && tpm->ppi) list.push_back({Device::tpm_ppi, "TPM PPI mailbox", Space::mmio, kTpmPpiBase, kTpmPpiSize,
                                         std::nullopt});
    return list;
}

MachineSpec::Placement MachineSpec::place(Device device) const {
    for (const Placement& p : devices())
        if (p.device == device) return p;
    throw std::logic_error(fmt::format("machine spec: device {} is not in this machine", static_cast<int>(device)));
}

MachineSpec machine_spec(const Config& config, std::optional<TpmVersion> tpm) {
    MachineSpec spec;
    spec.ram_bytes = config.ram_bytes;
    spec.cpus = config.cpus;
    spec.disk = !config.disk.empty();
    spec.kernel = config.kernel.has_value();
    spec.firmware = config.firmware;
    spec.serial = config.serial.kind != CharTarget::Kind::none;
    spec.debugcon = config.debugcon.has_value();
    spec.boot_menu_wait_ms = config.boot_menu_wait_ms;
    spec.exit_stats = config.exit_stats;
    if (tpm) spec.tpm = MachineSpec::Tpm{*tpm, config.tpm_interface, config.tpm_irq, config.tpm_ppi};
    spec.validate();
    return spec;
}

}  // namespace minivmm
