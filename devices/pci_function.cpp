#include "devices/pci_function.hpp"

#include <algorithm>
#include <stdexcept>

#include <fmt/core.h>

namespace minivmm {

namespace {
constexpr uint32_t kBarIoFlag = 0x1;        // bit 0: I/O space indicator
constexpr uint32_t kBarMem64Flag = 0x4;     // bits 2:1 = 10b: 64-bit memory BAR
constexpr uint32_t kBarPrefetchFlag = 0x8;  // bit 3: prefetchable
constexpr uint64_t kIoSpaceEnd = 0x10000;   // x86 port space
constexpr uint64_t kMem32End = 0x1'0000'0000;

bool is_power_of_two(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }
}  // namespace

PciFunction::PciFunction(std::string_view name, const PciIdentity& id) : name_(name) {
    init16(pci::kVendorId, id.vendor_id);
    init16(pci::kDeviceId, id.device_id);
    init8(pci::kRevision, id.revision);
    init8(pci::kClassCode, static_cast<uint8_t>(id.class_code));
    init8(pci::kClassCode + 1, static_cast<uint8_t>(id.class_code >> 8));
    init8(pci::kClassCode + 2, static_cast<uint8_t>(id.class_code >> 16));
    init8(pci::kHeaderType, 0x00);  // type 0, single function
    init16(pci::kSubsystemVendorId, id.subsystem_vendor_id);
    init16(pci::kSubsystemId, id.subsystem_id);
    init8(pci::kInterruptPin, id.interrupt_pin);
    // Writable header fields (PCI 3.0 §6.2.2-6.2.4); everything else, including STATUS and the
    // ROM BAR (not implemented: reads 0), is read-only.
    constexpr uint16_t command_mask = pci::kCommandIo | pci::kCommandMemory | pci::kCommandMaster |
                                      pci::kCommandParity | pci::kCommandSerr | pci::kCommandIntxDisable;
    set_writable(pci::kCommand, 1, command_mask & 0xff);
    set_writable(pci::kCommand + 1, 1, command_mask >> 8);
    set_writable(pci::kCacheLineSize, 2);
    set_writable(pci::kInterruptLine, 1);
}

void PciFunction::init8(uint16_t offset, uint8_t value) {
    if (offset >= kConfigSize) throw std::invalid_argument(fmt::format("{}: config offset {:#x} out of range", name_, offset));
    config_[offset] = value;
}
void PciFunction::init16(uint16_t offset, uint16_t value) {
    init8(offset, static_cast<uint8_t>(value));
    init8(offset + 1, static_cast<uint8_t>(value >> 8));
}
void PciFunction::init32(uint16_t offset, uint32_t value) {
    init16(offset, static_cast<uint16_t>(value));
    init16(offset + 2, static_cast<uint16_t>(value >> 16));
}

void PciFunction::set_writable(uint16_t offset, uint16_t length, uint8_t mask) {
    if (offset + length > kConfigSize)
        throw std::invalid_argument(fmt::format("{}: writable range {:#x}+{} out of range", name_, offset, length));
    for (uint16_t i = 0; i < length; ++i) wmask_[offset + i] = mask;
}

void PciFunction::add_bar(int index, PciBarType type, uint64_t size, Device& device, bool prefetchable) {
    const bool is64 = type == PciBarType::mem64;
    if (index < 0 || index >= kNumBars || (is64 && index + 1 >= kNumBars))
        throw std::invalid_argument(fmt::format("{}: BAR index {} out of range", name_, index));
    if (bars_[index].size != 0 || (is64 && bars_[index + 1].size != 0) || (index > 0 && bars_[index - 1].type == PciBarType::mem64 && bars_[index - 1].size != 0))
        throw std::invalid_argument(fmt::format("{}: BAR {} already in use", name_, index));
    const uint64_t min_size = type == PciBarType::io ? 4 : 16;
    const uint64_t max_size = type == PciBarType::io ? 256 : (is64 ? (uint64_t{1} << 63) : 0x8000'0000);
    if (!is_power_of_two(size) || size < min_size || size > max_size)
        throw std::invalid_argument(fmt::format("{}: BAR {} size {:#x} is not a valid power of two", name_, index, size));
    bars_[index] = Bar{type, size, &device};

    const uint16_t reg = pci::kBar0 + 4 * index;
    const uint64_t addr_mask = ~(size - 1);
    uint32_t flags = 0;
    uint32_t low_mask = 0;
    if (type == PciBarType::io) {
        flags = kBarIoFlag;
        low_mask = static_cast<uint32_t>(addr_mask) & ~uint32_t{0x3};
    } else {
        flags = (is64 ? kBarMem64Flag : 0) | (prefetchable ? kBarPrefetchFlag : 0);
        low_mask = static_cast<uint32_t>(addr_mask) & ~uint32_t{0xf};
    }
    init32(reg, flags);
    for (int i = 0; i < 4; ++i) wmask_[reg + i] = static_cast<uint8_t>(low_mask >> (8 * i));
    if (is64) {
        init32(reg + 4, 0);
        const uint32_t high_mask = static_cast<uint32_t>(addr_mask >> 32);
        for (int i = 0; i < 4; ++i) wmask_[reg + 4 + i] = static_cast<uint8_t>(high_mask >> (8 * i));
    }
}

uint8_t PciFunction::add_capability(uint8_t id, uint8_t length) {
    const uint16_t offset = (next_capability_ + 3) & ~uint16_t{3};
    if (length < 2 || offset + length > kConfigSize)
        throw std::invalid_argument(fmt::format("{}: no room for capability {:#x} of {} bytes", name_, id, length));
    init8(offset, id);
    init8(offset + 1, 0);  // end of list
    if (last_capability_ == 0) {
        init8(pci::kCapabilityPointer, static_cast<uint8_t>(offset));
        init16(pci::kStatus, read16(pci::kStatus) | pci::kStatusCapabilities);
    } else {
        init8(last_capability_ + 1, static_cast<uint8_t>(offset));
    }
    last_capability_ = static_cast<uint8_t>(offset);
    next_capability_ = offset + length;
    return static_cast<uint8_t>(offset);
}

uint16_t PciFunction::read16(uint16_t offset) const noexcept {
    if (offset + size_t{2} > kConfigSize) return 0xffff;
    return static_cast<uint16_t>(config_[offset] | config_[offset + 1u] << 8);
}

uint32_t PciFunction::read32(uint16_t offset) const noexcept {
    if (offset + size_t{4} > kConfigSize) return 0xffffffff;
    return uint32_t{read16(offset)} | uint32_t{read16(offset + 2)} << 16;
}

void PciFunction::store(uint16_t offset, std::span<const uint8_t> bytes) noexcept {
    if (offset >= kConfigSize || bytes.size() > kConfigSize - offset) return;
    std::copy(bytes.begin(), bytes.end(), config_.begin() + offset);
}

void PciFunction::set_interrupt_status(bool pending) noexcept {
    if (pending)
        config_[pci::kStatus] |= pci::kStatusInterrupt;
    else
        config_[pci::kStatus] &= static_cast<uint8_t>(~pci::kStatusInterrupt);
}

Device* PciFunction::bar_device(int index) const noexcept {
    return index >= 0 && index < kNumBars ? bars_[index].device : nullptr;
}

uint64_t PciFunction::bar_size(int index) const noexcept {
    return index >= 0 && index < kNumBars ? bars_[index].size : 0;
}

void PciFunction::config_read(uint16_t offset, std::span<uint8_t> data) noexcept {
    if (data.empty() || data.size() > 4 || offset >= kConfigSize || data.size() > kConfigSize - offset) {
        std::fill(data.begin(), data.end(), uint8_t{0xff});
        return;
    }
    config_before_read(offset, data.size());
    std::copy_n(config_.begin() + offset, data.size(), data.begin());
}

void PciFunction::config_write(uint16_t offset, std::span<const uint8_t> data) noexcept {
    if (data.empty() || data.size() > 4 || offset >= kConfigSize || data.size() > kConfigSize - offset) return;
    for (size_t i = 0; i < data.size(); ++i) {
        const uint8_t m = wmask_[offset + i];
        config_[offset + i] = static_cast<uint8_t>((config_[offset + i] & ~m) | (data[i] & m));
    }
    config_written(offset, data.size());
}

void PciFunction::save_config(StateWriter& out) const { out.bytes(config_); }

bool PciFunction::parse_config(StateReader& in, Config& out) const noexcept {
    if (!in.bytes(out)) return false;
    for (size_t i = 0; i < kConfigSize; ++i) {
        uint8_t fixed = static_cast<uint8_t>(~wmask_[i]);
        if (i == pci::kStatus) fixed &= static_cast<uint8_t>(~pci::kStatusInterrupt);
        if ((out[i] ^ config_[i]) & fixed) return false;
    }
    return true;
}

void PciFunction::save_state(StateWriter& out) const {
    out.u8(1);
    save_config(out);
}

bool PciFunction::load_state(std::span<const uint8_t> blob) noexcept {
    StateReader in(blob);
    uint8_t version = 0;
    Config config{};
    in.u8(version);
    if (!parse_config(in, config) || !in.finished() || version != 1) return false;
    if (interrupt_status(config) != interrupt_status(config_)) return false;  // only a derived function sets it
    set_config(config);
    return true;
}

std::optional<PciFunction::BarWindow> PciFunction::bar_window(int index) const noexcept {
    if (index < 0 || index >= kNumBars) return std::nullopt;
    const Bar& bar = bars_[index];
    if (bar.size == 0 || bar.device == nullptr) return std::nullopt;
    const uint16_t reg = pci::kBar0 + 4 * index;
    const uint16_t cmd = command();
    BarWindow w;
    w.size = bar.size;
    w.device = bar.device;
    if (bar.type == PciBarType::io) {
        if (!(cmd & pci::kCommandIo)) return std::nullopt;
        w.io = true;
        w.base = read32(reg) & ~uint32_t{0x3} & ~(bar.size - 1);
        if (w.base == 0 || w.base >= kIoSpaceEnd || bar.size > kIoSpaceEnd - w.base) return std::nullopt;
        return w;
    }
    if (!(cmd & pci::kCommandMemory)) return std::nullopt;
    w.base = read32(reg) & ~uint32_t{0xf};
    if (bar.type == PciBarType::mem64) w.base |= uint64_t{read32(reg + 4)} << 32;
    w.base &= ~(bar.size - 1);
    if (w.base == 0 || w.base + bar.size < w.base) return std::nullopt;  // 0 = unassigned; wrap
    if (bar.type == PciBarType::mem32 && w.base + bar.size > kMem32End) return std::nullopt;
    return w;
}

}  // namespace minivmm
