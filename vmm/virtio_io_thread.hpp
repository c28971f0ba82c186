// A virtio-pci function's queues served off the vCPU, on a thread of their own: the disk's reads,
// writes and flushes never run on a vCPU nor under the device lock (devices/device.hpp).
//   - The driver's notify write wakes this thread through an eventfd: KVM signals it itself
//     (KVM_IOEVENTFD at the queue's notify address, so the write costs no exit to user space),
//     or the device does (QueueNotifier::notify) for a write that reached it anyway (the PCI
//     configuration access window; before the route is in place; a KVM without ioeventfds).
//   - When the guest moves BAR0 the vCPU only records the new address and wakes this thread,
//     which moves the routes (the ioctl waits for KVM's SRCU grace period: not under the device
//     lock, not on a vCPU); until then the writes take the exit path.
//   - The thread serves the queue (VirtioPci::take / serve / finish): it takes each chain under
//     the device lock, does the I/O without it, and puts the result on the used ring under it.
//   - It interrupts the driver itself, through the device's MsiSink/IrqLine (KVM_SIGNAL_MSI,
//     KVM_IRQ_LINE on this thread), not an irqfd: the same one system call per interrupt, and the
//     MSI-X mask and pending bits stay in the device model (an irqfd route would have to be
//     rewritten on every table and mask change).
//   - A driver reset waits for the requests in service (VirtioPci::finish); a machine reset or exit
//     stops the thread after the request in hand (stop()).
// Its own seccomp filter (sandbox::enter_io_thread): the disk's pread/pwrite/fdatasync, its
// eventfds, KVM_IOEVENTFD and the two interrupt ioctls; vCPU threads lose the disk calls.
#pragma once

#include <poll.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "devices/virtio_pci.hpp"
#include "vmm/base/unique_fd.hpp"
#include "vmm/kvm/machine_events.hpp"

namespace minivmm {

// Routes a guest write of `length` bytes (0: any) at `gpa` to the eventfd `fd`, or removes that
// route (assign false); returns 0 or an errno. Vm::ioeventfd, or a stand-in in tests.
using NotifyRoute = std::function<int(uint64_t gpa, uint32_t length, int fd, bool assign)>;

class VirtioIoThread final : public QueueNotifier {
public:
    // Becomes `device`'s QueueNotifier; device, device_lock and events must outlive this.
    // Throws SetupError(kExitKvm) when an eventfd cannot be made.
    VirtioIoThread(VirtioPci& device, NotifyRoute route, std::mutex& device_lock, MachineEvents& events);
    ~VirtioIoThread();
    VirtioIoThread(const VirtioIoThread&) = delete;
    VirtioIoThread& operator=(const VirtioIoThread&) = delete;

    // Starts the thread (after the sandbox is installed: it loads its filter first), again after
    // stop() too (a paused machine resumes). Throws SetupError(kExitInternal) when no thread can be made.
    void start();
    // Serves the request in hand to its end, then joins the thread; notifications not yet served
    // are left in their eventfds (the machine is torn down, or paused: start() serves them). Idempotent.
    void stop() noexcept;

    // QueueNotifier, under the device lock on a vCPU.
    void notify(uint16_t queue) noexcept override;
    void notify_base_changed(std::optional<uint64_t> base) noexcept override;

private:
    void run() noexcept;
    void serve(uint16_t queue) noexcept;
    void follow_bar() noexcept;
    // (Un)registers every queue's ioeventfd at `base` (assign: trying length 0, then 2); false on failure.
    bool set_routes(uint64_t base, bool assign) noexcept;

    VirtioPci& device_;
    NotifyRoute route_;
    std::mutex& device_lock_;
    MachineEvents& events_;
    std::string name_;             // "virtio-pci-2 I/O": the thread's name in sandbox messages
    std::vector<UniqueFd> kicks_;  // one eventfd per queue
    UniqueFd moved_;               // BAR0 moved: written by notify_base_changed
    UniqueFd wake_;                // written by stop()
    std::vector<pollfd> fds_;      // wake_, moved_, then kicks_
    std::optional<uint64_t> wanted_base_;  // under the device lock: where the routes should be
    // The I/O thread's own: where the routes are, and with which length (0: any, 2: 16-bit writes).
    std::optional<uint64_t> routed_base_;
    uint32_t routed_length_ = 0;
    bool warned_ = false;  // a route failed: logged once
    std::atomic<bool> stopping_{false};
    std::thread thread_;
    VirtioPci::Request request_;  // the request in service, reused
};

}  // namespace minivmm
