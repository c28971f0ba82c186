// An address bus (port I/O or MMIO): sorted, non-overlapping [base, base+size) ranges, each
// bound to a Device. An access is delivered only if it lies wholly inside one device; anything
// else reads all-ones (a floating ISA/PCI bus) and drops writes, logged at debug level.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string_view>

#include "devices/device.hpp"

namespace minivmm {

class Bus {
public:
    explicit Bus(std::string_view name) : name_(name) {}

    // Set-up time insertion: throws std::invalid_argument on zero size, wrap-around or overlap.
    void insert(uint64_t base, uint64_t size, Device& device);
    // Run-time (guest-driven, e.g. PCI BAR programming) variants: never throw.
    [[nodiscard]] bool try_insert(uint64_t base, uint64_t size, Device& device) noexcept;
    bool remove(uint64_t base, const Device& device) noexcept;

    // Returns false (and fills 0xFF / drops the write) when no single device covers the access.
    bool read(uint64_t address, std::span<uint8_t> data) noexcept;
    bool write(uint64_t address, std::span<const uint8_t> data) noexcept;

    // The device covering [address, address+size), with the offset into it.
    struct Hit {
        Device* device = nullptr;
        uint64_t offset = 0;
    };
    Hit find(uint64_t address, uint64_t size) const noexcept;

private:
    struct Range {
        uint64_t size;
        Device* device;
    };
    std::string_view name_;
    std::map<uint64_t, Range> ranges_;  // keyed by base
};

}  // namespace minivmm
