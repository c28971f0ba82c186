#include "vmm/tpm/tpm_ppi_actions.hpp"

#include <algorithm>
#include <array>
#include <span>
#include <vector>

#include "devices/tpm_ppi.hpp"
#include "vmm/base/log.hpp"
#include "vmm/tpm/tpm_message.hpp"

namespace minivmm {

namespace {

// TPM 2.0 Part 2: TPM_ST_SESSIONS, TPM_RH_PLATFORM.
constexpr uint16_t kTpm2NoSessions = kTpm2TagNoSessions, kTpm2Sessions = 0x8002;
constexpr uint32_t kTpm2CcStartup = 0x144, kTpm2CcClear = 0x126, kTpm2CcClearControl = 0x127;
constexpr uint32_t kTpm2RhPlatform = 0x4000000C;
constexpr uint16_t kTpm2SuClear = 0x0000;
// TPM 1.2 Part 2/3: TPM_TAG_RQU_COMMAND, ordinals, TPM_ST_CLEAR, TPM_PHYSICAL_PRESENCE_*.
constexpr uint16_t kTpm12RquCommand = 0x00C1;
constexpr uint32_t kTpm12OrdStartup = 0x99, kTpm12OrdForceClear = 0x5D, kTsc12OrdPhysicalPresence = 0x4000000A;
constexpr uint32_t kTpm12OrdPhysicalEnable = 0x6F, kTpm12OrdPhysicalSetDeactivated = 0x72;
constexpr uint16_t kTpm12StClear = 0x0001;
constexpr uint16_t kTpm12PpCmdEnable = 0x0020, kTpm12PpPresent = 0x0008;

// The command's response code as the PPI response: 0, 1..0xFFF, or a firmware failure.
uint32_t run(TpmBackend& tpm, const TpmCommand& command, const char* what) {
    std::vector<uint8_t> response(tpm.buffer_size());
    const size_t n = tpm.execute(0, command.done(), response);
    const std::span<const uint8_t> got(response.data(), n);
    const auto gone = tpm_failure_response(tpm.version());  // what a backend answers for a lost TPM
    if (n < kTpmHeaderSize || std::equal(got.begin(), got.end(), gone.begin(), gone.end())) {
        log::error("PPI: {}: the TPM did not answer", what);
        return ppi::kResponseFirmwareFailure;
    }
    const uint32_t rc = tpm_code(got);
    if (rc != 0) log::warn("PPI: {} failed: TPM response code {:#x}", what, rc);
    if (rc > 0xFFF) return ppi::kResponseFirmwareFailure;  // outside the PPI response's TPM error range
    return rc;
}

uint32_t clear_tpm2(TpmBackend& tpm) {
    uint32_t rc = run(tpm, TpmCommand(kTpm2NoSessions, kTpm2CcStartup).u16(kTpm2SuClear), "TPM2_Startup(CLEAR)");
    if (rc != 0) return rc;
    // An owner may have disabled TPM2_Clear (TPM2_ClearControl YES); the platform may enable it.
    rc = run(tpm, TpmCommand(kTpm2Sessions, kTpm2CcClearControl).u32(kTpm2RhPlatform).password_session().u8(0),
             "TPM2_ClearControl(TPM_RH_PLATFORM, NO)");
    if (rc != 0) return rc;
    return run(tpm, TpmCommand(kTpm2Sessions, kTpm2CcClear).u32(kTpm2RhPlatform).password_session(),
               "TPM2_Clear(TPM_RH_PLATFORM)");
}

// TPM_Startup(ST_CLEAR) and physical presence asserted, as the firmware has it at boot.
uint32_t start_tpm12_present(TpmBackend& tpm) {
    uint32_t rc = run(tpm, TpmCommand(kTpm12RquCommand, kTpm12OrdStartup).u16(kTpm12StClear), "TPM_Startup(ST_CLEAR)");
    if (rc != 0) return rc;
    // Enabling the command fails harmlessly once it is enabled and locked (SeaBIOS's
    // tpm12_assert_physical_presence takes the same two steps).
    run(tpm, TpmCommand(kTpm12RquCommand, kTsc12OrdPhysicalPresence).u16(kTpm12PpCmdEnable),
        "TSC_PhysicalPresence(CMD_ENABLE)");
    return run(tpm, TpmCommand(kTpm12RquCommand, kTsc12OrdPhysicalPresence).u16(kTpm12PpPresent),
               "TSC_PhysicalPresence(PRESENT)");
}

// TPM 1.2 (PPI 1.3 Table 1): Clear is TPM_ForceClear, which needs an active TPM and leaves it
// disabled and deactivated; the combined operations enable (TPM_PhysicalEnable) and activate
// (TPM_PhysicalSetDeactivated(FALSE), which takes effect at the next TPM_Startup, so the TPM is
// power-cycled and started again right after it, as the firmware would reboot) around it.
uint32_t run_tpm12(TpmBackend& tpm, uint32_t operation) {
    uint32_t rc = start_tpm12_present(tpm);
    if (rc != 0) return rc;
    enum Step { enable, activate, clear };
    std::vector<Step> steps;
    switch (operation) {
    case ppi::kOpClear: steps = {clear}; break;
    case ppi::kOpEnableClear: steps = {enable, clear}; break;
    case ppi::kOpEnableActivateClear: steps = {enable, activate, clear}; break;
    default: steps = {enable, activate, clear, enable, activate}; break;  // 22
    }
    for (Step step : steps) {
        switch (step) {
        case enable: rc = run(tpm, TpmCommand(kTpm12RquCommand, kTpm12OrdPhysicalEnable), "TPM_PhysicalEnable"); break;
        case activate:
            rc = run(tpm, TpmCommand(kTpm12RquCommand, kTpm12OrdPhysicalSetDeactivated).u8(0),
                     "TPM_PhysicalSetDeactivated(FALSE)");
            if (rc == 0) rc = tpm.power_cycle() ? start_tpm12_present(tpm) : ppi::kResponseFirmwareFailure;
            break;
        case clear: rc = run(tpm, TpmCommand(kTpm12RquCommand, kTpm12OrdForceClear), "TPM_ForceClear"); break;
        }
        if (rc != 0) return rc;
    }
    return 0;
}

}  // namespace

std::set<uint32_t> ppi_operations(TpmVersion version) {
    (void)version;  // the same four for both versions
    return {ppi::kOpClear, ppi::kOpEnableClear, ppi::kOpEnableActivateClear, ppi::kOpEnableActivateClearEnableActivate};
}

std::string ppi_operation_name(uint32_t operation) {
    switch (operation) {
    case ppi::kOpNone: return "No Operation";
    case ppi::kOpClear: return "Clear";
    case ppi::kOpEnableClear: return "Enable + Clear";
    case ppi::kOpEnableActivateClear: return "Enable + Activate + Clear";
    case ppi::kOpEnableActivateClearEnableActivate: return "Enable + Activate + Clear + Enable + Activate";
    default: return "operation " + std::to_string(operation);
    }
}

uint32_t carry_out_ppi_request(TpmBackend& tpm, uint32_t operation) {
    if (!ppi_operations(tpm.version()).count(operation)) return ppi::kResponseFirmwareFailure;
    // On a TPM 2.0, every operation offered is a Clear (see ppi_operations).
    return tpm.version() == TpmVersion::v2_0 ? clear_tpm2(tpm) : run_tpm12(tpm, operation);
}

}  // namespace minivmm
