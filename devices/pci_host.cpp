#include "devices/pci_host.hpp"

#include <algorithm>
#include <stdexcept>

#include <fmt/core.h>

#include "vmm/base/log.hpp"

namespace minivmm {

namespace {
constexpr uint32_t kEnable = 0x8000'0000;
// Bits 30:24 are reserved and bits 1:0 select a type-0/1 cycle; neither is stored.
constexpr uint32_t kAddressMask = 0x80FF'FFFC;
constexpr uint64_t kDataOffset = 4;  // 0xCFC relative to 0xCF8
}  // namespace

PciHost::PciHost(Bus& pio, Bus& mmio)
    : pio_(pio), mmio_(mmio), bridge_("pci-host-bridge", kHostBridgeIdentity) {
    slots_[kHostBridgeSlot].function = &bridge_;
}

PciHost::~PciHost() {
    for (Slot& s : slots_)
        for (Mapping& m : s.bars) unmap(m);
}

void PciHost::add(uint8_t slot, PciFunction& function) {
    if (slot >= kSlots)
        throw std::invalid_argument(fmt::format("PCI slot {} for {} is out of range (0-31)", slot, function.name()));
    if (slots_[slot].function != nullptr)
        throw std::invalid_argument(fmt::format("PCI slot {} for {} is already used by {}", slot, function.name(),
                                                slots_[slot].function->name()));
    slots_[slot].function = &function;
    sync_bars(slots_[slot]);
}

PciHost::Slot* PciHost::selected(uint16_t& reg) noexcept {
    if (!(address_ & kEnable)) return nullptr;
    const unsigned bus = (address_ >> 16) & 0xff;
    const unsigned dev = (address_ >> 11) & 0x1f;
    const unsigned fn = (address_ >> 8) & 0x7;
    reg = static_cast<uint16_t>(address_ & 0xfc);
    if (bus != 0 || fn != 0 || slots_[dev].function == nullptr) return nullptr;
    return &slots_[dev];
}

void PciHost::read(uint64_t offset, std::span<uint8_t> data) noexcept {
    std::fill(data.begin(), data.end(), uint8_t{0xff});
    if (offset == 0 && data.size() == 4) {
        store_le(data, address_);
    } else if (offset >= kDataOffset && offset + data.size() <= kPortSize) {
        uint16_t reg = 0;
        if (Slot* s = selected(reg)) s->function->config_read(static_cast<uint16_t>(reg + (offset - kDataOffset)), data);
    } else {
        log::debug("pci-host: ignored {}-byte read at port {:#x}", data.size(), kPortBase + offset);
    }
}

void PciHost::write(uint64_t offset, std::span<const uint8_t> data) noexcept {
    if (offset == 0 && data.size() == 4) {
        address_ = static_cast<uint32_t>(load_le(data)) & kAddressMask;
    } else if (offset >= kDataOffset && offset + data.size() <= kPortSize) {
        uint16_t reg = 0;
        if (Slot* s = selected(reg)) {
            s->function->config_write(static_cast<uint16_t>(reg + (offset - kDataOffset)), data);
            sync_bars(*s);
        }
    } else {
        log::debug("pci-host: ignored {}-byte write at port {:#x}", data.size(), kPortBase + offset);
    }
}

void PciHost::save_state(StateWriter& out) const {
    out.u8(1);
    out.u32(address_);
    out.bytes(saved_state(bridge_));
}

bool PciHost::load_state(std::span<const uint8_t> blob) noexcept {
    StateReader in(blob);
    uint8_t version = 0;
    uint32_t address = 0;
    std::span<const uint8_t> bridge;
    in.u8(version);
    in.u32(address);
    in.bytes_view(bridge);
    if (!in.finished() || version != 1 || (address & ~kAddressMask) != 0 || !bridge_.load_state(bridge)) return false;
    address_ = address;
    for (Slot& s : slots_)
        if (s.function != nullptr) sync_bars(s);
    return true;
}

void PciHost::unmap(Mapping& m) noexcept {
    if (m.mapped) (m.io ? pio_ : mmio_).remove(m.base, *m.device);
    m.mapped = false;
}

void PciHost::sync_bars(Slot& slot) noexcept {
    // Where a memory BAR is decoded, as its function learns it (PciFunction::bar_moved).
    auto decoded = [](const Mapping& m) { return m.mapped && !m.io ? std::optional(m.base) : std::nullopt; };
    for (int i = 0; i < PciFunction::kNumBars; ++i) {
        const std::optional<uint64_t> before = decoded(slot.bars[i]);
        remap(slot, i);
        if (decoded(slot.bars[i]) != before) slot.function->bar_moved(i, decoded(slot.bars[i]));
    }
}

void PciHost::remap(Slot& slot, int i) noexcept {
    Mapping& m = slot.bars[i];
    const auto w = slot.function->bar_window(i);
    const bool same = w && m.wanted && m.io == w->io && m.base == w->base && m.size == w->size && m.device == w->device;
    if (same && m.mapped) return;
    unmap(m);
    m.wanted = w.has_value();
    if (!w) return;
    m.io = w->io;
    m.base = w->base;
    m.size = w->size;
    m.device = w->device;
    Bus& bus = m.io ? pio_ : mmio_;
    m.mapped = bus.try_insert(m.base, m.size, *m.device);
    if (m.mapped)
        log::debug("pci: {} BAR{} mapped at {} {:#x}+{:#x}", slot.function->name(), i, m.io ? "io" : "mem", m.base, m.size);
    else
        log::debug("pci: {} BAR{} at {} {:#x}+{:#x} conflicts, left unmapped", slot.function->name(), i,
                   m.io ? "io" : "mem", m.base, m.size);
}

}  // namespace minivmm
