// What the machine is, as pure data: built and checked once from the command line (or directly,
// by a test), then given to every power-on's Machine, which owns no other description of itself.
// devices() is the one list of what the guest finds where: MachineDevices maps each device at its
// entry, and the tests check the list (no two devices overlap; what is present follows the spec).
// The addresses themselves are the platform's (vmm/base/platform.hpp), as the ACPI tables,
// SeaBIOS and the guest expect them.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "devices/tpm_types.hpp"
#include "vmm/cli.hpp"

namespace minivmm {

struct MachineSpec {
    uint64_t ram_bytes = 512ull << 20;
    unsigned cpus = 1;
    bool disk = false;      // a virtio-blk disk
    bool kernel = false;    // -kernel: the boot ROM and its port (with firmware)
    bool firmware = true;   // SeaBIOS runs; false: -bios none, minivmm enters the kernel (vmm/direct_boot.hpp)
    bool serial = true;     // COM1's output goes somewhere (SeaBIOS is told to use it)
    bool debugcon = false;  // port 0x402 is mapped
    std::optional<uint32_t> boot_menu_wait_ms;
    bool exit_stats = false;
    struct Tpm {
        TpmVersion version = TpmVersion::v2_0;
        TpmInterface interface = TpmInterface::tis;
        bool irq = true;  // the TIS interrupt in _CRS (never with the CRB)
        bool ppi = true;  // the Physical Presence Interface
    };
    std::optional<Tpm> tpm;

    uint64_t ram_below_4g() const noexcept;
    uint64_t ram_above_4g() const noexcept;
    bool tpm_irq() const noexcept { return tpm && tpm->irq && tpm->interface == TpmInterface::tis; }
    bool tpm_crb() const noexcept { return tpm && tpm->interface == TpmInterface::crb; }

    // Throws SetupError(kExitUsage) naming what is wrong: RAM or vCPUs out of range, the CRB with a
    // TPM 1.2. (The CLI refuses all of these first, with its own messages.) A machine with neither a
    // disk nor a kernel is valid: SeaBIOS runs and finds nothing to boot.
    void validate() const;

    enum class Device {
        cmos, a20, com1, fw_cfg, acpi_pm, pci_config, boot_marker, debugcon, linux_boot_port,  // port I/O
        tpm, tpm_crb_buffer, tpm_ppi,                                            // MMIO, RAM
        virtio_blk,                                                              // PCI
    };
    enum class Space { port_io, mmio, ram, pci_slot };
    struct Placement {
        Device device;
        std::string_view name;
        Space space;
        uint64_t base;  // a port, an address, or the PCI slot (device number on bus 0)
        uint64_t size;  // 1 for a PCI slot
        std::optional<uint32_t> irq;  // ISA IRQ or GSI, if it has a fixed one
    };
    // Every device present in this machine, in mapping order.
    std::vector<Placement> devices() const;
    // The entry of `device`; throws std::logic_error if the spec has no such device.
    Placement place(Device device) const;
};

// The spec of the machine the CLI asks for, validated; `tpm` is the version of the TPM actually
// opened (swtpm says which it is), nullopt without a TPM.
MachineSpec machine_spec(const Config& config, std::optional<TpmVersion> tpm);

}  // namespace minivmm
