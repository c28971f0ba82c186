// The QEMU/Bochs "debugcon" port that SeaBIOS writes its debug log to (platform::kDebugPort,
// 1 port). Every byte written goes to a ByteSink; reads return 0xE9, the value QEMU's
// isa-debugcon answers with, which is how SeaBIOS decides the port is there and turns its
// debug output on (SeaBIOS src/fw/paravirt.c qemu_preinit). The machine maps it only for -debugcon.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "devices/device.hpp"

namespace minivmm {

// No snapshot state: it holds no register (reads are constant, writes go straight to the sink).
class DebugPort final : public Device {
public:
    static constexpr uint8_t kReadbackValue = 0xE9;
    static constexpr uint64_t kSize = 1;

    // `out` may be nullptr: bytes are then discarded (the port still answers 0xE9).
    explicit DebugPort(ByteSink* out) noexcept : out_(out) {}

    std::string_view name() const noexcept override { return "debugcon"; }
    void read(uint64_t offset, std::span<uint8_t> data) noexcept override;
    void write(uint64_t offset, std::span<const uint8_t> data) noexcept override;

private:
    ByteSink* out_;
};

}  // namespace minivmm
