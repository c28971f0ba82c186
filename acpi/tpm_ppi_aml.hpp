// The TPM device's Physical Presence Interface in AML (TCG PC Client Platform Physical Presence
// Interface Specification 1.3 §2, "ACPI Functions"): an OperationRegion over the mailbox of
// devices/tpm_ppi.hpp and a _DSM for the PPI UUID 3DDDFAA6-361B-4EB4-A424-8D10089D1653. Functions
// 0 (which functions exist: 0-8) and 1 (the version, "1.3") are answered in AML; 2-8 go through
// the mailbox, where the VMM carries them out. Linux shows the result as
// /sys/class/tpm/tpm0/ppi/{version,request,response,transition_action,tcg_operations,...}.
#pragma once

#include <cstdint>
#include <vector>

#include "acpi/aml.hpp"

namespace minivmm {

inline constexpr const char* kTpmPpiUuid = "3dddfaa6-361b-4eb4-a424-8d10089d1653";

// The terms to put inside the TPM device: the region, its fields and _DSM.
std::vector<aml::Bytes> build_tpm_ppi_aml(uint64_t mailbox_base);

}  // namespace minivmm
