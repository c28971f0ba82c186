#include "firmware/pvh.hpp"

#include <stdexcept>

#include "vmm/base/bytes.hpp"

namespace minivmm::pvh {

std::vector<uint8_t> start_info(uint64_t cmdline_paddr, std::optional<Module> initrd, uint64_t rsdp_paddr,
                                std::span<const E820Entry> memmap) {
    if (memmap.size() > kMemmapMax) throw std::invalid_argument("PVH: more memory map entries than fit");
    std::vector<uint8_t> block(kMemmapAddr - kStartInfoAddr + memmap.size() * kMemmapEntrySize, 0);
    auto at = [&block](uint64_t address, size_t size) { return std::span(block).subspan(address - kStartInfoAddr, size); };
    store_le(at(kStartInfoAddr + 0, 4), kStartInfoMagic);
    store_le(at(kStartInfoAddr + 4, 4), 1);  // version
    store_le(at(kStartInfoAddr + 8, 4), 0);  // flags: none of SIF_PRIVILEGED, SIF_INITDOMAIN
    store_le(at(kStartInfoAddr + 12, 4), initrd ? 1 : 0);
    store_le(at(kStartInfoAddr + 16, 8), initrd ? kModlistAddr : 0);
    store_le(at(kStartInfoAddr + 24, 8), cmdline_paddr);
    store_le(at(kStartInfoAddr + 32, 8), rsdp_paddr);
    store_le(at(kStartInfoAddr + 40, 8), kMemmapAddr);
    store_le(at(kStartInfoAddr + 48, 4), memmap.size());
    if (initrd) {
        store_le(at(kModlistAddr + 0, 8), initrd->paddr);
        store_le(at(kModlistAddr + 8, 8), initrd->size);
    }
    for (size_t i = 0; i < memmap.size(); ++i) {
        const uint64_t entry = kMemmapAddr + i * kMemmapEntrySize;
        store_le(at(entry + 0, 8), memmap[i].addr);
        store_le(at(entry + 8, 8), memmap[i].size);
        store_le(at(entry + 16, 4), memmap[i].type);  // XEN_HVM_MEMMAP_TYPE_* are the e820 types
    }
    return block;
}

std::vector<uint8_t> gdt() {
    // Intel SDM Vol. 3 §3.4.5: code: present, execute/read, accessed, D=1 (32-bit), G=1; data:
    // present, read/write, accessed, B=1, G=1; TSS: present, type 0xB (busy 32-bit TSS), limit 0x67.
    const uint64_t entries[4] = {0, 0x00CF'9B00'0000'FFFFull, 0x00CF'9300'0000'FFFFull, 0x0000'8B00'0000'0067ull};
    std::vector<uint8_t> out(sizeof entries);
    for (size_t i = 0; i < 4; ++i) store_le(std::span(out).subspan(i * 8, 8), entries[i]);
    return out;
}

}  // namespace minivmm::pvh
