// What the TPM device models (TIS, CRB) need from the rest of the VMM. A device never talks to a
// socket or to libtpms: it submits a command buffer and is told later, through
// TpmFrontend::command_completed(), that the response is ready (from a worker thread, under the
// machine's device lock). Unit tests and fuzzers implement this with a scripted fake.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "devices/device.hpp"

namespace minivmm {

enum class TpmVersion { v1_2, v2_0 };

// How the guest talks to the TPM (TCG PC Client PTP): the FIFO interface (TIS) or the Command
// Response Buffer interface (CRB, TPM 2.0 only).
enum class TpmInterface { tis, crb };

class TpmDeviceBackend {
public:
    virtual ~TpmDeviceBackend() = default;
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
};

}  // namespace minivmm
