// The guest's "boot complete" mark, as Firecracker's boot timer takes it: one byte of value 123
// written to port 0x3F0 (Firecracker src/vmm/src/devices/pseudo/boot_timer.rs; 0x3F0 is a floppy
// controller's base, and this machine has none). The first mark of each power-on goes to a
// BootMarkSink (vmm/host/boot_timer.hpp prints how long minivmm took to get there); later ones
// and other writes are ignored (debug log), so a guest cannot flood the host's stderr. Reads
// float (0xFF), as an empty port does.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "devices/device.hpp"
#include "devices/device_state.hpp"

namespace minivmm {

// Told once per power-on that the guest marked its boot complete. Called under the device lock.
class BootMarkSink {
public:
    virtual ~BootMarkSink() = default;
    virtual void guest_marked() noexcept = 0;
};

class BootMarker final : public Device, public SavesState {
public:
    static constexpr uint64_t kSize = 1;
    static constexpr uint8_t kValue = 123;

    explicit BootMarker(BootMarkSink& sink) noexcept : sink_(sink) {}

    std::string_view name() const noexcept override { return "boot-marker"; }
    void read(uint64_t offset, std::span<uint8_t> data) noexcept override;
    void write(uint64_t offset, std::span<const uint8_t> data) noexcept override;
    bool marked() const noexcept { return marked_; }

    // Snapshot (format version 1): u8 marked (0/1), so a restored machine does not report the
    // boot again in the same power-on. load_state tells the sink nothing.
    void save_state(StateWriter& out) const override;
    bool load_state(std::span<const uint8_t> blob) noexcept override;

private:
    BootMarkSink& sink_;
    bool marked_ = false;
};

}  // namespace minivmm
