// -bios none: minivmm is the firmware. At every power-on, before the first vCPU instruction, it
// does what SeaBIOS and its -kernel boot ROM do, and enters the kernel at its 64-bit entry
// (firmware/linux_boot64.hpp):
//   - the ACPI tables and the TPM event log area, laid out by running the table-loader script
//     itself (firmware/table_loader_run.hpp): the tables in the last kFirmwareArea bytes of RAM
//     below 4 GiB, the RSDP in the F-segment, both reserved in the kernel's e820 map; the SMBIOS
//     tables (firmware/smbios.hpp) after them, their entry point at 0xF0000;
//   - the PCI BARs assigned and decoding enabled (firmware/pci_resources.hpp);
//   - with a TPM, started by TpmSlot::power_on (start_tpm_as_firmware): a new event log in the
//     TPM2/TCPA table's area listing the TPM's active banks, the firmware's events
//     (firmware/firmware_events.hpp: PCR 0 CRTM version, PCR 1 ACPI and SMBIOS tables, separators in
//     PCRs 0-7),
//     then the kernel, command line and initrd as with SeaBIOS (vmm/kernel_boot.hpp); every event
//     extended in every active bank; then the platform hierarchy locked as SeaBIOS locks it.
//     All of it has reached the TPM before any vCPU runs;
//   - the kernel, initrd and command line in RAM, and then either
//       the kernel's ELF (vmm/pvh_kernel.hpp) with a PVH start_info (firmware/pvh.hpp) and the boot
//       vCPU in 32-bit protected mode at the PVH entry, %ebx at the start_info; or
//       the bzImage with a zero page, GDT and identity-mapped page tables, and the boot vCPU in
//       64-bit mode at its 64-bit entry, %rsi at the zero page;
//     either way MTRRs on (write-back by default) and the local APIC's LINT0/LINT1 in virtual-wire
//     mode. The other vCPUs wait for the kernel's INIT-SIPI-SIPI as they do after SeaBIOS.
#pragma once

#include <cstdint>
#include <span>

#include "acpi/acpi_builder.hpp"
#include "firmware/pci_resources.hpp"
#include "firmware/tcg_event_log.hpp"
#include "vmm/base/guest_memory.hpp"
#include "vmm/kernel_boot.hpp"
#include "vmm/kvm/kvm.hpp"
#include "vmm/pvh_kernel.hpp"
#include "vmm/machine_spec.hpp"
#include "vmm/tpm/tpm_worker.hpp"

namespace minivmm {

inline constexpr uint64_t kFirmwareArea = 1ull << 20;  // ACPI tables and the TPM event log, at the top of low RAM

struct DirectBoot {
    const MachineSpec& spec;
    const KernelBoot& kernel;
    const GuestMemory& memory;
    const AcpiBlobs& acpi;
    TpmWorker* tpm;                               // nullptr: no TPM
    std::span<const tcg_log::Algorithm> banks;    // the TPM's active PCR banks (TpmSlot::firmware_banks)
    const PvhKernel* pvh;                         // the kernel's ELF, entered through PVH; nullptr: the 64-bit entry
};

// The PCI windows of this machine (as the DSDT's _CRS lists them).
PciWindows direct_boot_pci_windows(const MachineSpec& spec);

// Everything above but the PCI BARs (MachineDevices assigns those). Throws SetupError: 6
// (kExitTpm) when the measurements cannot be made (a bank minivmm cannot hash, a TPM that does not
// answer), 1 on what cannot happen with a checked kernel (tables or kernel outside RAM). (A kernel
// without a 64-bit entry is refused at start-up: main checks linux_boot64::check_64bit_entry.)
void boot_without_firmware(const DirectBoot& boot, Vcpu& bsp);

}  // namespace minivmm
