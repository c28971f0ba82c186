// What a BIOS does to the TPM when there is no BIOS (-bios none): minivmm itself starts the TPM
// as SeaBIOS does before the first boot device runs (src/tcgbios.c tpm_setup, tpm20_startup,
// tpm12_startup), and gives the commands SeaBIOS sends last, before the OS runs, so that the OS
// cannot use the platform hierarchy (tpm_prepboot, tpm20_prepboot). The event log itself is
// firmware/tcg_event_log.hpp's; the measurements are the caller's.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "firmware/tcg_event_log.hpp"
#include "vmm/tpm/tpm_backend.hpp"

namespace minivmm {

// What SeaBIOS's tpm_setup/tpm20_startup/tpm12_startup do before the first boot device runs.
struct FirmwareTpmStart {
    bool ok = false;
    std::string error;                      // one line when !ok, e.g. "TPM2_Startup failed: TPM_RC 0x100"
    std::vector<tcg_log::Algorithm> banks;  // TPM 2.0: the active PCR banks, in the TPM's order; TPM 1.2: {SHA-1, 20}
};

// On a TPM that was just power-cycled, at locality 0:
//   TPM 2.0: TPM2_Startup(TPM_SU_CLEAR), TPM2_SelfTest(fullTest = YES), TPM2_GetCapability
//            (TPM_CAP_PCRS): the banks are those with a PCR selected (a non-zero pcrSelect byte).
//            Digest sizes from the algorithm IDs (SHA-1, SHA-256, SHA-384, SHA-512, SM3-256,
//            SHA3-256/384/512, SeaBIOS's hash_parameters); a bank of another algorithm, no bank,
//            or a malformed reply: !ok with a line naming it.
//   TPM 1.2: TPM_Startup(ST_CLEAR); physical presence asserted: TSC_PhysicalPresence(PRESENT),
//            and if that fails TSC_PhysicalPresence(CMD_ENABLE) and PRESENT again (a TPM that
//            refuses both is used without it, as SeaBIOS does: logged, still ok);
//            TPM_SelfTestFull; the tpmEstablished flag reset from locality 3
//            (TpmBackend::reset_established, SeaBIOS's TSC_ResetEstablishmentBit).
// Any other command that fails: !ok, the TPM left as that command left it.
FirmwareTpmStart start_tpm_as_firmware(TpmBackend& tpm) noexcept;

// The commands the firmware sends last, before the OS runs (SeaBIOS tpm_prepboot), in order:
//   TPM 2.0: TPM2_HierarchyChangeAuth(TPM_RH_PLATFORM, newAuth = `random`) with an empty password
//            session. No TPM2_StirRandom: SeaBIOS (tpm20_prepboot) stirs the TPM's generator only
//            because it then takes newAuth from TPM2_GetRandom; here newAuth comes from the caller.
//   TPM 1.2: TSC_PhysicalPresence(NOTPRESENT | LOCK) (TPM_PP_NOT_PRESENT_LOCK, 0x0014).
std::vector<std::vector<uint8_t>> firmware_lock_commands(TpmVersion version, std::span<const uint8_t, 32> random);

}  // namespace minivmm
