// A TpmBackend that hands every call to the real TPM behind it and overrides only what it changes:
// the test hooks' (minivmm-testhooks: canned_random_backend.hpp, delayed_backend.hpp) and the swtpm
// minivmm runs itself, which adds the process around the client (managed_swtpm.hpp).
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "vmm/tpm/tpm_backend.hpp"

namespace minivmm {

class ForwardingBackend : public TpmBackend {
public:
    explicit ForwardingBackend(std::unique_ptr<TpmBackend> real) : real_(std::move(real)) {}

    TpmVersion version() const noexcept override { return real_->version(); }
    size_t buffer_size() const noexcept override { return real_->buffer_size(); }
    void limit_buffer_size(size_t limit) noexcept override { real_->limit_buffer_size(limit); }
    bool power_cycle() noexcept override { return real_->power_cycle(); }
    size_t execute(uint8_t locality, std::span<const uint8_t> command, std::span<uint8_t> response) noexcept override {
        return real_->execute(locality, command, response);
    }
    void cancel() noexcept override { real_->cancel(); }
    bool established() noexcept override { return real_->established(); }
    void reset_established(uint8_t locality) noexcept override { real_->reset_established(locality); }
    void abandon() noexcept override { real_->abandon(); }
    void shutdown() noexcept override { real_->shutdown(); }
    bool save_state(std::vector<uint8_t>& out) noexcept override { return real_->save_state(out); }
    bool restore_state(std::span<const uint8_t> blob) noexcept override { return real_->restore_state(blob); }

private:
    std::unique_ptr<TpmBackend> real_;
};

}  // namespace minivmm
