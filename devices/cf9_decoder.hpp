// Port 0xCF8-0xCFF decode as on PIIX-class chipsets: a single byte access to 0xCF9 is the
// reset control register; every other access in the range belongs to PCI configuration
// mechanism #1 (0xCF8 address dword, 0xCFC-0xCFF data). Mapped at 0xCF8, size 8.
#pragma once

#include "devices/device.hpp"

namespace minivmm {

// No snapshot state: a pure address decoder (PciHost and ResetControl save their own).
class Cf9Decoder final : public Device {
public:
    Cf9Decoder(Device& pci_config, Device& reset_control) : pci_(pci_config), reset_(reset_control) {}
    std::string_view name() const noexcept override { return "cf8-cff"; }
    void read(uint64_t offset, std::span<uint8_t> data) noexcept override {
        if (is_reset(offset, data.size()))
            reset_.read(0, data);
        else
            pci_.read(offset, data);
    }
    void write(uint64_t offset, std::span<const uint8_t> data) noexcept override {
        if (is_reset(offset, data.size()))
            reset_.write(0, data);
        else
            pci_.write(offset, data);
    }

private:
    static bool is_reset(uint64_t offset, size_t size) noexcept { return offset == 1 && size == 1; }
    Device& pci_;
    Device& reset_;
};

}  // namespace minivmm
