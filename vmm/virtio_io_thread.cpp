#include "vmm/virtio_io_thread.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

#include <fmt/core.h>

#include "vmm/base/error.hpp"
#include "vmm/base/log.hpp"
#include "vmm/host/sandbox.hpp"

namespace minivmm {

namespace {

// Completions between two interrupts at most while the driver keeps the ring full: it hears of
// the first ones before the last are done.
constexpr unsigned kInterruptBatch = 8;

UniqueFd make_eventfd(std::string_view what) {
    UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!fd.valid()) throw SetupError(kExitKvm, fmt::format("{}: eventfd: {}", what, std::strerror(errno)));
    return fd;
}

void signal_eventfd(int fd) noexcept {
    const uint64_t one = 1;
    // EAGAIN: the counter is full, the reader wakes anyway.
    while (::write(fd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

// Reads the eventfd's count back to 0; false on an error other than "already 0".
bool drain_eventfd(int fd) noexcept {
    uint64_t count = 0;
    return ::read(fd, &count, sizeof count) == sizeof count || errno == EAGAIN || errno == EINTR;
}

}  // namespace

VirtioIoThread::VirtioIoThread(VirtioPci& device, NotifyRoute route, std::mutex& device_lock, MachineEvents& events)
    : device_(device), route_(std::move(route)), device_lock_(device_lock), events_(events),
      name_(fmt::format("{} I/O", device.name())) {
    if (!route_) throw std::invalid_argument("VirtioIoThread: no notify route");
    wake_ = make_eventfd(name_);
    moved_ = make_eventfd(name_);
    fds_ = {{wake_.get(), POLLIN, 0}, {moved_.get(), POLLIN, 0}};
    for (uint16_t q = 0; q < device.num_queues(); ++q) {
        kicks_.push_back(make_eventfd(name_));
        fds_.push_back({kicks_.back().get(), POLLIN, 0});
    }
    device.set_queue_notifier(this);
}

VirtioIoThread::~VirtioIoThread() {
    stop();
    device_.set_queue_notifier(nullptr);
}

void VirtioIoThread::start() {
    if (thread_.joinable()) return;
    // Again after stop() (the machine was paused: vmm/machine_snapshot.cpp): stop's wake-up is
    // consumed; notifications it left unserved are still in their eventfds.
    if (stopping_.exchange(false)) drain_eventfd(wake_.get());
    try {
        thread_ = std::thread([this] { run(); });
    } catch (const std::exception& e) {
        throw SetupError(kExitInternal, fmt::format("{}: cannot start its thread: {}", name_, e.what()));
    }
}

void VirtioIoThread::stop() noexcept {
    stopping_.store(true, std::memory_order_release);
    signal_eventfd(wake_.get());
    if (thread_.joinable()) thread_.join();
}

void VirtioIoThread::notify(uint16_t queue) noexcept {
    if (queue < kicks_.size()) signal_eventfd(kicks_[queue].get());
}

void VirtioIoThread::notify_base_changed(std::optional<uint64_t> base) noexcept {
    wanted_base_ = base;
    signal_eventfd(moved_.get());
}

void VirtioIoThread::follow_bar() noexcept {
    std::optional<uint64_t> wanted;
    {
        std::lock_guard lock(device_lock_);
        wanted = wanted_base_;
    }
    if (wanted == routed_base_) return;
    // A guest that moves the BAR again meanwhile wakes us again. Until then its notify writes at
    // the new address exit and reach the device, which hands them on: nothing is lost.
    if (routed_base_) {
        if (!set_routes(*routed_base_, false)) return;  // kept, and retried at the next move
        routed_base_.reset();
    }
    if (wanted && set_routes(*wanted, true)) routed_base_ = wanted;
}

bool VirtioIoThread::set_routes(uint64_t base, bool assign) noexcept {
    // Any length first (KVM's fast MMIO path where it has one), else the drivers' 16-bit write
    // (a KVM before KVM_CAP_IOEVENTFD_ANY_LENGTH, Linux 4.1, refuses length 0 with EINVAL).
    for (uint32_t length : {0u, 2u}) {
        if (!assign && length != routed_length_) continue;
        int err = 0;
        size_t q = 0;
        for (; q < kicks_.size(); ++q)
            if ((err = route_(base + q * VirtioPci::kNotifyMultiplier, length, kicks_[q].get(), assign))) break;
        if (err == 0) {
            if (assign) routed_length_ = length;
            return true;
        }
        while (assign && q-- > 0) route_(base + q * VirtioPci::kNotifyMultiplier, length, kicks_[q].get(), false);
        if (assign && length == 0 && err == EINVAL) continue;
        if (!warned_) {
            warned_ = true;
            log::info("{}: KVM_IOEVENTFD {} at {:#x} failed ({}): its notify writes exit to the vCPU, which "
                      "hands them on", name_, assign ? "assign" : "deassign", base, std::strerror(err));
        }
        return false;
    }
    return false;
}

void VirtioIoThread::run() noexcept {
    if (int err = sandbox::enter_io_thread(name_); err != 0) {
        events_.post(MachineEvents::Kind::fatal, fmt::format("{}: cannot load its sandbox filter: {}", name_, std::strerror(err)));
        return;
    }
    while (!stopping_.load(std::memory_order_acquire)) {
        if (::poll(fds_.data(), fds_.size(), -1) < 0) {
            if (errno == EINTR) continue;
            events_.post(MachineEvents::Kind::fatal, fmt::format("{}: poll failed: {}", name_, std::strerror(errno)));
            return;
        }
        for (size_t i = 1; i < fds_.size(); ++i) {
            if (!(fds_[i].revents & POLLIN)) continue;
            if (!drain_eventfd(fds_[i].fd)) {
                events_.post(MachineEvents::Kind::fatal, fmt::format("{}: eventfd read failed: {}", name_, std::strerror(errno)));
                return;
            }
            if (i == 1) follow_bar();
            else serve(static_cast<uint16_t>(i - 2));
        }
    }
}

void VirtioIoThread::serve(uint16_t queue) noexcept {
    // Until the ring is empty (the driver notifies again for what it adds after that).
    bool empty = false;
    while (!empty && !stopping_.load(std::memory_order_acquire)) {
        for (unsigned served = 0; served < kInterruptBatch && !stopping_.load(std::memory_order_acquire); ++served) {
            {
                std::lock_guard lock(device_lock_);
                if (!device_.take(queue, request_)) {
                    empty = true;
                    break;
                }
            }
            const uint32_t written = device_.serve(queue, request_);
            std::lock_guard lock(device_lock_);
            device_.finish(queue, request_, written);
        }
        std::lock_guard lock(device_lock_);
        device_.interrupt_if_used(queue);
    }
}

}  // namespace minivmm
