// The two sides of a TPM device model. TpmPort is where the TIS or CRB sends the guest's commands
// (the machine's TPM worker, vmm/tpm/tpm_worker.hpp; a scripted fake in unit tests and fuzzers): a
// device never talks to a socket or to libtpms. TpmFrontend is the device itself, told through
// command_completed() that the response is ready (from the worker thread, under the device lock).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "devices/device.hpp"
#include "devices/tpm_types.hpp"

namespace minivmm {

class TpmPort {
public:
    virtual ~TpmPort() = default;
    virtual TpmVersion version() const noexcept = 0;
    // The largest command or response the TPM accepts (the TIS buffer size, e.g. 4096).
    virtual size_t buffer_size() const noexcept = 0;
    // Starts executing one command at `locality`; the bytes are copied before returning. Exactly
    // one command is outstanding at a time; the device learns of its end via command_completed().
    virtual void submit(uint8_t locality, std::span<const uint8_t> command) noexcept = 0;
    // Asks the TPM to abort the outstanding command (TIS STS.commandCancel); it still completes.
    virtual void cancel() noexcept = 0;
    // The TPM's tpmEstablished flag (ACCESS bit 0), cached by the backend: cheap to call.
    virtual bool established() const noexcept = 0;
    // STS.resetEstablishment (only honoured by the TPM from locality 3 or 4).
    virtual void reset_established(uint8_t locality) noexcept = 0;
};

// The guest-facing side: TpmTis or TpmCrb. The response of the command the device submitted
// arrives here, under the machine's device lock; a call with no command outstanding is ignored.
class TpmFrontend : public Device {
public:
    virtual void command_completed(std::span<const uint8_t> response) noexcept = 0;
    // True while the command executing is the guest's first chance to see the TPM's interrupt
    // since it enabled it: the driver's test of the interrupt (Linux tpm_tis_core.c
    // tpm_tis_send). An interface without an interrupt: false.
    virtual bool interrupt_on_trial() const noexcept { return false; }
};

}  // namespace minivmm
