// PCI host bridge with configuration mechanism #1 (PCI Local Bus 3.0 §3.2.2.3.2): a 32-bit
// CONFIG_ADDRESS register at 0xCF8 (bit 31 enable, bus 23:16, device 15:11, function 10:8,
// register 7:2) and a CONFIG_DATA window at 0xCFC-0xCFF. Bus 0 only, function 0 of each slot only;
// everything else reads all-ones. Slot 0 is the host bridge itself (1B36:0008, deliberately not
// an i440FX/Q35 id: SeaBIOS src/fw/pciinit.c pci_platform_tbl then runs no chipset set-up).
//
// The host maps each function's BARs on the PIO/MMIO bus whenever the guest programs a BAR or
// toggles COMMAND I/O / memory decode. A mapping that conflicts with something already on the
// bus is left unmapped (logged at debug) and retried on the next config write to that function.
//
// Only dword accesses at 0xCF8 reach the address register; other accesses to 0xCF8-0xCFB read
// all-ones. Port 0xCF9 (reset control) lies inside this range: put a Cf9Decoder
// (devices/cf9_decoder.hpp) in front of this device to route it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "devices/device.hpp"
#include "devices/pci_function.hpp"
#include "devices/bus.hpp"
#include "vmm/base/platform.hpp"

namespace minivmm {

class PciHost final : public Device, public SavesState {
public:
    static constexpr uint16_t kPortBase = platform::kPciConfigAddress;  // map at 0xCF8 ...
    static constexpr uint16_t kPortSize = 8;                            // ... through 0xCFF
    static constexpr unsigned kSlots = 32;
    static constexpr uint8_t kHostBridgeSlot = 0;
    static constexpr PciIdentity kHostBridgeIdentity{0x1B36, 0x0008, 0, 0x060000, 0x1AF4, 0x1100, 0};

    // The buses BARs are mapped on; both must outlive the host (its destructor unmaps BARs).
    PciHost(Bus& pio, Bus& mmio);
    ~PciHost() override;
    PciHost(const PciHost&) = delete;
    PciHost& operator=(const PciHost&) = delete;

    // Set-up: puts `function` at 00:slot.0. Throws std::invalid_argument for slot > 31 or a slot
    // already in use (slot 0 is the host bridge).
    void add(uint8_t slot, PciFunction& function);

    std::string_view name() const noexcept override { return "pci-host"; }
    void read(uint64_t offset, std::span<uint8_t> data) noexcept override;
    void write(uint64_t offset, std::span<const uint8_t> data) noexcept override;

    uint32_t config_address() const noexcept { return address_; }

    // Snapshot (format version 1): u32 CONFIG_ADDRESS, then the host bridge function's own blob.
    // load_state then maps every function's BARs as its config says: load the functions added
    // with add() FIRST, then the host.
    void save_state(StateWriter& out) const override;
    bool load_state(std::span<const uint8_t> blob) noexcept override;

private:
    struct Mapping {
        bool wanted = false;  // the function wants this window decoded
        bool mapped = false;  // it is on the bus
        bool io = false;
        uint64_t base = 0;
        uint64_t size = 0;
        Device* device = nullptr;
    };
    struct Slot {
        PciFunction* function = nullptr;
        std::array<Mapping, PciFunction::kNumBars> bars{};
    };

    Slot* selected(uint16_t& reg) noexcept;  // slot addressed by CONFIG_ADDRESS, or null
    void sync_bars(Slot& slot) noexcept;
    void remap(Slot& slot, int index) noexcept;
    void unmap(Mapping& m) noexcept;

    Bus& pio_;
    Bus& mmio_;
    PciFunction bridge_;
    uint32_t address_ = 0;
    std::array<Slot, kSlots> slots_{};
};

}  // namespace minivmm
