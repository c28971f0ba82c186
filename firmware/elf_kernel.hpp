// An x86-64 Linux vmlinux (an ELF executable) read for a PVH boot: its PT_LOAD segments, placed at
// their physical addresses (p_paddr), and the 32-bit physical entry the kernel names in the Xen
// note XEN_ELFNOTE_PHYS32_ENTRY (Xen public/elfnote.h; docs/misc/pvh.pandoc: the guest starts
// there in 32-bit protected mode, paging off, %ebx holding the start_info's address). Linux emits
// the note when built with CONFIG_PVH (arch/x86/platform/pvh/head.S).
// The file is untrusted: every offset, size and address is checked, with overflow-safe arithmetic,
// before anything is read or written. Pure: unit-tested and fuzzed without KVM. The file is either
// in memory (a span) or read in parts through a ReadAt (a -kernel-cache entry, read in place with
// pread: only the headers and notes at start-up, then each segment straight into guest RAM; no file
// I/O here).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "vmm/base/guest_memory.hpp"

namespace minivmm::elf_kernel {

struct Segment {
    uint64_t paddr = 0;      // p_paddr: where it lies in guest-physical memory
    uint64_t offset = 0;     // p_offset: where its bytes start in the file
    uint64_t file_size = 0;  // p_filesz: bytes copied from the file
    uint64_t mem_size = 0;   // p_memsz: the rest, up to here, is zeroed (.bss)
};

struct Image {
    std::vector<Segment> segments;    // the PT_LOAD segments with mem_size > 0, in file order
    uint32_t pvh_entry = 0;           // XEN_ELFNOTE_PHYS32_ENTRY: a 32-bit physical address
    uint64_t lowest = 0, highest = 0;  // [lowest, highest): the span the segments cover
};

// Reads out.size() bytes at `offset` of the file into `out`; false when they cannot be read.
// Must not throw (load_into calls it from a noexcept path).
using ReadAt = std::function<bool(uint64_t offset, std::span<uint8_t> out)>;

// True when `file` starts with the ELF magic 7f 'E' 'L' 'F' (gABI, e_ident[EI_MAG0..3]).
bool is_elf(std::span<const uint8_t> file) noexcept;

// Parses `file` as a 64-bit little-endian x86-64 ELF executable (ET_EXEC or ET_DYN) to be loaded
// into a guest whose RAM usable by the kernel is [ram_start, ram_end). Throws std::invalid_argument
// with one line when the file is not such an ELF, a program header or segment lies outside the
// file, a segment lies outside [ram_start, ram_end) or overlaps another, or the PVH entry note is
// missing, malformed or points outside every segment.
Image parse(std::span<const uint8_t> file, uint64_t ram_start, uint64_t ram_end);
// As parse(span, ...) for a file of `file_size` bytes, reading only the ELF header, the program
// headers and the PT_NOTE segments (each checked to lie in the file before it is read, so what is
// allocated is bounded by the file size). A failed read throws std::invalid_argument with one
// line, as a malformed file does.
Image parse(uint64_t file_size, const ReadAt& read, uint64_t ram_start, uint64_t ram_end);

// Copies every segment's file bytes to its paddr and zeroes the rest up to mem_size. Checks every
// range first: false, with guest memory untouched, when a segment is outside `memory` or its
// bytes are outside `file`.
bool load_into(const GuestMemory& memory, const Image& image, std::span<const uint8_t> file) noexcept;
// As load_into(memory, image, span) for a file of `file_size` bytes: each segment's file bytes are
// read straight into guest RAM, the rest zeroed. Checks every range against `memory` and
// `file_size` first (false, guest memory untouched); false too when a read fails, which leaves
// the segments before it loaded.
bool load_into(const GuestMemory& memory, const Image& image, uint64_t file_size, const ReadAt& read) noexcept;

}  // namespace minivmm::elf_kernel
