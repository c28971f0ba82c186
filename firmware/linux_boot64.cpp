#include "firmware/linux_boot64.hpp"

#include <algorithm>
#include <stdexcept>

#include <fmt/core.h>

#include "vmm/base/bytes.hpp"

namespace minivmm::linux_boot64 {

namespace {

uint16_t header16(const linux_boot::Plan& plan, size_t offset) {
    return offset + 2 <= plan.setup.size() ? static_cast<uint16_t>(load_le(std::span(plan.setup).subspan(offset, 2))) : 0;
}

}  // namespace

void check_64bit_entry(const linux_boot::Plan& plan) {
    if (plan.protocol < kMinProtocol)
        throw std::invalid_argument(fmt::format("boot protocol {}.{:02} has no 64-bit entry (2.12 or later is needed to "
                                                "boot without firmware); drop -bios none to boot it through SeaBIOS",
                                                plan.protocol >> 8, plan.protocol & 0xFF));
    if (!(header16(plan, kXLoadFlags) & kXlfKernel64))
        throw std::invalid_argument("the kernel has no 64-bit entry point (XLF_KERNEL_64 is clear: a 32-bit kernel?); "
                                    "drop -bios none to boot it through SeaBIOS");
}

std::vector<uint8_t> boot_params(const linux_boot::Plan& plan, std::span<const E820Entry> e820, uint64_t rsdp_addr) {
    if (e820.size() > zp::kE820Max) throw std::invalid_argument("e820: more entries than the zero page holds");
    if (plan.setup.size() < 0x202) throw std::invalid_argument("setup header missing");
    std::vector<uint8_t> zero(zp::kSize, 0);
    const size_t header_end = std::min(plan.setup.size(), size_t{0x202} + plan.setup[0x201]);
    std::copy(plan.setup.begin() + zp::kSetupHeader, plan.setup.begin() + header_end, zero.begin() + zp::kSetupHeader);
    auto z = std::span<uint8_t>(zero);
    store_le(z.subspan(zp::kAcpiRsdpAddr, 8), rsdp_addr);
    z[zp::kE820Entries] = static_cast<uint8_t>(e820.size());
    const std::vector<uint8_t> table = encode_e820(e820);  // struct boot_e820_entry: the same 20 bytes
    std::copy(table.begin(), table.end(), zero.begin() + zp::kE820Table);
    return zero;
}

std::vector<uint8_t> gdt() {
    // Flat 4 GiB descriptors (Intel SDM Vol. 3 §3.4.5): code: present, DPL 0, execute/read,
    // accessed, L=1 (64-bit), G=1; data: present, read/write, accessed, D/B=1, G=1.
    const uint64_t entries[4] = {0, 0, 0x00AF'9B00'0000'FFFFull, 0x00CF'9300'0000'FFFFull};
    std::vector<uint8_t> out(sizeof entries);
    for (size_t i = 0; i < 4; ++i) store_le(std::span(out).subspan(i * 8, 8), entries[i]);
    return out;
}

std::vector<uint8_t> page_tables() {
    // Present | writable on every level; PS (bit 7) makes a directory entry a 2 MiB page.
    constexpr uint64_t kPresentWritable = 0x3, kLargePage = 0x80, kPage = 4096;
    constexpr size_t kGiBs = kIdentityMappedBytes / (1ull << 30);
    std::vector<uint8_t> out(kPageTablesSize, 0);
    auto at = [&out](size_t page, size_t index) { return std::span(out).subspan(page * kPage + index * 8, 8); };
    store_le(at(0, 0), (kPageTablesAddr + kPage) | kPresentWritable);  // PML4[0] -> PDPT
    for (size_t g = 0; g < kGiBs; ++g) {
        store_le(at(1, g), (kPageTablesAddr + (2 + g) * kPage) | kPresentWritable);  // PDPT[g] -> directory g
        for (size_t m = 0; m < 512; ++m)
            store_le(at(2 + g, m), ((g << 30) + (m << 21)) | kPresentWritable | kLargePage);
    }
    return out;
}

}  // namespace minivmm::linux_boot64
