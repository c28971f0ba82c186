// The one event that ends a machine run: reset, power-off, a fatal vCPU error, or the user
// quitting. Devices post through the SystemControl interface; vCPU threads post fatal errors;
// the first event wins. An eventfd wakes the main thread, which then stops every vCPU.
#pragma once

#include <atomic>
#include <mutex>
#include <string>

#include "devices/device.hpp"
#include "vmm/base/unique_fd.hpp"

namespace minivmm {

class MachineEvents final : public SystemControl {
public:
    enum class Kind { none, reset, poweroff, fatal, quit };

    MachineEvents();  // throws std::runtime_error if no eventfd can be made

    void request_reset() noexcept override { post(Kind::reset, "guest requested a reset"); }
    void request_poweroff() noexcept override { post(Kind::poweroff, "guest powered off"); }
    // Records the event if it is the first one; later ones are ignored.
    void post(Kind kind, std::string message) noexcept;

    bool pending() const noexcept { return kind_.load(std::memory_order_acquire) != Kind::none; }
    Kind kind() const noexcept { return kind_.load(std::memory_order_acquire); }
    std::string message() const;
    int fd() const noexcept { return fd_.get(); }  // readable once an event was posted

private:
    std::atomic<Kind> kind_{Kind::none};
    mutable std::mutex mutex_;
    std::string message_;
    UniqueFd fd_;
};

}  // namespace minivmm
