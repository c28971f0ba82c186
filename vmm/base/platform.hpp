// The fixed platform layout of a minivmm machine: every port, address and interrupt number
// that more than one component must agree on (devices, ACPI tables, fw_cfg, the KVM set-up).
#pragma once

#include <cstdint>

namespace minivmm::platform {

// --- Memory map (guest-physical) -----------------------------------------------------------
inline constexpr uint64_t kLowMemoryLimit = 0xC000'0000;    // RAM above 3 GiB moves above 4 GiB
inline constexpr uint64_t kHighMemoryBase = 0x1'0000'0000;  // 4 GiB
inline constexpr uint64_t kLegacyHoleStart = 0xA0000;       // VGA + option ROM + BIOS area
inline constexpr uint64_t kBiosShadowStart = 0xC0000;       // 256 KiB BIOS copy in RAM (SeaBIOS §0.2)
inline constexpr uint64_t kBiosShadowEnd = 0x100000;
inline constexpr uint64_t kPciMmioWindowEnd = 0xFEC0'0000;  // SeaBIOS BUILD_PCIMEM_END
inline constexpr uint64_t kIoApicBase = 0xFEC0'0000;
inline constexpr uint64_t kTpmTisBase = 0xFED4'0000;  // TCG PC Client PTP: 5 localities x 4 KiB
inline constexpr uint64_t kTpmTisSize = 0x5000;
// The TPM CRB's command/response buffer (-tpm-interface crb, devices/tpm_crb.hpp): guest RAM of its
// own KVM memory slot in the TIS window's unused second page and the one after it (the CRB's
// registers take only the first page), reserved in e820 and listed in the TPM device's _CRS.
inline constexpr uint64_t kTpmCrbBufferBase = 0xFED4'1000;
inline constexpr uint64_t kTpmCrbBufferSize = 0x2000;
// The TPM's Physical Presence Interface mailbox (devices/tpm_ppi.hpp), where QEMU puts its PPI
// page (TPM_PPI_ADDR_BASE), right after the TIS window.
inline constexpr uint64_t kTpmPpiBase = 0xFED4'5000;
inline constexpr uint64_t kTpmPpiSize = 0x400;
inline constexpr uint64_t kLocalApicBase = 0xFEE0'0000;
// KVM on Intel needs a 3-page TSS and a 1-page identity map inside guest-physical space; QEMU
// uses the same addresses and reserves them in the e820 map.
inline constexpr uint64_t kKvmIdentityMapAddr = 0xFEFF'C000;
inline constexpr uint64_t kKvmTssAddr = 0xFEFF'D000;
inline constexpr uint64_t kKvmReservedSize = 0x4000;
inline constexpr uint64_t kFourGiB = 0x1'0000'0000;

// --- Port I/O ----------------------------------------------------------------------------
inline constexpr uint16_t kCom1Port = 0x3F8;
inline constexpr uint16_t kCom1Irq = 4;
inline constexpr uint16_t kCmosPort = 0x70;  // index 0x70, data 0x71
inline constexpr uint16_t kA20Port = 0x92;
inline constexpr uint16_t kDebugPort = 0x402;  // SeaBIOS debug output
inline constexpr uint16_t kBootMarkerPort = 0x3F0;  // the guest's boot-complete mark (devices/boot_marker.hpp)
inline constexpr uint16_t kLinuxBootPort = 0x520;  // -kernel boot ROM requests (devices/linux_boot_port.hpp)
inline constexpr uint16_t kFwCfgPort = 0x510;  // selector 0x510, data 0x511, DMA 0x514..0x51B
inline constexpr uint16_t kFwCfgPortSize = 0x0C;
inline constexpr uint16_t kPciConfigAddress = 0xCF8;
inline constexpr uint16_t kPciConfigData = 0xCFC;
inline constexpr uint16_t kResetControlPort = 0xCF9;  // "PCI reset control", bit 2 = reset
inline constexpr uint8_t kResetValue = 0x06;          // value the ACPI RESET_REG asks the OS to write
// ACPI PM1a event block (4 bytes), PM1a control block (2 bytes) and PM timer (4 bytes);
// 0x600 is where QEMU/SeaBIOS put them when ACPI comes from the table-loader.
inline constexpr uint16_t kAcpiPmBase = 0x600;
inline constexpr uint16_t kAcpiPm1aEvt = kAcpiPmBase + 0;
inline constexpr uint16_t kAcpiPm1aCnt = kAcpiPmBase + 4;
inline constexpr uint16_t kAcpiPmTimer = kAcpiPmBase + 8;
inline constexpr uint16_t kAcpiPmSize = 12;
inline constexpr uint8_t kSciIrq = 9;
// The TPM TIS interrupt: ISA IRQ 13 (the PC's FPU-error line, unused on this machine; no other
// device here claims it), level-triggered and, as KVM's IOAPIC delivers a line driven to 1, active
// high in ACPI. TPM_INT_VECTOR reads it (its sirqVec field is 4 bits: an ISA IRQ).
inline constexpr uint8_t kTpmTisIrq = 13;
inline constexpr uint16_t kSleepTypeS5 = 0;  // \_S5 SLP_TYPa, as QEMU: SLP_TYP 0 = soft-off

// --- PCI ---------------------------------------------------------------------------------
inline constexpr uint8_t kVirtioBlkSlot = 1;  // 00:01.0
// Legacy INTx: slot s, pin p (0 = INTA) -> GSI kPciGsiBase + (s + p) % 4 (IOAPIC pins 16..19,
// level-triggered active-low as ACPI defines for GSIs above 15). The DSDT's _PRT says the same.
inline constexpr uint32_t kPciGsiBase = 16;
inline constexpr uint32_t pci_intx_gsi(unsigned slot, unsigned pin) { return kPciGsiBase + (slot + pin) % 4; }
inline constexpr unsigned kIoApicPins = 24;

// --- Firmware ----------------------------------------------------------------------------
inline constexpr uint64_t kBiosMaxSize = 16 * 1024 * 1024;
inline constexpr const char* kDefaultBios = "/usr/share/seabios/bios-256k.bin";

}  // namespace minivmm::platform
