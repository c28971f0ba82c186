// The TPM's version and the interface the guest reaches it through: chosen on the command line,
// used by the device models, the ACPI tables, the event log and the host backends.
#pragma once

namespace minivmm {

enum class TpmVersion { v1_2, v2_0 };

// How the guest talks to the TPM (TCG PC Client PTP): the FIFO interface (TIS) or the Command
// Response Buffer interface (CRB, TPM 2.0 only).
enum class TpmInterface { tis, crb };

}  // namespace minivmm
