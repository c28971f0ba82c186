#include "vmm/kvm/machine_events.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace minivmm {

MachineEvents::MachineEvents() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (!fd_.valid()) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
}

void MachineEvents::post(Kind kind, std::string message) noexcept {
    Kind expected = Kind::none;
    {
        std::lock_guard lock(mutex_);
        if (!kind_.compare_exchange_strong(expected, kind, std::memory_order_acq_rel)) return;
        message_ = std::move(message);
    }
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(fd_.get(), &one, sizeof one);
}

std::string MachineEvents::message() const {
    std::lock_guard lock(mutex_);
    return message_;
}

}  // namespace minivmm
