// The TCG Physical Presence Interface (TCG PC Client Platform Physical Presence Interface
// Specification 1.3): the OS asks, through ACPI _DSM on the TPM device, for an operation that
// needs a physically present user (clear the TPM, ...); the platform carries it out at the next
// boot, before the OS runs, and reports the result back through _DSM.
//
// This is the register block the _DSM talks to (acpi/tpm_ppi_aml.cpp): a mailbox at
// platform::kTpmPpiBase. The AML writes the function's revision and arguments, then the function
// index, which runs the function here; then it reads up to three results. Each register is 32
// bits, little-endian, accessed as a whole aligned dword:
//   +0x00 FUNC   write: run _DSM function N (§2.1); read: the last one run
//   +0x04 REV    _DSM revision (Arg1): 1, or 2 for an operation with a parameter
//   +0x08 OP     Arg3[0]: the operation (functions 2, 7, 8)
//   +0x0C PARAM  Arg3[1]: the operation's parameter (function 7, revision 2)
//   +0x10 RET0   the function's return value, or the first element of the package it returns
//   +0x14 RET1, +0x18 RET2  the package's further elements (functions 3 and 5)
// State (the pending request, the last request and its response) lives as long as the object:
// minivmm keeps one per run, so a request survives guest reboots but not minivmm's exit.
// No lock inside (devices/device.hpp): guest accesses run under the device lock; minivmm takes
// and completes requests (pending / complete) only while no machine runs.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <span>
#include <string_view>

#include "devices/device.hpp"
#include "devices/device_state.hpp"

namespace minivmm {

namespace ppi {
inline constexpr uint64_t kFunc = 0x00, kRev = 0x04, kOp = 0x08, kParam = 0x0C;
inline constexpr uint64_t kRet0 = 0x10, kRet1 = 0x14, kRet2 = 0x18;
inline constexpr uint64_t kRegisterBlockSize = 0x1C;

// _DSM function indices (PPI 1.3 §2.1.1-§2.1.10).
inline constexpr uint32_t kFnSubmitRequest = 2, kFnGetRequest = 3, kFnTransitionAction = 4;
inline constexpr uint32_t kFnGetResponse = 5, kFnSubmitLanguage = 6, kFnSubmitRequest2 = 7;
inline constexpr uint32_t kFnUserConfirmation = 8;

// Return codes.
inline constexpr uint32_t kSuccess = 0, kNotSupported = 1, kGeneralFailure = 2;
inline constexpr uint32_t kNotImplemented = 3;  // function 6
inline constexpr uint32_t kActionReboot = 2;    // function 4: the platform must reboot
// Function 8 (§2.1.10): 0 not implemented, 4 allowed without a physically present user.
inline constexpr uint32_t kConfirmNotImplemented = 0, kConfirmNotRequired = 4;
// Responses to a request (function 5's third element): 0 success, 1..0xFFF the TPM's error
// code, 0xFFFFFFF1 a firmware (here: the VMM's) failure.
inline constexpr uint32_t kResponseFirmwareFailure = 0xFFFF'FFF1;

// Operations (PPI 1.3 Table 2, TPM 2.0; Table 1, TPM 1.2).
inline constexpr uint32_t kOpNone = 0, kOpClear = 5, kOpEnableClear = 14;
inline constexpr uint32_t kOpEnableActivateClear = 21, kOpEnableActivateClearEnableActivate = 22;
}  // namespace ppi

class TpmPpi : public Device, public SavesState {
public:
    // `operations`: the operation values this platform carries out (0, "no operation", is
    // always accepted; it cancels a pending request).
    explicit TpmPpi(std::set<uint32_t> operations);

    std::string_view name() const noexcept override { return "tpm-ppi"; }
    void read(uint64_t offset, std::span<uint8_t> data) noexcept override;
    void write(uint64_t offset, std::span<const uint8_t> data) noexcept override;

    struct Request {
        uint32_t operation;
        uint32_t parameter;
    };
    // The pending request, if any (operation 0 is not one); it stays pending until complete().
    std::optional<Request> pending() const noexcept;
    // Records the result of the pending request (`response` as function 5 reports it) and
    // clears it.
    void complete(uint32_t response) noexcept;

    // Snapshots, format version 1: u8 1, u32 FUNC, REV, OP, PARAM, RET0..2, the pending
    // request's operation and parameter, the last operation carried out and its response.
    // load_state() refuses an operation this platform does not carry out (pending or last) and
    // a parameter without an operation.
    void save_state(StateWriter& out) const override;
    bool load_state(std::span<const uint8_t> blob) noexcept override;

private:
    void run(uint32_t function) noexcept;
    bool supported(uint32_t operation) const noexcept { return operation == ppi::kOpNone || operations_.count(operation); }
    void submit(uint32_t operation, uint32_t parameter) noexcept;

    std::set<uint32_t> operations_;
    uint32_t func_ = 0, rev_ = 0, op_ = 0, param_ = 0;
    uint32_t ret_[3] = {};
    Request request_{};       // pending; operation 0 = none
    uint32_t last_op_ = 0;    // the most recent request carried out (0: none yet)
    uint32_t response_ = 0;   // its result
};

}  // namespace minivmm
