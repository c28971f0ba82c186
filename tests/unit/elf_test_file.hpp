// Synthetic ELF vmlinux files for the unit tests of the PVH path (firmware/elf_kernel.hpp,
// vmm/pvh_kernel.hpp), built as the ELF-64 format lays them out: an Elf64_Ehdr, the program
// headers, a PT_NOTE holding Xen's XEN_ELFNOTE_PHYS32_ENTRY note among others, and PT_LOAD
// segments, one with .bss; and guest RAM over a vector to load them into.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vmm/base/bytes.hpp"
#include "vmm/base/guest_memory.hpp"

namespace minivmm::testing {

inline constexpr uint32_t kPtLoad = 1, kPtNote = 4;
inline constexpr uint64_t kRamStart = 1ull << 20, kRamEnd = (512ull << 20) - (1ull << 20);
inline constexpr uint64_t kText = 0x1000000, kData = 0x1001000;  // where the good kernel's segments run
inline constexpr size_t kBody = 0x400;                          // file offset of everything after the headers

struct Ph {
    uint32_t type;
    uint64_t offset, paddr, file_size, mem_size, align = 4;
};

// One Elf64_Nhdr entry: namesz, descsz, type, then the name and the desc, each padded so that
// what follows starts at a multiple of `align`.
inline std::vector<uint8_t> note(const std::string& name, uint32_t type, const std::vector<uint8_t>& desc, size_t align = 4) {
    std::vector<uint8_t> out;
    append_le(out, name.size(), 4);
    append_le(out, desc.size(), 4);
    append_le(out, type, 4);
    out.insert(out.end(), name.begin(), name.end());
    out.resize((out.size() + align - 1) / align * align, 0);
    out.insert(out.end(), desc.begin(), desc.end());
    out.resize((out.size() + align - 1) / align * align, 0);
    return out;
}
inline const std::string kXen("Xen\0", 4);

inline std::vector<uint8_t> le(uint64_t v, size_t n) {
    std::vector<uint8_t> out;
    append_le(out, v, n);
    return out;
}

// An ELF file: the header fields tests change, the program headers, and the bytes at kBody.
struct Elf {
    uint8_t elf_class = 2, data = 1;  // ELFCLASS64, ELFDATA2LSB
    uint16_t type = 2, machine = 62, phentsize = 56;  // ET_EXEC, EM_X86_64
    uint64_t phoff = 64;
    std::vector<Ph> phs;
    std::vector<uint8_t> body;

    std::vector<uint8_t> bytes() const {
        std::vector<uint8_t> f(std::max<size_t>(kBody + body.size(), 64 + phs.size() * 56), 0);
        auto put = [&f](size_t at, size_t n, uint64_t v) { store_le(std::span(f).subspan(at, n), v); };
        f[0] = 0x7F, f[1] = 'E', f[2] = 'L', f[3] = 'F', f[4] = elf_class, f[5] = data, f[6] = 1;
        put(16, 2, type);
        put(18, 2, machine);
        put(20, 4, 1);
        put(32, 8, phoff);
        put(52, 2, 64);
        put(54, 2, phentsize);
        put(56, 2, phs.size());
        for (size_t i = 0; i < phs.size(); ++i) {
            const size_t at = 64 + i * 56;
            put(at, 4, phs[i].type);
            put(at + 8, 8, phs[i].offset);
            put(at + 16, 8, phs[i].paddr + 0xFFFFFFFF80000000ull);  // p_vaddr: the kernel's mapping
            put(at + 24, 8, phs[i].paddr);
            put(at + 32, 8, phs[i].file_size);
            put(at + 40, 8, phs[i].mem_size);
            put(at + 48, 8, phs[i].align);
        }
        std::copy(body.begin(), body.end(), f.begin() + kBody);
        return f;
    }
};

// A vmlinux in small: notes (a GNU build id, Xen's XEN_ELFNOTE_ENTRY, then the PVH entry with a
// `desc_size`-byte desc), text at kText, data with .bss at kData, and an empty PT_LOAD (ignored).
inline Elf good_kernel(size_t desc_size = 8, uint64_t entry = kText + 0x10) {
    Elf e;
    std::vector<uint8_t> notes = note(std::string("GNU\0", 4), 3, std::vector<uint8_t>(20, 0xB1));
    const auto xen_entry = note(kXen, 1, le(0xFFFFFFFF81000000ull, 8));
    const auto pvh = note(kXen, 18, le(entry, desc_size));
    notes.insert(notes.end(), xen_entry.begin(), xen_entry.end());
    notes.insert(notes.end(), pvh.begin(), pvh.end());
    e.body.assign(0x300, 0);
    std::copy(notes.begin(), notes.end(), e.body.begin());
    for (size_t i = 0; i < 0x100; ++i) e.body[0x100 + i] = static_cast<uint8_t>(i * 3 + 1);
    for (size_t i = 0; i < 0x40; ++i) e.body[0x200 + i] = static_cast<uint8_t>(0xD0 + i);
    e.body.resize(0x240);
    e.phs = {{kPtNote, kBody, 0, notes.size(), notes.size()},
             {kPtLoad, kBody + 0x100, kText, 0x100, 0x100, 0x200000},
             {kPtLoad, kBody + 0x200, kData, 0x40, 0x200, 0x200000},
             {kPtLoad, 0, 0x7000000000, 0, 0}};
    return e;
}

// Guest RAM [gpa, gpa + size) filled with 0xAA.
struct Ram {
    Ram(uint64_t gpa, size_t size) : bytes(size, 0xAA), memory({GuestRegion{gpa, size, bytes.data()}}) {}
    std::vector<uint8_t> bytes;
    GuestMemory memory;
};

}  // namespace minivmm::testing
