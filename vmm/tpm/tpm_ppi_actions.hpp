// The platform's half of the Physical Presence Interface (TCG PC Client Platform Physical
// Presence Interface Specification 1.3 §3, "Pre-OS Operations"): the request the OS left in
// devices/tpm_ppi.hpp is carried out at the next power-on, before the firmware runs. Real
// firmware does this in its own boot path; SeaBIOS has no PPI code, so minivmm does it itself on
// the freshly power-cycled TPM, as the platform (platformAuth is empty until the firmware's
// TPM2_Startup), then power-cycles the TPM again so that SeaBIOS finds it as on any boot.
#pragma once

#include <cstdint>
#include <set>
#include <string>

#include "vmm/tpm/tpm_backend.hpp"

namespace minivmm {

// The operations carried out, for both versions: 5 Clear, 14 Enable + Clear, 21 Enable + Activate
// + Clear, 22 Enable + Activate + Clear + Enable + Activate (PPI 1.3 Tables 1 and 2). On a TPM 2.0,
// which cannot be disabled or deactivated, all four are a Clear.
std::set<uint32_t> ppi_operations(TpmVersion version);

// A name for log lines: "Clear", "Enable + Clear", ...
std::string ppi_operation_name(uint32_t operation);

// Carries out `operation` (one of ppi_operations) on a TPM that was just power-cycled. Returns
// the PPI response: 0 on success, the TPM's response code (1..0xFFF) of the first command that
// failed, or 0xFFFFFFF1 (firmware failure: no answer, a TPM the backend lost, an unknown operation).
// TPM 2.0: TPM2_Startup(CLEAR), TPM2_ClearControl(TPM_RH_PLATFORM, NO), TPM2_Clear(TPM_RH_PLATFORM),
// both with an empty password session. TPM 1.2: TPM_Startup(ST_CLEAR), TSC_PhysicalPresence
// (CMD_ENABLE, then PRESENT), then TPM_PhysicalEnable / TPM_PhysicalSetDeactivated(FALSE) /
// TPM_ForceClear as the operation says. The TPM is left started: power-cycle it afterwards.
uint32_t carry_out_ppi_request(TpmBackend& tpm, uint32_t operation);

}  // namespace minivmm
