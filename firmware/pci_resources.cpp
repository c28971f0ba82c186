#include "firmware/pci_resources.hpp"

#include <algorithm>
#include <vector>

#include <fmt/core.h>

namespace minivmm {

namespace {

constexpr uint16_t kCommand = 0x04, kBar0 = 0x10;
constexpr unsigned kSlots = 32, kBars = 6;
constexpr uint32_t kCommandIo = 0x1, kCommandMemory = 0x2;

struct Bar {
    uint8_t slot;
    unsigned index;
    bool io, wide;  // wide: a 64-bit memory BAR (index and index + 1)
    uint64_t size;
};

std::vector<Bar> probe(PciConfigAccess& config) {
    std::vector<Bar> bars;
    for (unsigned s = 0; s < kSlots; ++s) {
        const auto slot = static_cast<uint8_t>(s);
        if ((config.read32(slot, 0) & 0xFFFF) == 0xFFFF) continue;  // no vendor: no device
        for (unsigned i = 0; i < kBars; ++i) {
            const auto reg = static_cast<uint16_t>(kBar0 + 4 * i);
            const uint32_t original = config.read32(slot, reg);
            config.write32(slot, reg, 0xFFFF'FFFF);
            const uint32_t low = config.read32(slot, reg);
            config.write32(slot, reg, original);
            const bool io = original & 1, wide = !io && ((original >> 1) & 3) == 2 && i + 1 < kBars;
            uint64_t mask = io ? (low & ~uint64_t{3}) | 0xFFFF'0000ull : low & ~uint64_t{0xF};
            if (wide) {
                const auto high_reg = static_cast<uint16_t>(reg + 4);
                const uint32_t high_original = config.read32(slot, high_reg);
                config.write32(slot, high_reg, 0xFFFF'FFFF);
                mask |= uint64_t{config.read32(slot, high_reg)} << 32;
                config.write32(slot, high_reg, high_original);
            } else {
                mask |= 0xFFFF'FFFF'0000'0000ull;
            }
            const uint64_t size = ~mask + 1;
            if ((low & ~uint32_t{0xF}) != 0 || (io && (low & ~uint32_t{3}) != 0))
                if (size != 0 && (size & (size - 1)) == 0) bars.push_back({slot, i, io, wide, size});
            if (wide) ++i;
        }
    }
    return bars;
}

}  // namespace

std::string assign_pci_resources(PciConfigAccess& config, const PciWindows& windows) {
    std::vector<Bar> bars = probe(config);
    std::stable_sort(bars.begin(), bars.end(), [](const Bar& a, const Bar& b) { return a.size > b.size; });
    uint64_t next_mmio = windows.mmio_base, next_io = windows.io_base;
    std::vector<std::pair<Bar, uint64_t>> placed;
    for (const Bar& bar : bars) {
        uint64_t& next = bar.io ? next_io : next_mmio;
        const uint64_t end = bar.io ? windows.io_end : windows.mmio_end;
        const uint64_t address = (next + bar.size - 1) & ~(bar.size - 1);
        if (address < next || address > end || bar.size > end - address)
            return fmt::format("PCI: BAR {} of 00:{:02x}.0 ({:#x} bytes) does not fit the {} window", bar.index, bar.slot,
                               bar.size, bar.io ? "I/O" : "memory");
        next = address + bar.size;
        placed.push_back({bar, address});
    }
    uint32_t enable[kSlots] = {};
    for (const auto& [bar, address] : placed) {
        const auto reg = static_cast<uint16_t>(kBar0 + 4 * bar.index);
        const uint32_t flags = config.read32(bar.slot, reg) & (bar.io ? 0x3u : 0xFu);
        config.write32(bar.slot, reg, static_cast<uint32_t>(address) | flags);
        if (bar.wide) config.write32(bar.slot, static_cast<uint16_t>(reg + 4), static_cast<uint32_t>(address >> 32));
        enable[bar.slot] |= bar.io ? kCommandIo : kCommandMemory;
    }
    for (unsigned s = 0; s < kSlots; ++s)
        if (enable[s]) {
            const auto slot = static_cast<uint8_t>(s);
            const uint32_t command_status = config.read32(slot, kCommand);
            config.write32(slot, kCommand, (command_status & 0xFFFF) | enable[s]);  // status bits are write-1-to-clear
        }
    return {};
}

}  // namespace minivmm
