#include "vmm/tpm/tpm_firmware.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "vmm/base/bytes.hpp"
#include "vmm/base/log.hpp"
#include "vmm/tpm/tpm_message.hpp"

namespace minivmm {

namespace {

// Command codes and parameters as SeaBIOS sends them (src/std/tcg.h; TPM 2.0 Part 2, TPM 1.2 Part 2).
constexpr uint16_t kTpm2Sessions = 0x8002;
constexpr uint32_t kTpm2CcStartup = 0x144, kTpm2CcSelfTest = 0x143, kTpm2CcGetCapability = 0x17A;
constexpr uint32_t kTpm2CcHierarchyChangeAuth = 0x129;
constexpr uint32_t kTpm2RhPlatform = 0x4000000C, kTpm2CapPcrs = 5;
constexpr uint16_t kTpm2SuClear = 0x0000;
constexpr uint8_t kTpm2Yes = 1;
constexpr uint16_t kTpm12RquCommand = 0x00C1;
constexpr uint32_t kTpm12OrdStartup = 0x99, kTpm12OrdSelfTestFull = 0x50, kTsc12OrdPhysicalPresence = 0x4000000A;
constexpr uint16_t kTpm12StClear = 0x0001;
constexpr uint16_t kTpm12PpCmdEnable = 0x0020, kTpm12PpPresent = 0x0008, kTpm12PpNotPresentLock = 0x0014;

// Digest sizes of the hash algorithms SeaBIOS knows (src/tcgbios.c hash_parameters; TCG Algorithm
// Registry): SHA-1, SHA-256, SHA-384, SHA-512, SM3-256, SHA3-256, SHA3-384, SHA3-512.
uint16_t digest_size(uint16_t alg) {
    switch (alg) {
    case 0x0004: return 20;
    case 0x000B: case 0x0012: case 0x0027: return 32;
    case 0x000C: case 0x0028: return 48;
    case 0x000D: case 0x0029: return 64;
    default: return 0;
    }
}

// Sends `command` at locality 0. The whole response when it is a well-formed success; otherwise
// nullopt with `error` set to one line.
std::optional<std::vector<uint8_t>> send(TpmBackend& tpm, const TpmCommand& command, const char* what,
                                         std::string& error) {
    std::vector<uint8_t> response(tpm.buffer_size());
    response.resize(tpm.execute(0, command.done(), response));
    if (response.size() < kTpmHeaderSize || tpm_size(response) != response.size()) {
        error = fmt::format("{}: no well-formed response from the TPM ({} bytes)", what, response.size());
        return std::nullopt;
    }
    if (const uint32_t rc = tpm_code(response); rc != 0) {
        error = fmt::format("{} failed: {} {:#x}", what, tpm.version() == TpmVersion::v2_0 ? "TPM_RC" : "TPM_RESULT", rc);
        return std::nullopt;
    }
    return response;
}

// TPM2_GetCapability(TPM_CAP_PCRS) response (TPM 2.0 Part 3 §30.2, Part 2 §10.9.7, §10.5.2):
// header, moreData u8, capability u32, TPML_PCR_SELECTION {count u32, count x TPMS_PCR_SELECTION
// {hash u16, sizeofSelect u8, pcrSelect[sizeofSelect]}}, nothing after (SeaBIOS
// tpm20_write_EfiSpecIdEventStruct refuses trailing bytes too). Read from an external TPM: every
// field is bounds-checked.
bool parse_pcr_banks(std::span<const uint8_t> r, FirmwareTpmStart& out) {
    constexpr const char* what = "TPM2_GetCapability(TPM_CAP_PCRS)";
    size_t at = kTpmHeaderSize + 1;
    if (r.size() < at + 8 || load_be32(r, at) != kTpm2CapPcrs) {
        out.error = fmt::format("{}: malformed response ({} bytes)", what, r.size());
        return false;
    }
    const uint32_t count = load_be32(r, at + 4);
    at += 8;
    for (uint32_t i = 0; i < count; ++i) {
        if (r.size() - at < 3 || r.size() - at - 3 < r[at + 2]) {
            out.error = fmt::format("{}: malformed response (selection {} of {} runs past its {} bytes)", what, i + 1,
                                    count, r.size());
            return false;
        }
        const uint16_t alg = load_be16(r, at);
        const auto select = r.subspan(at + 3, r[at + 2]);
        at += 3 + select.size();
        if (std::all_of(select.begin(), select.end(), [](uint8_t b) { return b == 0; })) continue;  // not allocated
        const uint16_t size = digest_size(alg);
        if (size == 0) {
            out.error = fmt::format("{}: PCR bank of unknown hash algorithm {:#06x}", what, alg);
            return false;
        }
        for (const auto& seen : out.banks)
            if (seen.id == alg) {
                out.error = fmt::format("{}: malformed response (hash algorithm {:#06x} listed twice)", what, alg);
                return false;
            }
        out.banks.push_back({alg, size});
    }
    if (at != r.size()) {
        out.error = fmt::format("{}: malformed response ({} bytes after the selections)", what, r.size() - at);
        return false;
    }
    if (out.banks.empty()) {
        out.error = fmt::format("{}: no PCR bank is allocated", what);
        return false;
    }
    return true;
}

// SeaBIOS tpm20_startup.
bool start_tpm2(TpmBackend& tpm, FirmwareTpmStart& out) {
    if (!send(tpm, TpmCommand(kTpm2TagNoSessions, kTpm2CcStartup).u16(kTpm2SuClear), "TPM2_Startup", out.error))
        return false;
    if (!send(tpm, TpmCommand(kTpm2TagNoSessions, kTpm2CcSelfTest).u8(kTpm2Yes), "TPM2_SelfTest", out.error))
        return false;
    // property 0, propertyCount 1: for TPM_CAP_PCRS the TPM returns the whole allocation whatever
    // the count (Part 3 §30.2).
    auto caps = send(tpm, TpmCommand(kTpm2TagNoSessions, kTpm2CcGetCapability).u32(kTpm2CapPcrs).u32(0).u32(1),
                     "TPM2_GetCapability(TPM_CAP_PCRS)", out.error);
    return caps && parse_pcr_banks(*caps, out);
}

// SeaBIOS tpm12_startup and tpm12_assert_physical_presence. SeaBIOS reads the permanent flags
// before enabling the command; CMD_ENABLE fails by itself where they say it may not be sent
// (physicalPresenceLifetimeLock, TPM 1.2 Part 3 §6.2.1), so it is simply tried.
bool start_tpm12(TpmBackend& tpm, FirmwareTpmStart& out) {
    if (!send(tpm, TpmCommand(kTpm12RquCommand, kTpm12OrdStartup).u16(kTpm12StClear), "TPM_Startup(ST_CLEAR)", out.error))
        return false;
    std::string pp_error;
    const TpmCommand present = TpmCommand(kTpm12RquCommand, kTsc12OrdPhysicalPresence).u16(kTpm12PpPresent);
    if (!send(tpm, present, "TSC_PhysicalPresence(PRESENT)", pp_error)) {
        send(tpm, TpmCommand(kTpm12RquCommand, kTsc12OrdPhysicalPresence).u16(kTpm12PpCmdEnable),
             "TSC_PhysicalPresence(CMD_ENABLE)", pp_error);
        if (!send(tpm, present, "TSC_PhysicalPresence(PRESENT)", pp_error))
            log::warn("TPM: physical presence not asserted: {}", pp_error);
    }
    if (!send(tpm, TpmCommand(kTpm12RquCommand, kTpm12OrdSelfTestFull), "TPM_SelfTestFull", out.error)) return false;
    // SeaBIOS sends TSC_ResetEstablishmentBit from locality 3; the backend's own reset does the
    // same (swtpm: CMD_RESET_TPMESTABLISHED) and keeps its cached flag right.
    tpm.reset_established(3);
    out.banks = {{tcg_log::kAlgSha1, 20}};
    return true;
}

}  // namespace

FirmwareTpmStart start_tpm_as_firmware(TpmBackend& tpm) noexcept {
    FirmwareTpmStart out;
    try {
        out.ok = tpm.version() == TpmVersion::v2_0 ? start_tpm2(tpm, out) : start_tpm12(tpm, out);
        if (!out.ok) out.banks.clear();
    } catch (...) {  // out of memory
        out.ok = false;
        out.banks.clear();
        out.error.clear();  // a line would need memory too; the caller still sees !ok
    }
    return out;
}

std::vector<std::vector<uint8_t>> firmware_lock_commands(TpmVersion version, std::span<const uint8_t, 32> random) {
    if (version == TpmVersion::v1_2)
        return {TpmCommand(kTpm12RquCommand, kTsc12OrdPhysicalPresence).u16(kTpm12PpNotPresentLock).done()};
    // TPM2B_AUTH newAuth: size, then the bytes (Part 3 §24.8).
    return {TpmCommand(kTpm2Sessions, kTpm2CcHierarchyChangeAuth)
                .u32(kTpm2RhPlatform)
                .password_session()
                .u16(static_cast<uint16_t>(random.size()))
                .bytes({random.begin(), random.end()})
                .done()};
}

}  // namespace minivmm
