#include "vmm/tpm_ppi_actions.hpp"

#include <array>
#include <vector>

#include "devices/tpm_ppi.hpp"
#include "vmm/log.hpp"
#include "vmm/swtpm_protocol.hpp"

namespace minivmm {

namespace {

// TPM 2.0 Part 2: TPM_ST_NO_SESSIONS / TPM_ST_SESSIONS, TPM_RH_PLATFORM, TPM_RS_PW.
constexpr uint16_t kTpm2NoSessions = 0x8001, kTpm2Sessions = 0x8002;
constexpr uint32_t kTpm2CcStartup = 0x144, kTpm2CcClear = 0x126, kTpm2CcClearControl = 0x127;
constexpr uint32_t kTpm2RhPlatform = 0x4000000C, kTpm2RsPw = 0x40000009;
constexpr uint16_t kTpm2SuClear = 0x0000;
// TPM 1.2 Part 2/3: TPM_TAG_RQU_COMMAND, ordinals, TPM_ST_CLEAR, TPM_PHYSICAL_PRESENCE_*.
constexpr uint16_t kTpm12RquCommand = 0x00C1;
constexpr uint32_t kTpm12OrdStartup = 0x99, kTpm12OrdForceClear = 0x5D, kTsc12OrdPhysicalPresence = 0x4000000A;
constexpr uint32_t kTpm12OrdPhysicalEnable = 0x6F, kTpm12OrdPhysicalSetDeactivated = 0x72;
constexpr uint16_t kTpm12StClear = 0x0001;
constexpr uint16_t kTpm12PpCmdEnable = 0x0020, kTpm12PpPresent = 0x0008;

class Command {
public:
    Command(uint16_t tag, uint32_t code) {
        put(tag, 2);
        put(0, 4);  // size, set by bytes()
        put(code, 4);
    }
    Command& put(uint64_t value, unsigned size) {
        for (unsigned i = size; i-- > 0;) bytes_.push_back(static_cast<uint8_t>(value >> (8 * i)));
        return *this;
    }
    // TPM 2.0 Part 1 §18.7: an authorization area with one password session, empty password.
    Command& empty_password_session() {
        put(9, 4);           // authorizationSize
        put(kTpm2RsPw, 4);   // sessionHandle
        put(0, 2);           // nonce: empty
        put(0, 1);           // sessionAttributes
        return put(0, 2);    // hmac (the password): empty
    }
    const std::vector<uint8_t>& bytes() {
        const auto size = static_cast<uint32_t>(bytes_.size());
        for (unsigned i = 0; i < 4; ++i) bytes_[2 + i] = static_cast<uint8_t>(size >> (8 * (3 - i)));
        return bytes_;
    }

private:
    std::vector<uint8_t> bytes_;
};

// The command's response code as the PPI response: 0, 1..0xFFF, or a firmware failure.
uint32_t run(TpmBackend& tpm, Command command, const char* what) noexcept {
    std::vector<uint8_t> response(tpm.buffer_size());
    const size_t n = tpm.execute(0, command.bytes(), response);
    if (n < swtpm::kTpmHeaderSize) {
        log::error("PPI: {}: no valid TPM response", what);
        return ppi::kResponseFirmwareFailure;
    }
    const uint32_t rc = swtpm::tpm_code(std::span(response.data(), n));
    if (rc != 0) log::warn("PPI: {} failed: TPM response code {:#x}", what, rc);
    if (rc > 0xFFF) return ppi::kResponseFirmwareFailure;  // outside the PPI response's TPM error range
    return rc;
}

uint32_t clear_tpm2(TpmBackend& tpm) noexcept {
    uint32_t rc = run(tpm, Command(kTpm2NoSessions, kTpm2CcStartup).put(kTpm2SuClear, 2), "TPM2_Startup(CLEAR)");
    if (rc != 0) return rc;
    // An owner may have disabled TPM2_Clear (TPM2_ClearControl YES); the platform may enable it.
    rc = run(tpm, Command(kTpm2Sessions, kTpm2CcClearControl).put(kTpm2RhPlatform, 4).empty_password_session().put(0, 1),
             "TPM2_ClearControl(TPM_RH_PLATFORM, NO)");
    if (rc != 0) return rc;
    return run(tpm, Command(kTpm2Sessions, kTpm2CcClear).put(kTpm2RhPlatform, 4).empty_password_session(),
               "TPM2_Clear(TPM_RH_PLATFORM)");
}

// TPM_Startup(ST_CLEAR) and physical presence asserted, as the firmware has it at boot.
uint32_t start_tpm12_present(TpmBackend& tpm) noexcept {
    uint32_t rc = run(tpm, Command(kTpm12RquCommand, kTpm12OrdStartup).put(kTpm12StClear, 2), "TPM_Startup(ST_CLEAR)");
    if (rc != 0) return rc;
    // Enabling the command fails harmlessly once it is enabled and locked (SeaBIOS's
    // tpm12_assert_physical_presence takes the same two steps).
    run(tpm, Command(kTpm12RquCommand, kTsc12OrdPhysicalPresence).put(kTpm12PpCmdEnable, 2),
        "TSC_PhysicalPresence(CMD_ENABLE)");
    return run(tpm, Command(kTpm12RquCommand, kTsc12OrdPhysicalPresence).put(kTpm12PpPresent, 2),
               "TSC_PhysicalPresence(PRESENT)");
}

// TPM 1.2 (PPI 1.3 Table 1): Clear is TPM_ForceClear, which needs an active TPM and leaves it
// disabled and deactivated; the combined operations enable (TPM_PhysicalEnable) and activate
// (TPM_PhysicalSetDeactivated(FALSE), which takes effect at the next TPM_Startup, so the TPM is
// power-cycled and started again right after it, as the firmware would reboot) around it.
uint32_t run_tpm12(TpmBackend& tpm, uint32_t operation) noexcept {
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
        case enable: rc = run(tpm, Command(kTpm12RquCommand, kTpm12OrdPhysicalEnable), "TPM_PhysicalEnable"); break;
        case activate:
            rc = run(tpm, Command(kTpm12RquCommand, kTpm12OrdPhysicalSetDeactivated).put(0, 1),
                     "TPM_PhysicalSetDeactivated(FALSE)");
            if (rc == 0) rc = tpm.power_cycle() ? start_tpm12_present(tpm) : ppi::kResponseFirmwareFailure;
            break;
        case clear: rc = run(tpm, Command(kTpm12RquCommand, kTpm12OrdForceClear), "TPM_ForceClear"); break;
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

uint32_t carry_out_ppi_request(TpmBackend& tpm, uint32_t operation) noexcept {
    if (!ppi_operations(tpm.version()).count(operation)) return ppi::kResponseFirmwareFailure;
    // On a TPM 2.0, every operation offered is a Clear (see ppi_operations).
    return tpm.version() == TpmVersion::v2_0 ? clear_tpm2(tpm) : run_tpm12(tpm, operation);
}

}  // namespace minivmm
