// Connects the TIS device model to a synchronous TpmBackend: the device submits a command
// (never blocking on the TPM), a worker thread runs TpmBackend::execute() and hands the response
// to `on_complete` (the machine's wrapper: take the device lock, call TpmTis::command_completed).
// QEMU does the same with a thread-pool job per command (backends/tpm/tpm_backend.c).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <span>
#include <thread>
#include <vector>

#include "devices/tpm_port.hpp"
#include "vmm/tpm/tpm_backend.hpp"

namespace minivmm {

class TpmWorker final : public TpmPort {
public:
    using Completion = std::function<void(std::span<const uint8_t>)>;

    // Starts the worker thread. `backend` must outlive the worker. `on_complete` runs on the
    // worker thread, once per submitted command, in submission order, never after the
    // destructor returned. (Machine reset destroys the worker and makes a new one.)
    TpmWorker(TpmBackend& backend, Completion on_complete);
    // Stops the thread; abandons a command in flight (TpmBackend::abandon) and waits for the
    // backend to return, dropping its response and any queued commands. Must not be called with the lock that
    // `on_complete` takes held (it may be waiting for it).
    ~TpmWorker() override;
    TpmWorker(const TpmWorker&) = delete;
    TpmWorker& operator=(const TpmWorker&) = delete;

    TpmVersion version() const noexcept override { return backend_.version(); }
    size_t buffer_size() const noexcept override { return backend_.buffer_size(); }
    // Copies the command and wakes the worker; never waits for the backend.
    void submit(uint8_t locality, std::span<const uint8_t> command) noexcept override;
    // Forwards to the backend if a command is executing (from this thread, on the control channel).
    void cancel() noexcept override;
    // Cached here: read from the backend when the worker starts (the machine's power-on, on the
    // thread that builds it) and again by the worker thread after each job, so a vCPU reading
    // LOC_STATE or ACCESS never waits for a socket round trip to swtpm.
    bool established() const noexcept override { return established_.load(std::memory_order_acquire); }
    // -restore: the backend took the snapshot's state while this worker was built (Machine::restore);
    // reads the flag again, on the calling thread, before any job.
    void refresh_established() noexcept { established_.store(backend_.established(), std::memory_order_release); }
    // Queued for the worker thread, after the commands before it, never waited for: the vCPU
    // that asks must not write the TPM's state files (libtpms TPM 1.2 writes its NV here; the
    // vCPU's sandbox filter has no file system calls). established() reads the old flag until
    // the worker has run it.
    void reset_established(uint8_t locality) noexcept override;

    // A command the platform sends (the measurements of a -kernel boot), queued behind the guest's
    // commands and before any it sends later; its response goes to the log, not to the device: a
    // failure is logged as "<what>: ...". Not counted in stats(), which describe the guest's commands.
    void submit_platform(std::vector<uint8_t> command, std::string what) noexcept;

    // Waits up to `limit` until no job is queued or running (its completion delivered); true if
    // idle. Must not be called with the lock that `on_complete` takes held.
    bool wait_idle(std::chrono::microseconds limit) noexcept;
    // The same for a vCPU that stalls on the TPM (TpmSlot::Attachment), which also ends, at once,
    // while stalls are cut: Machine::stop_vcpus cuts them so that a stop (pause, reset, exit)
    // never waits for a stalled vCPU; the vCPUs' next start allows them again.
    void stall(std::chrono::microseconds limit) noexcept;
    void cut_stalls(bool cut) noexcept;

    // Commands submitted and not yet completed or dropped (for tests and diagnostics).
    size_t outstanding() const noexcept;

    // What the TPM did for the guest since this worker started (one machine power-on, a boot):
    // the firmware's measurements are PCR extends; failures are TPM failure answers (a dead or
    // broken backend); cancelled counts commands the guest gave up on while they executed.
    struct Stats {
        unsigned commands = 0;
        unsigned extends = 0;
        unsigned failures = 0;
        unsigned cancelled = 0;
        // The command that took longest in the backend, for "slow TPM" diagnostics.
        uint32_t slowest_ordinal = 0;
        unsigned slowest_ms = 0;
    };
    Stats stats() const noexcept;

    // Commands beyond this many waiting are dropped (the TIS has at most one outstanding).
    static constexpr size_t kMaxQueued = 8;

private:
    struct Job {
        enum class Kind { command, reset_established, platform } kind;
        uint8_t locality;
        std::vector<uint8_t> command;
        std::string what;  // platform commands
    };
    void run() noexcept;

    TpmBackend& backend_;
    Completion on_complete_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;   // worker: a job arrived or stop
    std::condition_variable idle_;   // destructor: the running job finished
    std::deque<Job> queue_;
    bool running_ = false;           // a job is between dequeue and the end of its completion
    bool stop_ = false;
    bool stalls_cut_ = false;
    Stats stats_;                    // guarded by mutex_
    std::vector<uint8_t> response_;  // worker thread only
    std::atomic<bool> established_;  // the backend's flag, as of the last job
    std::thread thread_;             // last: started after everything above exists
};

}  // namespace minivmm
