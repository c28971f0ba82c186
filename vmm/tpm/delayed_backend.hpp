// minivmm-testhooks only (vmm/main.cpp includes it under MINIVMM_TEST_HOOKS; the production
// binary never contains it): a TpmBackend that takes a fixed extra time for every command before
// the real TPM behind it executes it, as a slow TPM chip or an swtpm on a loaded host does. Linux
// 6.4+ gives the TIS interrupt one command to show itself and sleeps only 1 ms after tpmGo
// (drivers/char/tpm/tpm_tis_core.c tpm_tis_send); tests/integration/test_tis_irq_linux.py boots
// it with MINIVMM_TEST_TPM_DELAY_MS=30 to check that the interrupt is still used.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <span>

#include "vmm/tpm/forwarding_backend.hpp"

namespace minivmm {

class DelayedBackend final : public ForwardingBackend {
public:
    DelayedBackend(std::unique_ptr<TpmBackend> real, std::chrono::milliseconds delay)
        : ForwardingBackend(std::move(real)), delay_(delay) {}

    size_t execute(uint8_t locality, std::span<const uint8_t> command, std::span<uint8_t> response) noexcept override {
        // A timed futex wait: the worker's seccomp filter allows it, not nanosleep.
        try {
            std::unique_lock lock(mutex_);
            never_.wait_for(lock, delay_, [] { return false; });
        } catch (...) {
        }
        return ForwardingBackend::execute(locality, command, response);
    }
private:
    std::chrono::milliseconds delay_;
    std::mutex mutex_;
    std::condition_variable never_;
};

}  // namespace minivmm
