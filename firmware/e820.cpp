#include "firmware/e820.hpp"

#include <algorithm>

#include <stdexcept>

#include <fmt/core.h>

#include "devices/device.hpp"
#include "vmm/base/platform.hpp"

namespace minivmm {

std::vector<E820Entry> build_e820(uint64_t ram_below_4g, uint64_t ram_above_4g, bool tpm_crb_buffer) {
    if (ram_below_4g == 0) throw std::invalid_argument("e820: no RAM below 4 GiB");
    // Above kLowMemoryLimit lie the PCI window, the IOAPIC/TPM/LAPIC and the KVM pages.
    if (ram_below_4g > platform::kLowMemoryLimit)
        throw std::invalid_argument(fmt::format("e820: {:#x} bytes of RAM below 4 GiB exceed the {:#x} limit",
                                                ram_below_4g, platform::kLowMemoryLimit));
    if (ram_above_4g > UINT64_MAX - platform::kHighMemoryBase)
        throw std::invalid_argument("e820: RAM above 4 GiB overflows the address space");

    std::vector<E820Entry> map;
    map.push_back({0, ram_below_4g, kE820Ram});
    if (ram_above_4g > 0) map.push_back({platform::kHighMemoryBase, ram_above_4g, kE820Ram});
    // QEMU target/i386/kvm/kvm.c: the identity-map page and the 3-page TSS must not be used as RAM.
    map.push_back({platform::kKvmIdentityMapAddr, platform::kKvmReservedSize, kE820Reserved});
    if (tpm_crb_buffer) map.push_back({platform::kTpmCrbBufferBase, platform::kTpmCrbBufferSize, kE820Reserved});
    return map;
}

std::vector<E820Entry> build_direct_boot_e820(uint64_t ram_below_4g, uint64_t ram_above_4g, bool tpm_crb_buffer,
                                              uint64_t firmware_area) {
    std::vector<E820Entry> common = build_e820(ram_below_4g, ram_above_4g, tpm_crb_buffer);
    if (ram_below_4g < platform::kBiosShadowEnd || ram_below_4g - platform::kBiosShadowEnd <= firmware_area)
        throw std::invalid_argument(fmt::format("e820: {:#x} bytes of RAM below 4 GiB leave none above 1 MiB", ram_below_4g));
    std::vector<E820Entry> map{
        {0, kE820LowRamEnd, kE820Ram},
        {kE820LowRamEnd, platform::kLegacyHoleStart - kE820LowRamEnd, kE820Reserved},
        {kE820FsegBase, platform::kBiosShadowEnd - kE820FsegBase, kE820Reserved},
        {platform::kBiosShadowEnd, ram_below_4g - firmware_area - platform::kBiosShadowEnd, kE820Ram},
        {ram_below_4g - firmware_area, firmware_area, kE820Reserved},
    };
    for (const E820Entry& e : common)
        if (e.addr != 0) map.push_back(e);  // all but build_e820's low RAM entry
    std::sort(map.begin(), map.end(), [](const E820Entry& a, const E820Entry& b) { return a.addr < b.addr; });
    return map;
}

std::vector<uint8_t> encode_e820(std::span<const E820Entry> entries) {
    std::vector<uint8_t> out(entries.size() * kE820EntrySize);
    auto bytes = std::span<uint8_t>(out);
    for (size_t i = 0; i < entries.size(); ++i) {
        auto e = bytes.subspan(i * kE820EntrySize, kE820EntrySize);
        store_le(e.subspan(0, 8), entries[i].addr);
        store_le(e.subspan(8, 8), entries[i].size);
        store_le(e.subspan(16, 4), entries[i].type);
    }
    return out;
}

}  // namespace minivmm
