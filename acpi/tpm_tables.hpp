// ACPI description of the TPM device, as QEMU's -device tpm-tis / tpm-crb emit it (QEMU
// hw/acpi/aml-build.c build_tpm2, hw/i386/acpi-build.c; TCG ACPI Specification for TPM 2.0 and TCPA):
//   TPM 2.0: a TPM2 table, revision 4, 76 bytes, LAML 64 KiB and LASA pointing at the fw_cfg file
//            "etc/tpm/log"; DSDT MSFT0101. TIS: start method 6 (FIFO), control area 0. CRB:
//            start method 7 (command response buffer), control area 0xFED40040.
//   TPM 1.2: a TCPA table, revision 2 (client), 50 bytes, same LAML/LASA; DSDT PNP0C31 (TIS only).
// The DSDT device claims Memory32Fixed(0xFED40000, 0x5000) for the TIS's five localities, or
// 0x1000 for the CRB page (Linux tpm_crb wants the control area 0x40 bytes into that region)
// and a second Memory32Fixed(0xFED41000, 0x2000) for the CRB's buffer RAM (QEMU has its buffer
// inside the register page),
// and, for the TIS, optionally its interrupt: Interrupt (ResourceConsumer, Level, ActiveHigh,
// Exclusive) {n} (QEMU lists none: polled).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "acpi/acpi_builder.hpp"
#include "devices/tpm_types.hpp"

namespace minivmm {

inline constexpr const char* kTpmLogFile = "etc/tpm/log";
// With -kernel: where SeaBIOS writes the address it gave kTpmLogFile (a table-loader WRITE_POINTER).
inline constexpr const char* kTpmLogAddressFile = "etc/minivmm/tpm-log-address";
inline constexpr uint32_t kTpmLogSize = 64 * 1024;  // TPM_LOG_AREA_MINIMUM_SIZE

// Adds the TPM table, the DSDT device and the log-area allocation to `config`.
// CRB is TPM 2.0 only: callers reject TPM 1.2 with CRB before (the CLI and open_tpm_backend, vmm/tpm_slot.cpp).
// `irq`: the TIS interrupt the DSDT device lists (Interrupt (..., Level, ActiveHigh, Exclusive)), or none.
// `ppi`: the device gets the Physical Presence Interface's _DSM (acpi/tpm_ppi_aml.hpp).
void add_tpm_acpi(AcpiConfig& config, TpmVersion version, TpmInterface interface = TpmInterface::tis,
                  std::optional<uint8_t> irq = std::nullopt, bool ppi = false);

// The pieces, for tests.
std::vector<uint8_t> build_tpm2_table(TpmInterface interface = TpmInterface::tis);
std::vector<uint8_t> build_tcpa_table();
std::vector<uint8_t> build_tpm_dsdt_device(TpmVersion version, TpmInterface interface = TpmInterface::tis,
                                           std::optional<uint8_t> irq = std::nullopt, bool ppi = false);

}  // namespace minivmm
