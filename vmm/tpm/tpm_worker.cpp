#include "vmm/tpm/tpm_worker.hpp"

#include <algorithm>
#include <chrono>

#include "vmm/base/log.hpp"
#include "vmm/tpm/tpm_message.hpp"

namespace minivmm {

namespace {

// Ordinals and return codes of the header (TPM 2.0 Part 2 §6.5, §6.6; TPM 1.2 Part 2 §17, §16).
bool is_extend(TpmVersion v, uint32_t ordinal) noexcept {
    return v == TpmVersion::v2_0 ? ordinal == 0x182 /* TPM2_CC_PCR_Extend */ || ordinal == 0x13C /* PCR_Event */
                                 : ordinal == 0x14 /* TPM_ORD_Extend */ || ordinal == 0xA3 /* SHA1CompleteExtend */;
}
bool is_failure(TpmVersion v, uint32_t rc) noexcept {
    return rc == (v == TpmVersion::v2_0 ? kTpm2RcFailure : kTpm12Fail);
}

}  // namespace

TpmWorker::TpmWorker(TpmBackend& backend, Completion on_complete)
    : backend_(backend), on_complete_(std::move(on_complete)),
      response_(std::max<size_t>(backend.buffer_size(), 10)), established_(backend.established()),
      thread_([this] { run(); }) {}

TpmWorker::~TpmWorker() {
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
        queue_.clear();
        if (running_) backend_.abandon();
    }
    wake_.notify_all();
    thread_.join();
}

void TpmWorker::submit(uint8_t locality, std::span<const uint8_t> command) noexcept {
    try {
        std::lock_guard lock(mutex_);
        if (stop_) return;
        if (queue_.size() >= kMaxQueued) {
            log::debug("tpm: {} commands already queued; dropping a {}-byte command", queue_.size(), command.size());
            return;
        }
        queue_.push_back(Job{Job::Kind::command, locality, std::vector<uint8_t>(command.begin(), command.end()), {}});
    } catch (...) {
        log::error("tpm: out of memory queueing a TPM command");
        return;
    }
    wake_.notify_one();
}

void TpmWorker::reset_established(uint8_t locality) noexcept {
    try {
        std::lock_guard lock(mutex_);
        if (stop_) return;
        queue_.push_back(Job{Job::Kind::reset_established, locality, {}, {}});
    } catch (...) {
        log::error("tpm: out of memory queueing a reset of the established flag");
        return;
    }
    wake_.notify_one();
}

void TpmWorker::submit_platform(std::vector<uint8_t> command, std::string what) noexcept {
    try {
        std::lock_guard lock(mutex_);
        if (stop_) return;
        queue_.push_back(Job{Job::Kind::platform, 0, std::move(command), std::move(what)});
    } catch (...) {
        log::error("tpm: out of memory queueing a platform command");
        return;
    }
    wake_.notify_one();
}

void TpmWorker::cancel() noexcept {
    {
        std::lock_guard lock(mutex_);
        if (!running_) return;
        ++stats_.cancelled;
    }
    // Outside the lock: the backend may take a while; a command that finished meanwhile makes
    // the cancel a harmless no-op (swtpm ignores a cancel while idle).
    backend_.cancel();
}

TpmWorker::Stats TpmWorker::stats() const noexcept {
    std::lock_guard lock(mutex_);
    return stats_;
}

bool TpmWorker::wait_idle(std::chrono::microseconds limit) noexcept {
    try {
        std::unique_lock lock(mutex_);
        return idle_.wait_for(lock, limit, [this] { return stop_ || (queue_.empty() && !running_); });
    } catch (...) {
        return false;  // a failed wait only costs the guest another poll
    }
}

void TpmWorker::stall(std::chrono::microseconds limit) noexcept {
    try {
        std::unique_lock lock(mutex_);
        idle_.wait_for(lock, limit, [this] { return stop_ || stalls_cut_ || (queue_.empty() && !running_); });
    } catch (...) {
        // a failed wait only costs the guest another poll
    }
}

void TpmWorker::cut_stalls(bool cut) noexcept {
    {
        std::lock_guard lock(mutex_);
        stalls_cut_ = cut;
    }
    if (cut) idle_.notify_all();
}

size_t TpmWorker::outstanding() const noexcept {
    std::lock_guard lock(mutex_);
    return queue_.size() + (running_ ? 1 : 0);
}

void TpmWorker::run() noexcept {
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [this] { return stop_ || !queue_.empty(); });
        if (stop_) break;
        Job job = std::move(queue_.front());
        queue_.pop_front();
        running_ = true;
        lock.unlock();

        if (job.kind == Job::Kind::reset_established) {
            backend_.reset_established(job.locality);
            established_.store(backend_.established(), std::memory_order_release);
            lock.lock();
            running_ = false;
            idle_.notify_all();
            continue;
        }
        if (job.kind == Job::Kind::platform) {
            // TPM 2.0 Part 1 §18.4 / TPM 1.2 Part 2 §6: the return code follows tag and size.
            const size_t n = std::min(backend_.execute(job.locality, job.command, response_), response_.size());
            if (n < 10) log::error("{}: the TPM gave no answer", job.what);
            else if (const uint32_t rc = tpm_code(std::span<const uint8_t>(response_.data(), n)); rc != 0)
                log::error("{}: the TPM answered error {:#x}", job.what, rc);
            else log::debug("{}: done", job.what);
            lock.lock();
            running_ = false;
            idle_.notify_all();
            continue;
        }
        const auto started = std::chrono::steady_clock::now();
        size_t n = backend_.execute(job.locality, job.command, response_);
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
        n = std::min(n, response_.size());
        const std::span<const uint8_t> answer(response_.data(), n);
        established_.store(backend_.established(), std::memory_order_release);  // before the guest sees the answer
        const TpmVersion version = backend_.version();

        lock.lock();
        ++stats_.commands;
        const uint32_t ordinal = job.command.size() >= 10 ? tpm_code(job.command) : 0;
        log::debug("tpm: command 0x{:x} took {} ms in the backend", ordinal, ms.count());
        if (static_cast<uint64_t>(ms.count()) >= stats_.slowest_ms) {
            stats_.slowest_ms = static_cast<unsigned>(std::min<int64_t>(ms.count(), UINT32_MAX));
            stats_.slowest_ordinal = ordinal;
        }
        // The header's third field: the command's ordinal, the response's return code.
        if (n >= 10 && tpm_code(answer) == 0 && is_extend(version, tpm_code(job.command))) ++stats_.extends;
        if (n >= 10 && is_failure(version, tpm_code(answer))) ++stats_.failures;
        // Delivery is decided and performed with running_ still set, so the destructor waits
        // for the callback to return.
        if (!stop_) {
            lock.unlock();
            try {
                on_complete_(std::span<const uint8_t>(response_.data(), n));
            } catch (...) {
                log::error("tpm: the TPM completion handler threw; response dropped");
            }
            lock.lock();
        }
        running_ = false;
        idle_.notify_all();
    }
    running_ = false;
    idle_.notify_all();
}

}  // namespace minivmm
