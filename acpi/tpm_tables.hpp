// ACPI description of the TPM TIS device, as QEMU's -device tpm-tis emits it
// (seabios-acpi.md §2.3, §2.4; TCG ACPI Specification for TPM 2.0 and TCPA):
//   TPM 2.0: a TPM2 table, revision 4, 76 bytes, start method 6 (TIS/FIFO), control area 0,
//            LAML 64 KiB and LASA pointing at the fw_cfg file "etc/tpm/log"; DSDT MSFT0101.
//   TPM 1.2: a TCPA table, revision 2 (client), 50 bytes, same LAML/LASA; DSDT PNP0C31.
// Both DSDT devices claim Memory32Fixed(0xFED40000, 0x5000) and no IRQ (polled, as QEMU).
#pragma once

#include <cstdint>
#include <vector>

#include "acpi/acpi_builder.hpp"
#include "devices/tpm_interface.hpp"

namespace minivmm {

inline constexpr const char* kTpmLogFile = "etc/tpm/log";
inline constexpr uint32_t kTpmLogSize = 64 * 1024;  // TPM_LOG_AREA_MINIMUM_SIZE

// Adds the TPM table, the DSDT device and the log-area allocation to `config`.
void add_tpm_acpi(AcpiConfig& config, TpmVersion version);

// The pieces, for tests.
std::vector<uint8_t> build_tpm2_table();
std::vector<uint8_t> build_tcpa_table();
std::vector<uint8_t> build_tpm_dsdt_device(TpmVersion version);

}  // namespace minivmm
