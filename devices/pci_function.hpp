// One PCI function's type-0 configuration header (PCI Local Bus 3.0 §6.1-6.2): identity registers,
// COMMAND/STATUS, up to six BARs, a capability list, and per-byte write masks so read-only fields
// stay read-only whatever the guest writes. The PciHost owns the bus mappings: it reads
// bar_window() after every config write and maps or unmaps the BAR's Device accordingly.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "devices/device.hpp"
#include "devices/device_state.hpp"

namespace minivmm {

struct PciIdentity {
    uint16_t vendor_id = 0;
    uint16_t device_id = 0;
    uint8_t revision = 0;
    uint32_t class_code = 0;  // 24 bits: base class << 16 | subclass << 8 | programming interface
    uint16_t subsystem_vendor_id = 0;
    uint16_t subsystem_id = 0;
    uint8_t interrupt_pin = 0;  // 0 = none, 1 = INTA# .. 4 = INTD#
};

enum class PciBarType { io, mem32, mem64 };

namespace pci {
inline constexpr uint16_t kVendorId = 0x00;
inline constexpr uint16_t kDeviceId = 0x02;
inline constexpr uint16_t kCommand = 0x04;
inline constexpr uint16_t kStatus = 0x06;
inline constexpr uint16_t kRevision = 0x08;
inline constexpr uint16_t kClassCode = 0x09;  // prog-if at 0x09, subclass 0x0A, base class 0x0B
inline constexpr uint16_t kCacheLineSize = 0x0C;
inline constexpr uint16_t kLatencyTimer = 0x0D;
inline constexpr uint16_t kHeaderType = 0x0E;
inline constexpr uint16_t kBar0 = 0x10;
inline constexpr uint16_t kSubsystemVendorId = 0x2C;
inline constexpr uint16_t kSubsystemId = 0x2E;
inline constexpr uint16_t kRomBar = 0x30;
inline constexpr uint16_t kCapabilityPointer = 0x34;
inline constexpr uint16_t kInterruptLine = 0x3C;
inline constexpr uint16_t kInterruptPin = 0x3D;
inline constexpr uint16_t kFirstCapability = 0x40;

inline constexpr uint16_t kCommandIo = 1u << 0;
inline constexpr uint16_t kCommandMemory = 1u << 1;
inline constexpr uint16_t kCommandMaster = 1u << 2;
inline constexpr uint16_t kCommandParity = 1u << 6;
inline constexpr uint16_t kCommandSerr = 1u << 8;
inline constexpr uint16_t kCommandIntxDisable = 1u << 10;
inline constexpr uint16_t kStatusInterrupt = 1u << 3;
inline constexpr uint16_t kStatusCapabilities = 1u << 4;

inline constexpr uint8_t kCapVendor = 0x09;
inline constexpr uint8_t kCapMsix = 0x11;
}  // namespace pci

class PciFunction : public SavesState {
public:
    static constexpr size_t kConfigSize = 256;
    static constexpr int kNumBars = 6;

    PciFunction(std::string_view name, const PciIdentity& identity);
    virtual ~PciFunction() = default;
    PciFunction(const PciFunction&) = delete;
    PciFunction& operator=(const PciFunction&) = delete;

    std::string_view name() const noexcept { return name_; }

    // Config-space accesses from the host bridge: 1..4 bytes wholly inside the 256-byte space
    // (others read all-ones / are dropped).
    void config_read(uint16_t offset, std::span<uint8_t> data) noexcept;
    void config_write(uint16_t offset, std::span<const uint8_t> data) noexcept;

    // Where BAR `index` should be decoded now: absent when the BAR is not implemented (or is the
    // upper half of a 64-bit BAR), COMMAND decode for its space is off, or the programmed address
    // is 0 / does not fit the address space.
    struct BarWindow {
        bool io = false;
        uint64_t base = 0;
        uint64_t size = 0;
        Device* device = nullptr;
    };
    std::optional<BarWindow> bar_window(int index) const noexcept;

    uint16_t command() const noexcept { return read16(pci::kCommand); }

    // Snapshot (format version 1): the 256 config bytes. Refused when a bit the guest cannot write
    // differs from this function's (another device, or a register the device owns). Loading maps
    // nothing: the PciHost's load_state maps every function's BARs as their restored config says.
    // Derived functions with more state override both and use save_config/parse_config.
    void save_state(StateWriter& out) const override;
    bool load_state(std::span<const uint8_t> blob) noexcept override;

    // The host bridge tells where memory BAR `index` is now decoded on the bus (nullopt: nowhere,
    // e.g. decode off or a conflicting address), after every change. Nothing to do by default.
    virtual void bar_moved(int /*index*/, std::optional<uint64_t> /*base*/) noexcept {}

protected:
    // --- set-up (constructor time; throw std::invalid_argument on misuse) --------------------
    // size: power of two, >= 16 for memory and >= 4 for I/O. A 64-bit BAR also takes index+1.
    void add_bar(int index, PciBarType type, uint64_t size, Device& device, bool prefetchable = false);
    // Appends a capability of `length` bytes (header included) to the list and returns its
    // offset. The body is zero and read-only until init_* / set_writable change that.
    uint8_t add_capability(uint8_t id, uint8_t length);
    void init8(uint16_t offset, uint8_t value);
    void init16(uint16_t offset, uint16_t value);
    void init32(uint16_t offset, uint32_t value);
    void set_writable(uint16_t offset, uint16_t length, uint8_t mask = 0xff);

    // --- snapshots ---------------------------------------------------------------------------
    using Config = std::array<uint8_t, kConfigSize>;
    void save_config(StateWriter& out) const;
    // Reads a config image saved by save_config and checks every read-only bit equals this
    // function's, except STATUS.INTERRUPT (kStatus bit 3) which the caller checks (interrupt_status).
    bool parse_config(StateReader& in, Config& out) const noexcept;
    static bool interrupt_status(const Config& config) noexcept { return config[pci::kStatus] & pci::kStatusInterrupt; }
    // Installs a parsed image as is (no config_written hook runs).
    void set_config(const Config& config) noexcept { config_ = config; }

    // --- run time --------------------------------------------------------------------------
    uint8_t read8(uint16_t offset) const noexcept { return offset < kConfigSize ? config_[offset] : 0xff; }
    uint16_t read16(uint16_t offset) const noexcept;
    uint32_t read32(uint16_t offset) const noexcept;
    // Device-owned bytes (e.g. a data window refreshed before a read); bypasses write masks.
    void store(uint16_t offset, std::span<const uint8_t> bytes) noexcept;
    void set_interrupt_status(bool pending) noexcept;  // STATUS bit 3
    Device* bar_device(int index) const noexcept;
    uint64_t bar_size(int index) const noexcept;

    // Hooks for derived functions: called after a write has been stored through the write
    // masks, and before a read is served (to refresh dynamic bytes).
    virtual void config_written(uint16_t /*offset*/, size_t /*size*/) noexcept {}
    virtual void config_before_read(uint16_t /*offset*/, size_t /*size*/) noexcept {}

private:
    struct Bar {
        PciBarType type = PciBarType::mem32;
        uint64_t size = 0;  // 0 = not implemented (or upper half of a 64-bit BAR)
        Device* device = nullptr;
    };
    std::string name_;
    std::array<uint8_t, kConfigSize> config_{};
    std::array<uint8_t, kConfigSize> wmask_{};
    std::array<Bar, kNumBars> bars_{};
    uint8_t last_capability_ = 0;
    uint16_t next_capability_ = pci::kFirstCapability;
};

}  // namespace minivmm
