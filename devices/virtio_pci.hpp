// Virtio 1.0 modern PCI transport (virtio 1.0 §4.1): a non-transitional function (device id
// 0x1040 + type, revision 1) whose common/notify/ISR/device configuration structures sit in a
// 32-bit memory BAR described by vendor capabilities, plus the PCI configuration access
// capability (§4.1.4.7) and MSI-X. Interrupts: MSI-X through an MsiSink when the driver enables
// MSI-X, otherwise INTA# through an IrqLine, held high while the ISR is non-zero (§4.1.4.5).
// Queues are served in the notify write itself, or, with a QueueNotifier, by another thread (the
// VMM's I/O thread, vmm/virtio_io_thread.hpp) through take / serve / finish, so the notify write
// only wakes that thread.
//
// No lock inside (devices/device.hpp): config space and both BARs are reached under the device lock;
// serve() is the one call made without it.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "devices/device.hpp"
#include "devices/msix.hpp"
#include "devices/pci_function.hpp"
#include "devices/virtqueue.hpp"
#include "vmm/base/guest_memory.hpp"

namespace minivmm {

namespace virtio {
inline constexpr uint16_t kPciVendor = 0x1AF4;
inline constexpr uint16_t kPciDeviceBase = 0x1040;  // modern device id = 0x1040 + virtio device type
inline constexpr uint64_t kFVersion1 = uint64_t{1} << 32;       // VIRTIO_F_VERSION_1
inline constexpr uint64_t kFRingIndirect = uint64_t{1} << 28;   // VIRTIO_F_INDIRECT_DESC
inline constexpr uint16_t kNoVector = 0xFFFF;                   // VIRTIO_MSI_NO_VECTOR
// Device status bits (§2.1)
inline constexpr uint8_t kStatusAcknowledge = 1;
inline constexpr uint8_t kStatusDriver = 2;
inline constexpr uint8_t kStatusDriverOk = 4;
inline constexpr uint8_t kStatusFeaturesOk = 8;
inline constexpr uint8_t kStatusNeedsReset = 64;
inline constexpr uint8_t kStatusFailed = 128;
// ISR bits (§4.1.4.5)
inline constexpr uint8_t kIsrQueue = 1;
inline constexpr uint8_t kIsrConfig = 2;
}  // namespace virtio

// What a virtio device type (block, ...) supplies to the transport.
class VirtioDeviceModel {
public:
    virtual ~VirtioDeviceModel() = default;
    virtual uint16_t device_type() const noexcept = 0;     // virtio device id (§5), 2 = block
    virtual uint32_t pci_class_code() const noexcept = 0;  // PCI class for the function
    virtual uint64_t device_features() const noexcept = 0; // device-type feature bits offered
    virtual uint16_t num_queues() const noexcept = 0;
    virtual uint32_t config_size() const noexcept = 0;
    // offset + data.size() <= config_size() is guaranteed.
    virtual void read_config(uint32_t offset, std::span<uint8_t> data) noexcept = 0;
    virtual void write_config(uint32_t offset, std::span<const uint8_t> data) noexcept = 0;
    virtual void reset() noexcept = 0;
    // Serves one well-formed chain popped from queue `queue`; returns the number of bytes written
    // into its device-writable buffers (the used element's len). May run without the device lock,
    // on the thread serving the queue (VirtioPci::serve): it may touch only the chain's buffers and
    // state that no other call of the model reaches (its backend), never the transport.
    virtual uint32_t handle_chain(uint16_t queue, const Virtqueue::Chain& chain, const GuestMemory& memory) noexcept = 0;
};

// Where a transport sends its queues' notifications when another thread serves them. Called under
// the device lock; must not block.
class QueueNotifier {
public:
    virtual ~QueueNotifier() = default;
    // The driver notified `queue` (< num_queues()) by a write that reached the device.
    virtual void notify(uint16_t queue) noexcept = 0;
    // Queue q's notify address is now base + q * kNotifyMultiplier, or nowhere (nullopt: BAR0 not
    // decoded), so the host can route the driver's notify writes to the server directly.
    virtual void notify_base_changed(std::optional<uint64_t> base) noexcept = 0;
};

class VirtioPci : public PciFunction {
public:
    // --- BAR layout --------------------------------------------------------------------------
    // BAR0: 32-bit non-prefetchable memory, 16 KiB, the four virtio structures, one page each.
    static constexpr int kConfigBar = 0;
    static constexpr uint64_t kConfigBarSize = 0x4000;
    static constexpr uint32_t kCommonOffset = 0x0000, kCommonLength = 0x38;  // §4.1.4.3
    static constexpr uint32_t kIsrOffset = 0x1000, kIsrLength = 1;           // §4.1.4.5
    static constexpr uint32_t kDeviceOffset = 0x2000;                         // §4.1.4.6, model's config
    static constexpr uint32_t kNotifyOffset = 0x3000;                         // §4.1.4.4
    static constexpr uint32_t kNotifyMultiplier = 4;  // queue q is notified at kNotifyOffset + 4 * q
    static constexpr uint32_t kRegionSize = 0x1000;
    // BAR1: 32-bit non-prefetchable memory, 4 KiB: MSI-X table at 0, PBA at 0x800.
    static constexpr int kMsixBar = 1;
    static constexpr uint64_t kMsixBarSize = 0x1000;
    static constexpr uint32_t kMsixTableOffset = 0x000;
    static constexpr uint32_t kMsixPbaOffset = 0x800;

    // Throws std::invalid_argument if the model needs more queues/vectors or config than fits.
    VirtioPci(VirtioDeviceModel& model, const GuestMemory& memory, IrqLine& intx, MsiSink& msi);

    // From now on queue notifications go to `notifier` (which must outlive the device; it hears
    // BAR0's notify address at once) and its thread serves the queues; nullptr (the default):
    // they are served in the notify write.
    void set_queue_notifier(QueueNotifier* notifier) noexcept;

    // --- serving a queue on another thread ---------------------------------------------------
    // One request in service: a chain taken and not yet finished.
    struct Request {
        Virtqueue::Chain chain;
    };
    // Under the device lock: pops the next chain of `queue` into `request`. False when there is
    // none, the device or queue is not live, a reset waits, or the ring is broken (the device then
    // needs a reset). Every true must be followed by one finish().
    bool take(uint16_t queue, Request& request) noexcept;
    // WITHOUT the device lock: serves the request (the model's handle_chain, which touches only the
    // chain's buffers and its backend); returns the used length (0 for a malformed chain).
    uint32_t serve(uint16_t queue, const Request& request) const noexcept;
    // Under the device lock: puts the request on the used ring. A driver reset written while
    // requests were in service waits for them (§4.1.4.3.2: device_status reads 0 only when the
    // reset is done, so the device never touches their buffers after it): the last one's finish()
    // completes the reset, and their completions are dropped.
    void finish(uint16_t queue, const Request& request, uint32_t written) noexcept;
    // Under the device lock: interrupts the driver when finish() used the ring since the last call
    // (and the driver did not suppress it).
    void interrupt_if_used(uint16_t queue) noexcept;
    bool reset_waiting() const noexcept { return reset_waiting_; }
    // No request taken and not finished, no reset waiting for one, no completion waiting for its
    // interrupt_if_used(): what a snapshot needs. True whenever the serving thread is stopped
    // (VirtioIoThread::stop) and in the notify-write mode between two device accesses.
    bool idle() const noexcept;

    // --- snapshots (devices/device_state.hpp) ------------------------------------------------
    // Format version 1: the PCI config image (PciFunction::save_config), the MSI-X table's blob,
    // the common configuration (feature selects, driver features, msix_config, status, config
    // generation, queue_select), the ISR, idle(), then per queue its Virtqueue blob and MSI-X vector.
    // Save only when idle(): a blob saved while busy records it and every load_state refuses it.
    // load_state drives INTA# to the restored level (ISR non-zero, MSI-X off, INTx not disabled);
    // it sends no MSI. BAR mappings come from PciHost::load_state (load this function first).
    void save_state(StateWriter& out) const override;
    bool load_state(std::span<const uint8_t> blob) noexcept override;
    // After a restore: notifies every enabled queue as a driver's notify write would, so requests
    // the driver posted and notified before the save but which were not served yet (the I/O thread
    // stops with notifications pending) are served. Call under the device lock after load_state and
    // after set_queue_notifier; harmless when the rings are empty.
    void resume_queues() noexcept;

    // Introspection for tests and debugging.
    uint8_t device_status() const noexcept { return status_; }
    uint64_t driver_features() const noexcept { return driver_features_; }
    uint8_t isr() const noexcept { return isr_; }
    uint8_t pci_cfg_cap_offset() const noexcept { return pci_cfg_cap_; }
    uint8_t msix_cap_offset() const noexcept { return msix_cap_; }
    const Virtqueue& queue(uint16_t index) const noexcept { return queues_[index]->vq; }
    uint16_t num_queues() const noexcept { return static_cast<uint16_t>(queues_.size()); }

protected:
    void bar_moved(int index, std::optional<uint64_t> base) noexcept override;
    void config_written(uint16_t offset, size_t size) noexcept override;
    void config_before_read(uint16_t offset, size_t size) noexcept override;

private:
    class ConfigBar final : public Device {
    public:
        explicit ConfigBar(VirtioPci& owner) : owner_(owner) {}
        std::string_view name() const noexcept override { return owner_.bar_name_; }
        void read(uint64_t offset, std::span<uint8_t> data) noexcept override;
        void write(uint64_t offset, std::span<const uint8_t> data) noexcept override;
    private:
        VirtioPci& owner_;
    };
    class MsixBar final : public Device {
    public:
        explicit MsixBar(VirtioPci& owner) : owner_(owner) {}
        std::string_view name() const noexcept override { return owner_.msix_name_; }
        void read(uint64_t offset, std::span<uint8_t> data) noexcept override;
        void write(uint64_t offset, std::span<const uint8_t> data) noexcept override;
    private:
        VirtioPci& owner_;
    };
    struct Queue {
        explicit Queue(const GuestMemory& m) : vq(m) {}
        Virtqueue vq;
        uint16_t msix_vector = virtio::kNoVector;
        bool used = false;  // finish() pushed since the last interrupt_if_used()
    };
    using CommonImage = std::array<uint8_t, kCommonLength>;

    uint8_t add_virtio_cap(uint8_t cfg_type, uint8_t cap_length, uint32_t offset, uint32_t length);
    uint64_t offered_features() const noexcept;
    CommonImage common_image() const noexcept;
    void common_read(uint64_t offset, std::span<uint8_t> data) noexcept;
    void common_write(uint64_t offset, std::span<const uint8_t> data) noexcept;
    void apply_common_field(uint32_t field, const CommonImage& image) noexcept;
    void write_status(uint8_t value) noexcept;
    uint16_t accept_vector(uint16_t vector) const noexcept;
    void device_reset() noexcept;
    void notify(uint16_t queue) noexcept;
    void signal(uint16_t vector, uint8_t isr_bit) noexcept;
    void set_needs_reset() noexcept;
    void update_intx() noexcept;
    void msix_control_changed() noexcept;
    void pci_cfg_access(bool is_write) noexcept;

    VirtioDeviceModel& model_;
    const GuestMemory& memory_;
    IrqLine& intx_;
    std::string bar_name_;
    std::string msix_name_;
    ConfigBar config_bar_{*this};
    MsixBar msix_bar_{*this};
    MsixTable msix_;
    std::vector<std::unique_ptr<Queue>> queues_;
    QueueNotifier* notifier_ = nullptr;
    std::optional<uint64_t> bar0_;  // where BAR0 is decoded (bar_moved), for a notifier set later
    Request request_;  // scratch for queues served in the notify write
    unsigned in_service_ = 0;     // requests taken and not finished
    bool reset_waiting_ = false;  // the driver wrote 0 to device_status while requests were in service
    uint8_t msix_cap_ = 0;
    uint8_t pci_cfg_cap_ = 0;

    // Common configuration state (§4.1.4.3)
    uint32_t device_feature_select_ = 0;
    uint32_t driver_feature_select_ = 0;
    uint64_t driver_features_ = 0;
    uint16_t msix_config_ = virtio::kNoVector;
    uint8_t status_ = 0;
    uint8_t config_generation_ = 0;
    uint16_t queue_select_ = 0;
    uint8_t isr_ = 0;
    bool intx_level_ = false;
};

}  // namespace minivmm
