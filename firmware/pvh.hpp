// The PVH boot ABI, for entering an ELF vmlinux without firmware (-bios none): the kernel starts at
// its XEN_ELFNOTE_PHYS32_ENTRY address in 32-bit protected mode, paging off, %ebx pointing at a
// struct hvm_start_info (Xen docs/misc/pvh.pandoc "VCPU hardware state"; the layout is Xen's
// xen/include/public/arch-x86/hvm/start_info.h). Version 1 carries the memory map, so the kernel
// needs no hypercall to learn it (Linux arch/x86/platform/pvh/enlighten.c init_pvh_bootparams);
// module 0 is the initrd, rsdp_paddr the ACPI RSDP. Pure: unit-tested without KVM.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "firmware/e820.hpp"

namespace minivmm::pvh {

inline constexpr uint32_t kStartInfoMagic = 0x336EC578;  // XEN_HVM_START_MAGIC_VALUE
inline constexpr uint64_t kStartInfoAddr = 0x6000;      // below the GDT's page and the kernel's areas
inline constexpr size_t kStartInfoSize = 56;            // version 1: up to memmap_entries and reserved
inline constexpr uint64_t kModlistAddr = kStartInfoAddr + 0x40;
inline constexpr size_t kModlistEntrySize = 32;         // paddr, size, cmdline_paddr, reserved
inline constexpr uint64_t kMemmapAddr = kStartInfoAddr + 0x100;
inline constexpr size_t kMemmapEntrySize = 24;          // addr, size, type, reserved
inline constexpr size_t kMemmapMax = 128;
inline constexpr uint16_t kCodeSelector = 0x08, kDataSelector = 0x10, kTssSelector = 0x18;

struct Module {
    uint64_t paddr;
    uint64_t size;
};

// hvm_start_info (version 1), its module list (the initrd, if any) and its memory map, as one
// block for kStartInfoAddr (everything at the fixed offsets above). Throws std::invalid_argument
// when the map has more than kMemmapMax entries.
std::vector<uint8_t> start_info(uint64_t cmdline_paddr, std::optional<Module> initrd, uint64_t rsdp_paddr,
                                std::span<const E820Entry> memmap);

// The GDT for the 32-bit entry: null, flat 32-bit code (0x08), flat data (0x10), and a 32-bit TSS
// (0x18, base 0, limit 0x67) for the task register VM entry requires.
std::vector<uint8_t> gdt();

}  // namespace minivmm::pvh
