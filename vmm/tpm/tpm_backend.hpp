// A TPM implementation on the host side: an external swtpm (control socket + data channel) or
// libtpms linked in-process. Calls are synchronous and made from the TPM worker thread (execute)
// or at machine set-up/reset (power_cycle). Run-time failures never throw: execute() always
// produces a response, a TPM failure response when the TPM is gone, and logs one clear line.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "devices/tpm_types.hpp"

namespace minivmm {

class TpmBackend {
public:
    virtual ~TpmBackend() = default;
    virtual TpmVersion version() const noexcept = 0;
    virtual size_t buffer_size() const noexcept = 0;
    // Lowers buffer_size() to `limit` (never raises it) from the next power_cycle() on, which tells
    // the TPM (swtpm: CMD_SET_BUFFERSIZE; libtpms: TPMLIB_SetBufferSize), so its responses and the
    // commands it advertises fit the guest interface's buffer (CRB: 0xF80 bytes, as QEMU does).
    virtual void limit_buffer_size(size_t limit) noexcept = 0;
    // Power-cycle the TPM, as at every machine power-on/reset (swtpm: CMD_STOP,
    // CMD_SET_BUFFERSIZE, CMD_INIT). The firmware then sends TPM_Startup. Returns false (and
    // logs) if the TPM could not be restarted; the guest will then see failures.
    virtual bool power_cycle() noexcept = 0;
    // Runs one command; returns the response length written into `response`.
    virtual size_t execute(uint8_t locality, std::span<const uint8_t> command, std::span<uint8_t> response) noexcept = 0;
    // From another thread while execute() runs.
    virtual void cancel() noexcept = 0;
    virtual bool established() noexcept = 0;
    virtual void reset_established(uint8_t locality) noexcept = 0;
    // From another thread: stop waiting for the command in flight, if the backend can wait long
    // (machine reset and VMM exit must not wait for a stalled external TPM).
    virtual void abandon() noexcept {}
    // Orderly shutdown at VMM exit (swtpm: CMD_SHUTDOWN).
    virtual void shutdown() noexcept = 0;

    // Snapshots (vmm/tpm/tpm_state_blob.hpp has the format). Precondition for both: no execute()
    // runs or will start meanwhile (the machine's TpmWorker is idle and the vCPUs are paused).
    // save_state(): the running TPM's whole state (permanent, volatile, save state) as one
    // versioned blob in `out`; the TPM keeps running unchanged. restore_state(): replaces the
    // TPM's state with a blob save_state() made (this backend kind or another with the same
    // TPM version); afterwards the TPM runs as the saved one did: no power_cycle() and no
    // TPM_Startup. Both return false with one log line on any failure; a refused blob leaves
    // the TPM usable (the backends keep or restore the previous state, see each backend).
    // The defaults refuse: a backend that cannot do it says so.
    virtual bool save_state(std::vector<uint8_t>& out) noexcept {
        (void)out;
        return false;
    }
    virtual bool restore_state(std::span<const uint8_t> blob) noexcept {
        (void)blob;
        return false;
    }
};

}  // namespace minivmm
