// VirtioPci's queue service (virtio 1.0 §2.4, §4.1.4.4): a notification, and the take / serve /
// finish steps that serve a queue in the notify write or on another thread (virtio_pci.hpp).
#include "devices/virtio_pci.hpp"

#include "vmm/base/log.hpp"

namespace minivmm {

void VirtioPci::notify(uint16_t index) noexcept {
    if (index >= queues_.size()) return;
    if (notifier_) {
        notifier_->notify(index);
        return;
    }
    // At most one ring's worth per notification: a driver adding entries from another vCPU while
    // we work cannot keep us here forever; it notifies again for what it added.
    for (unsigned n = 0; n < queues_[index]->vq.size() && take(index, request_); ++n)
        finish(index, request_, serve(index, request_));
    interrupt_if_used(index);
}

bool VirtioPci::take(uint16_t index, Request& request) noexcept {
    constexpr uint8_t live = virtio::kStatusDriverOk | virtio::kStatusFeaturesOk;
    if ((status_ & live) != live || (status_ & (virtio::kStatusNeedsReset | virtio::kStatusFailed))) return false;
    if (reset_waiting_ || index >= queues_.size() || !queues_[index]->vq.enabled()) return false;
    const auto status = queues_[index]->vq.pop(request.chain);
    if (status == Virtqueue::PopStatus::broken) set_needs_reset();
    if (status != Virtqueue::PopStatus::chain) return false;
    ++in_service_;
    return true;
}

uint32_t VirtioPci::serve(uint16_t index, const Request& request) const noexcept {
    // A malformed chain goes back unserved, with length 0 (virtqueue.hpp).
    if (request.chain.error != Virtqueue::ChainError::none) return 0;
    return model_.handle_chain(index, request.chain, memory_);
}

void VirtioPci::finish(uint16_t index, const Request& request, uint32_t written) noexcept {
    if (in_service_ > 0) --in_service_;
    if (reset_waiting_) {
        if (in_service_ == 0) {
            reset_waiting_ = false;
            device_reset();
        }
        return;  // the driver reset the device: no completion for it
    }
    if (index >= queues_.size()) return;
    Queue& q = *queues_[index];
    if (!q.vq.push(request.chain.head, written)) {
        set_needs_reset();
        return;
    }
    q.used = true;
}

void VirtioPci::interrupt_if_used(uint16_t index) noexcept {
    if (index >= queues_.size() || !queues_[index]->used) return;
    Queue& q = *queues_[index];
    q.used = false;
    if (!q.vq.interrupt_suppressed()) signal(q.msix_vector, virtio::kIsrQueue);
}

void VirtioPci::set_queue_notifier(QueueNotifier* notifier) noexcept {
    notifier_ = notifier;
    if (notifier_ && bar0_) notifier_->notify_base_changed(*bar0_ + kNotifyOffset);
}

void VirtioPci::bar_moved(int index, std::optional<uint64_t> base) noexcept {
    if (index != kConfigBar) return;
    bar0_ = base;
    if (notifier_) notifier_->notify_base_changed(base ? std::optional(*base + kNotifyOffset) : std::nullopt);
}

}  // namespace minivmm
