#include "devices/virtio_pci.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include <fmt/core.h>

#include "vmm/base/log.hpp"

namespace minivmm {

namespace {
// virtio_pci_cap.cfg_type values (virtio 1.0 §4.1.4)
constexpr uint8_t kCapCommon = 1, kCapNotify = 2, kCapIsr = 3, kCapDevice = 4, kCapPciCfg = 5;
constexpr uint8_t kVirtioCapLength = 16;  // struct virtio_pci_cap
constexpr uint8_t kNotifyCapLength = 20;  // + notify_off_multiplier
constexpr uint8_t kPciCfgCapLength = 20;  // + pci_cfg_data[4]
constexpr uint8_t kMsixCapLength = 12;
constexpr uint16_t kMsixEnable = 0x8000, kMsixFunctionMask = 0x4000;

// virtio_pci_common_cfg field offsets (§4.1.4.3)
enum CommonField : uint32_t {
    kDeviceFeatureSelect = 0x00, kDeviceFeature = 0x04, kDriverFeatureSelect = 0x08, kDriverFeature = 0x0C,
    kMsixConfig = 0x10, kNumQueues = 0x12, kDeviceStatus = 0x14, kConfigGeneration = 0x15,
    kQueueSelect = 0x16, kQueueSize = 0x18, kQueueMsixVector = 0x1A, kQueueEnable = 0x1C,
    kQueueNotifyOff = 0x1E, kQueueDesc = 0x20, kQueueAvail = 0x28, kQueueUsed = 0x30,
};
struct FieldSpan {
    uint32_t offset;
    uint32_t size;
};
constexpr FieldSpan kCommonFields[] = {
    {kDeviceFeatureSelect, 4}, {kDeviceFeature, 4}, {kDriverFeatureSelect, 4}, {kDriverFeature, 4},
    {kMsixConfig, 2}, {kNumQueues, 2}, {kDeviceStatus, 1}, {kConfigGeneration, 1},
    {kQueueSelect, 2}, {kQueueSize, 2}, {kQueueMsixVector, 2}, {kQueueEnable, 2},
    {kQueueNotifyOff, 2}, {kQueueDesc, 8}, {kQueueAvail, 8}, {kQueueUsed, 8},
};

bool overlaps(uint64_t offset, size_t size, uint64_t start, uint64_t length) {
    return offset < start + length && start < offset + size;
}

template <typename Image>
uint64_t get(const Image& image, uint32_t offset, uint32_t size) {
    return load_le(std::span<const uint8_t>(image.data() + offset, size));
}
template <typename Image>
void put(Image& image, uint32_t offset, uint32_t size, uint64_t value) {
    store_le(std::span<uint8_t>(image.data() + offset, size), value);
}
}  // namespace

VirtioPci::VirtioPci(VirtioDeviceModel& model, const GuestMemory& memory, IrqLine& intx, MsiSink& msi)
    : PciFunction(fmt::format("virtio-pci-{}", model.device_type()),
                  PciIdentity{virtio::kPciVendor, static_cast<uint16_t>(virtio::kPciDeviceBase + model.device_type()),
                              1, model.pci_class_code(), virtio::kPciVendor, model.device_type(), 1}),
      model_(model),
      memory_(memory),
      intx_(intx),
      bar_name_(fmt::format("{}-bar{}", name(), kConfigBar)),
      msix_name_(fmt::format("{}-msix", name())),
      msix_(static_cast<uint16_t>(std::min<unsigned>(model.num_queues() + 1u, 0xffff)), msi) {
    const uint16_t nq = model.num_queues();
    if (nq == 0 || nq * kNotifyMultiplier > kRegionSize || nq + 1u > MsixTable::kMaxVectors)
        throw std::invalid_argument(fmt::format("{}: {} queues not supported", name(), nq));
    if (model.config_size() > kRegionSize)
        throw std::invalid_argument(fmt::format("{}: device config of {} bytes too large", name(), model.config_size()));
    if (msix_.table_size() > kMsixPbaOffset)
        throw std::invalid_argument(fmt::format("{}: MSI-X table does not fit", name()));
    for (uint16_t i = 0; i < nq; ++i) queues_.push_back(std::make_unique<Queue>(memory));

    add_bar(kConfigBar, PciBarType::mem32, kConfigBarSize, config_bar_);
    add_bar(kMsixBar, PciBarType::mem32, kMsixBarSize, msix_bar_);

    add_virtio_cap(kCapCommon, kVirtioCapLength, kCommonOffset, kCommonLength);
    const uint8_t notify = add_virtio_cap(kCapNotify, kNotifyCapLength, kNotifyOffset, nq * kNotifyMultiplier);
    init32(notify + 16, kNotifyMultiplier);
    add_virtio_cap(kCapIsr, kVirtioCapLength, kIsrOffset, kIsrLength);
    if (model.config_size() > 0) add_virtio_cap(kCapDevice, kVirtioCapLength, kDeviceOffset, model.config_size());
    // §4.1.4.7: bar, offset, length and the data window are driver-writable.
    pci_cfg_cap_ = add_virtio_cap(kCapPciCfg, kPciCfgCapLength, 0, 0);
    set_writable(pci_cfg_cap_ + 4, 1);
    set_writable(pci_cfg_cap_ + 8, 12);

    // MSI-X (PCI 3.0 §6.8.2): table size N-1, table and PBA both in BAR1; enable + mask writable.
    msix_cap_ = add_capability(pci::kCapMsix, kMsixCapLength);
    init16(msix_cap_ + 2, static_cast<uint16_t>(msix_.vectors() - 1));
    set_writable(msix_cap_ + 3, 1, (kMsixEnable | kMsixFunctionMask) >> 8);
    init32(msix_cap_ + 4, kMsixTableOffset | kMsixBar);
    init32(msix_cap_ + 8, kMsixPbaOffset | kMsixBar);
}

uint8_t VirtioPci::add_virtio_cap(uint8_t cfg_type, uint8_t cap_length, uint32_t offset, uint32_t length) {
    const uint8_t cap = add_capability(pci::kCapVendor, cap_length);
    init8(cap + 2, cap_length);
    init8(cap + 3, cfg_type);
    init8(cap + 4, kConfigBar);
    init32(cap + 8, offset);
    init32(cap + 12, length);
    return cap;
}

uint64_t VirtioPci::offered_features() const noexcept {
    return model_.device_features() | virtio::kFVersion1 | virtio::kFRingIndirect;
}

// --- common configuration (§4.1.4.3) -----------------------------------------------------------

VirtioPci::CommonImage VirtioPci::common_image() const noexcept {
    CommonImage img{};
    put(img, kDeviceFeatureSelect, 4, device_feature_select_);
    if (device_feature_select_ < 2) put(img, kDeviceFeature, 4, offered_features() >> (32 * device_feature_select_));
    put(img, kDriverFeatureSelect, 4, driver_feature_select_);
    if (driver_feature_select_ < 2) put(img, kDriverFeature, 4, driver_features_ >> (32 * driver_feature_select_));
    put(img, kMsixConfig, 2, msix_config_);
    put(img, kNumQueues, 2, queues_.size());
    put(img, kDeviceStatus, 1, status_);
    put(img, kConfigGeneration, 1, config_generation_);
    put(img, kQueueSelect, 2, queue_select_);
    if (queue_select_ < queues_.size()) {
        const Queue& q = *queues_[queue_select_];
        put(img, kQueueSize, 2, q.vq.size());
        put(img, kQueueMsixVector, 2, q.msix_vector);
        put(img, kQueueEnable, 2, q.vq.enabled() ? 1 : 0);
        put(img, kQueueNotifyOff, 2, queue_select_);  // notify address = kNotifyOffset + off * multiplier
        put(img, kQueueDesc, 8, q.vq.desc_addr());
        put(img, kQueueAvail, 8, q.vq.avail_addr());
        put(img, kQueueUsed, 8, q.vq.used_addr());
    }  // else: queue_size reads 0, "queue not available"
    return img;
}

void VirtioPci::common_read(uint64_t offset, std::span<uint8_t> data) noexcept {
    const CommonImage img = common_image();
    for (size_t i = 0; i < data.size(); ++i) data[i] = offset + i < img.size() ? img[offset + i] : 0;
}

void VirtioPci::common_write(uint64_t offset, std::span<const uint8_t> data) noexcept {
    CommonImage img = common_image();
    for (size_t i = 0; i < data.size(); ++i)
        if (offset + i < img.size()) img[offset + i] = data[i];
    // Apply every field the access touched (any width works; drivers use the natural one).
    for (const FieldSpan& f : kCommonFields)
        if (overlaps(offset, data.size(), f.offset, f.size)) apply_common_field(f.offset, img);
}

uint16_t VirtioPci::accept_vector(uint16_t vector) const noexcept {
    // An unusable vector reads back as NO_VECTOR so the driver notices (§4.1.5.1.2.1).
    return vector < msix_.vectors() ? vector : virtio::kNoVector;
}

void VirtioPci::apply_common_field(uint32_t field, const CommonImage& img) noexcept {
    Queue* q = queue_select_ < queues_.size() ? queues_[queue_select_].get() : nullptr;
    switch (field) {
    case kDeviceFeatureSelect: device_feature_select_ = static_cast<uint32_t>(get(img, field, 4)); break;
    case kDriverFeatureSelect: driver_feature_select_ = static_cast<uint32_t>(get(img, field, 4)); break;
    case kDriverFeature:
        if (status_ & virtio::kStatusFeaturesOk) break;  // locked after FEATURES_OK (§3.1.1)
        if (driver_feature_select_ == 0)
            driver_features_ = (driver_features_ & ~uint64_t{0xffffffff}) | get(img, field, 4);
        else if (driver_feature_select_ == 1)
            driver_features_ = (driver_features_ & 0xffffffff) | get(img, field, 4) << 32;
        break;
    case kMsixConfig: msix_config_ = accept_vector(static_cast<uint16_t>(get(img, field, 2))); break;
    case kDeviceStatus: write_status(img[kDeviceStatus]); break;
    case kQueueSelect: queue_select_ = static_cast<uint16_t>(get(img, field, 2)); break;
    case kQueueSize:
        if (q && !q->vq.set_size(static_cast<uint16_t>(get(img, field, 2))))
            log::debug("{}: queue {} size {} rejected", name(), queue_select_, get(img, field, 2));
        break;
    case kQueueMsixVector:
        if (q) q->msix_vector = accept_vector(static_cast<uint16_t>(get(img, field, 2)));
        break;
    case kQueueEnable:
        // §4.1.4.3.2: the driver never writes 0; addresses and size are frozen once enabled.
        if (q && get(img, field, 2) == 1 && !q->vq.enabled()) {
            q->vq.set_indirect_allowed(driver_features_ & virtio::kFRingIndirect);
            q->vq.enable();
        }
        break;
    case kQueueDesc: if (q) q->vq.set_desc_addr(get(img, field, 8)); break;
    case kQueueAvail: if (q) q->vq.set_avail_addr(get(img, field, 8)); break;
    case kQueueUsed: if (q) q->vq.set_used_addr(get(img, field, 8)); break;
    default: break;  // read-only fields
    }
}

void VirtioPci::write_status(uint8_t value) noexcept {
    if (reset_waiting_) {
        log::debug("{}: device_status write {:#x} ignored: a reset waits for requests in service", name(), value);
        return;
    }
    if (value == 0) {  // §4.1.4.3.1: writing 0 resets the device, once no request is in service
        if (in_service_ > 0) reset_waiting_ = true;
        else device_reset();
        return;
    }
    uint8_t next = static_cast<uint8_t>((value & ~virtio::kStatusNeedsReset) | (status_ & virtio::kStatusNeedsReset));
    if ((next & virtio::kStatusFeaturesOk) && !(status_ & virtio::kStatusFeaturesOk)) {
        // §3.1.1 / §6.1: a modern device refuses FEATURES_OK without VERSION_1 or with bits it never offered.
        const bool ok = (driver_features_ & virtio::kFVersion1) && !(driver_features_ & ~offered_features());
        if (!ok) {
            log::debug("{}: FEATURES_OK refused for driver features {:#x}", name(), driver_features_);
            next &= static_cast<uint8_t>(~virtio::kStatusFeaturesOk);
        }
    }
    status_ = next;
}

void VirtioPci::device_reset() noexcept {
    status_ = 0;
    device_feature_select_ = driver_feature_select_ = 0;
    driver_features_ = 0;
    msix_config_ = virtio::kNoVector;
    queue_select_ = 0;
    for (auto& q : queues_) {
        q->vq.reset();
        q->msix_vector = virtio::kNoVector;
        q->used = false;
    }
    isr_ = 0;
    update_intx();
    model_.reset();
}

// --- interrupts ---------------------------------------------------------------------------------

void VirtioPci::signal(uint16_t vector, uint8_t isr_bit) noexcept {
    if (msix_.enabled()) {  // §4.1.5.3/§4.1.5.4: MSI-X in use, the ISR is not
        if (vector != virtio::kNoVector) msix_.notify(vector);
        return;
    }
    isr_ |= isr_bit;
    update_intx();
}

void VirtioPci::update_intx() noexcept {
    const bool pending = isr_ != 0;
    set_interrupt_status(pending);
    const bool level = pending && !msix_.enabled() && !(command() & pci::kCommandIntxDisable);
    if (level != intx_level_) {
        intx_level_ = level;
        intx_.set(level);
    }
}

void VirtioPci::msix_control_changed() noexcept {
    const uint16_t control = read16(msix_cap_ + 2);
    msix_.set_control(control & kMsixEnable, control & kMsixFunctionMask);
    update_intx();
}

void VirtioPci::set_needs_reset() noexcept {
    if (status_ & virtio::kStatusNeedsReset) return;
    log::debug("{}: entering DEVICE_NEEDS_RESET", name());
    status_ |= virtio::kStatusNeedsReset;
    if (status_ & virtio::kStatusDriverOk) signal(msix_config_, virtio::kIsrConfig);  // §2.1.2
}

// --- config space hooks: MSI-X control, COMMAND.INTX_DISABLE, PCI cfg access window --------------

void VirtioPci::config_written(uint16_t offset, size_t size) noexcept {
    if (overlaps(offset, size, pci::kCommand, 2)) update_intx();
    if (overlaps(offset, size, msix_cap_ + 2u, 2)) msix_control_changed();
    if (overlaps(offset, size, pci_cfg_cap_ + 16u, 4)) pci_cfg_access(true);
}

void VirtioPci::config_before_read(uint16_t offset, size_t size) noexcept {
    if (overlaps(offset, size, pci_cfg_cap_ + 16u, 4)) pci_cfg_access(false);
}

void VirtioPci::pci_cfg_access(bool is_write) noexcept {
    // §4.1.4.7: access cap.length (1, 2 or 4) bytes at cap.offset (aligned) in BAR cap.bar.
    const uint8_t bar = read8(pci_cfg_cap_ + 4);
    const uint32_t offset = read32(pci_cfg_cap_ + 8);
    const uint32_t length = read32(pci_cfg_cap_ + 12);
    Device* device = bar < kNumBars ? bar_device(bar) : nullptr;
    if (!device || (length != 1 && length != 2 && length != 4) || offset % length != 0 ||
        uint64_t{offset} + length > bar_size(bar)) {
        log::debug("{}: ignored PCI cfg window access bar {} offset {:#x} length {}", name(), bar, offset, length);
        return;
    }
    std::array<uint8_t, 4> buf{};
    if (is_write) {
        for (uint32_t i = 0; i < length; ++i) buf[i] = read8(static_cast<uint16_t>(pci_cfg_cap_ + 16 + i));
        device->write(offset, std::span<const uint8_t>(buf.data(), length));
    } else {
        device->read(offset, std::span<uint8_t>(buf.data(), length));
        store(static_cast<uint16_t>(pci_cfg_cap_ + 16), std::span<const uint8_t>(buf.data(), length));
    }
}

// --- BAR devices ----------------------------------------------------------------------------------

void VirtioPci::ConfigBar::read(uint64_t offset, std::span<uint8_t> data) noexcept {
    std::fill(data.begin(), data.end(), uint8_t{0});
    VirtioPci& o = owner_;
    const uint64_t region = offset & ~uint64_t{kRegionSize - 1};
    const uint64_t off = offset - region;
    if (region == kCommonOffset) {
        o.common_read(off, data);
    } else if (region == kIsrOffset) {
        if (off == 0) {  // reading the ISR returns and clears it, deasserting INTx (§4.1.4.5)
            data[0] = o.isr_;
            o.isr_ = 0;
            o.update_intx();
        }
    } else if (region == kDeviceOffset) {
        const uint32_t size = o.model_.config_size();
        if (off < size) o.model_.read_config(static_cast<uint32_t>(off), data.first(std::min<uint64_t>(data.size(), size - off)));
    }
}

void VirtioPci::ConfigBar::write(uint64_t offset, std::span<const uint8_t> data) noexcept {
    VirtioPci& o = owner_;
    const uint64_t region = offset & ~uint64_t{kRegionSize - 1};
    const uint64_t off = offset - region;
    if (region == kCommonOffset) {
        o.common_write(off, data);
    } else if (region == kDeviceOffset) {
        const uint32_t size = o.model_.config_size();
        if (off < size) o.model_.write_config(static_cast<uint32_t>(off), data.first(std::min<uint64_t>(data.size(), size - off)));
    } else if (region == kNotifyOffset) {
        if (off % kNotifyMultiplier == 0) o.notify(static_cast<uint16_t>(std::min<uint64_t>(off / kNotifyMultiplier, 0xffff)));
    }
}

void VirtioPci::MsixBar::read(uint64_t offset, std::span<uint8_t> data) noexcept {
    if (offset < kMsixPbaOffset)
        owner_.msix_.read_table(offset - kMsixTableOffset, data);
    else
        owner_.msix_.read_pba(offset - kMsixPbaOffset, data);
}

void VirtioPci::MsixBar::write(uint64_t offset, std::span<const uint8_t> data) noexcept {
    if (offset < kMsixPbaOffset) owner_.msix_.write_table(offset - kMsixTableOffset, data);
}

}  // namespace minivmm
