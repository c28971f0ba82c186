// A device's register page served from memory, so the guest's register reads cost no exit. The
// machine maps the page as a read-only KVM memory slot (KVM_MEM_READONLY: the guest's reads are
// served from the host page, its writes exit as MMIO, Documentation/virt/kvm/api.rst
// KVM_SET_USER_MEMORY_REGION) and puts this decorator on the bus in the device's place: every
// write reaches the device and the page is re-rendered from the device's registers before the
// guest runs on. Whatever else changes the device's state (a TPM command completing on the
// worker) calls refresh() under the device lock. For devices whose register reads have no side
// effects (the CRB: devices/tpm_crb.hpp).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "devices/device.hpp"

namespace minivmm {

class RegisterMirror final : public Device {
public:
    // `page` is the host page behind the slot (4-byte aligned). Every register is read from the
    // device as an aligned 32-bit word in [0, register_bytes) and stored there at once; after that
    // only the words at `changing` (the registers whose values can change: the device says which,
    // and fuzz_tpm_crb checks the whole page) are re-read. The rest of the page is left as it is
    // (zero: reserved space).
    RegisterMirror(Device& device, std::span<uint8_t> page, uint32_t register_bytes,
                   std::span<const uint32_t> changing) noexcept;

    std::string_view name() const noexcept override { return device_.name(); }
    // Only reached where KVM emulates a read from the page as MMIO; the device answers.
    void read(uint64_t offset, std::span<uint8_t> data) noexcept override { device_.read(offset, data); }
    void write(uint64_t offset, std::span<const uint8_t> data) noexcept override;
    void refresh() noexcept;

private:
    void store(uint32_t offset) noexcept;

    Device& device_;
    std::span<uint8_t> page_;
    std::span<const uint32_t> changing_;
};

}  // namespace minivmm
