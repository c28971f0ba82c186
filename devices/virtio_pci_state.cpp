// VirtioPci's snapshot (devices/device_state.hpp): the transport's registers, its MSI-X table and
// its queues' indices. Guest RAM (the rings, the requests) is saved by the machine, not here.
#include "devices/virtio_pci.hpp"

namespace minivmm {

namespace {
constexpr uint16_t kMsixEnable = 0x8000, kMsixFunctionMask = 0x4000;  // Message Control (PCI 3.0 §6.8.2.3)

struct NullMsiSink final : MsiSink {  // a scratch table's: MsixTable::load_state sends nothing
    void signal(uint64_t, uint32_t) noexcept override {}
};
}  // namespace

bool VirtioPci::idle() const noexcept {
    if (in_service_ != 0 || reset_waiting_) return false;
    for (const auto& q : queues_)
        if (q->used) return false;
    return true;
}

void VirtioPci::save_state(StateWriter& out) const {
    out.u8(1);
    save_config(out);
    out.bytes(saved_state(msix_));
    out.u32(device_feature_select_);
    out.u32(driver_feature_select_);
    out.u64(driver_features_);
    out.u16(msix_config_);
    out.u8(status_);
    out.u8(config_generation_);
    out.u16(queue_select_);
    out.u8(isr_);
    out.boolean(idle());
    out.u16(static_cast<uint16_t>(queues_.size()));
    for (const auto& q : queues_) {
        out.bytes(saved_state(q->vq));
        out.u16(q->msix_vector);
    }
}

bool VirtioPci::load_state(std::span<const uint8_t> blob) noexcept {
    StateReader in(blob);
    uint8_t version = 0, status = 0, generation = 0, isr = 0;
    Config config{};
    std::span<const uint8_t> msix;
    uint32_t device_select = 0, driver_select = 0;
    uint64_t driver_features = 0;
    uint16_t msix_config = 0, queue_select = 0, nq = 0;
    bool idle = false;
    in.u8(version);
    if (!parse_config(in, config)) return false;
    in.bytes_view(msix);
    in.u32(device_select);
    in.u32(driver_select);
    in.u64(driver_features);
    in.u16(msix_config);
    in.u8(status);
    in.u8(generation);
    in.u16(queue_select);
    in.u8(isr);
    in.boolean(idle);
    in.u16(nq);
    if (!in.ok() || version != 1 || !idle || nq != queues_.size()) return false;
    struct Saved {
        std::span<const uint8_t> vq;
        uint16_t vector = 0;
    };
    std::array<Saved, MsixTable::kMaxVectors> saved{};  // num_queues() < kMaxVectors (constructor)
    for (uint16_t i = 0; i < nq; ++i) {
        in.bytes_view(saved[i].vq);
        in.u16(saved[i].vector);
    }
    if (!in.finished()) return false;

    // Each part checked on a scratch copy, so nothing changes unless all of it is valid.
    const auto vector_ok = [&](uint16_t v) { return v == virtio::kNoVector || v < msix_.vectors(); };
    const uint16_t control = static_cast<uint16_t>(config[msix_cap_ + 2] | config[msix_cap_ + 3] << 8);
    NullMsiSink no_msi;
    try {
        MsixTable table(msix_.vectors(), no_msi);
        if (!table.load_state(msix) || table.enabled() != bool(control & kMsixEnable) ||
            table.function_masked() != bool(control & kMsixFunctionMask))
            return false;
    } catch (...) {
        return false;
    }
    // §4.1.4.5: STATUS.INTERRUPT follows the ISR; only bits 0-1 exist; config_generation never moves.
    if (interrupt_status(config) != (isr != 0) || (isr & ~(virtio::kIsrQueue | virtio::kIsrConfig)) ||
        generation != 0 || !vector_ok(msix_config))
        return false;
    // FEATURES_OK is set only for features write_status accepted.
    if ((status & virtio::kStatusFeaturesOk) &&
        (!(driver_features & virtio::kFVersion1) || (driver_features & ~offered_features())))
        return false;
    for (uint16_t i = 0; i < nq; ++i) {
        Virtqueue vq(memory_, queues_[i]->vq.max_size());
        if (!vq.load_state(saved[i].vq) || !vector_ok(saved[i].vector)) return false;
        // Idle: every chain popped went back on the used ring, unless pushing it broke the queue.
        if (!vq.broken() && vq.last_avail_idx() != vq.used_idx()) return false;
    }

    set_config(config);
    msix_.load_state(msix);
    device_feature_select_ = device_select;
    driver_feature_select_ = driver_select;
    driver_features_ = driver_features;
    msix_config_ = msix_config;
    status_ = status;
    config_generation_ = generation;
    queue_select_ = queue_select;
    isr_ = isr;
    in_service_ = 0;
    reset_waiting_ = false;
    for (uint16_t i = 0; i < nq; ++i) {
        queues_[i]->vq.load_state(saved[i].vq);
        queues_[i]->msix_vector = saved[i].vector;
        queues_[i]->used = false;
    }
    update_intx();
    return true;
}

void VirtioPci::resume_queues() noexcept {
    for (uint16_t q = 0; q < queues_.size(); ++q)
        if (queues_[q]->vq.enabled()) notify(q);
}

}  // namespace minivmm
