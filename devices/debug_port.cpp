#include "devices/debug_port.hpp"

namespace minivmm {

void DebugPort::read(uint64_t /*offset*/, std::span<uint8_t> data) noexcept {
    for (auto& byte : data) byte = kReadbackValue;
}

void DebugPort::write(uint64_t /*offset*/, std::span<const uint8_t> data) noexcept {
    // Mapped as one port, so the bus hands over single bytes; each byte is one character.
    if (out_ != nullptr && !data.empty()) out_->write(data);
}

}  // namespace minivmm
