// The port the -kernel boot ROM (firmware/linux_boot_rom.S) knocks on: one byte at
// platform::kLinuxBootPort. Writing kRequest asks the machine to place the kernel, initrd and command
// line in guest RAM and to measure them (vmm/kernel_boot.hpp); reading returns the result. The load
// runs once per power-on: SeaBIOS boots the ROM once, and a later request (the OS, or a ROM
// entered twice) is refused without touching memory the kernel may already use.
#pragma once

#include <cstdint>
#include <functional>

#include "devices/device.hpp"
#include "devices/device_state.hpp"

namespace minivmm {

class LinuxBootPort final : public Device, public SavesState {
public:
    static constexpr uint8_t kRequest = 0x01;
    // Read values.
    static constexpr uint8_t kLoaded = 0x00;
    static constexpr uint8_t kIdle = 0x01;     // nothing requested yet
    static constexpr uint8_t kRefused = 0x02;  // a second request
    static constexpr uint8_t kFailed = 0xFF;   // the machine could not load the kernel
    static constexpr uint64_t kSize = 1;

    // `load` places and measures the kernel; true on success. Called at most once, on the vCPU
    // thread of the request, under the device lock.
    explicit LinuxBootPort(std::function<bool()> load) : load_(std::move(load)) {}

    std::string_view name() const noexcept override { return "linux-boot"; }
    void read(uint64_t offset, std::span<uint8_t> data) noexcept override;
    void write(uint64_t offset, std::span<const uint8_t> data) noexcept override;

    // Snapshot (format version 1): u8 requested (0/1), u8 status. A restored port refuses a second
    // request of the power-on as the saved one would (the kernel is in the saved RAM already).
    void save_state(StateWriter& out) const override;
    bool load_state(std::span<const uint8_t> blob) noexcept override;

private:
    std::function<bool()> load_;
    bool requested_ = false;
    uint8_t status_ = kIdle;
};

}  // namespace minivmm
