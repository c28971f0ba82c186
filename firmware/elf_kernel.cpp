#include "firmware/elf_kernel.hpp"

#include <algorithm>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>

#include <fmt/core.h>

#include "vmm/base/bytes.hpp"

namespace minivmm::elf_kernel {

namespace {

// ELF-64 Object File Format (1.5), "ELF Header" and "Program header table"; the values are the
// System V gABI's.
namespace ehdr {
inline constexpr size_t kSize = 64;  // sizeof(Elf64_Ehdr)
inline constexpr size_t kClass = 4;  // e_ident[EI_CLASS]
inline constexpr size_t kData = 5;   // e_ident[EI_DATA]
inline constexpr size_t kType = 16, kMachine = 18, kPhoff = 32, kPhentsize = 54, kPhnum = 56;
}  // namespace ehdr
namespace phdr {
inline constexpr size_t kSize = 56;  // sizeof(Elf64_Phdr)
inline constexpr size_t kType = 0, kOffset = 8, kPaddr = 24, kFilesz = 32, kMemsz = 40, kAlign = 48;
}  // namespace phdr
inline constexpr uint8_t kElfClass64 = 2, kElfData2Lsb = 1;
inline constexpr uint16_t kEtExec = 2, kEtDyn = 3, kEmX86_64 = 62;
inline constexpr uint16_t kPnXnum = 0xFFFF;  // the real count is in section header 0 (gABI)
inline constexpr uint32_t kPtLoad = 1, kPtNote = 4;

// Xen public/elfnote.h: "The notes should live in a PT_NOTE segment and have "Xen" in the name
// field"; type 18 is the 32-bit physical entry used for PVH.
inline constexpr uint32_t kXenElfnotePhys32Entry = 18;
inline constexpr char kXenOwner[] = "Xen";  // namesz 4, with its NUL

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument(what); }

// [offset, offset + size) lies within [0, total), without overflow.
bool within(uint64_t offset, uint64_t size, uint64_t total) { return offset <= total && size <= total - offset; }

uint64_t field(std::span<const uint8_t> bytes, size_t at, size_t n) { return load_le(bytes.subspan(at, n)); }

uint64_t align_up(uint64_t v, uint64_t a) { return v + (a - v % a) % a; }

struct Phdr {
    uint32_t type;
    uint64_t offset, paddr, file_size, mem_size, align;
};

// The file as parse() sees it: its size, and its bytes read a part at a time. A caller checks
// that a part lies in the file before reading it, so what is allocated is bounded by the file.
struct File {
    uint64_t size;
    const ReadAt& read;

    std::vector<uint8_t> bytes(uint64_t offset, uint64_t n, const char* what) const {
        std::vector<uint8_t> out(static_cast<size_t>(n));
        if (!read(offset, out))
            bad(fmt::format("cannot read the kernel file's {} ({} bytes at offset {:#x})", what, n, offset));
        return out;
    }
};

// A file in memory, read by copying. (A span fits std::function's local storage: nothing allocated.)
ReadAt in_memory(std::span<const uint8_t> file) noexcept {
    return [file](uint64_t offset, std::span<uint8_t> out) noexcept {
        if (!within(offset, out.size(), file.size())) return false;
        std::copy_n(file.begin() + static_cast<ptrdiff_t>(offset), out.size(), out.begin());
        return true;
    };
}

Phdr program_header(std::span<const uint8_t> table, uint64_t at) {
    const auto h = table.subspan(static_cast<size_t>(at), phdr::kSize);
    return {static_cast<uint32_t>(field(h, phdr::kType, 4)), field(h, phdr::kOffset, 8), field(h, phdr::kPaddr, 8),
            field(h, phdr::kFilesz, 8), field(h, phdr::kMemsz, 8), field(h, phdr::kAlign, 8)};
}

std::vector<Phdr> program_headers(const File& file) {
    static constexpr char kNotElf[] = "the kernel is not an ELF file (no 7f 'E' 'L' 'F' header)";
    if (file.size < ehdr::kSize) bad(kNotElf);
    const std::vector<uint8_t> header = file.bytes(0, ehdr::kSize, "ELF header");
    if (!is_elf(header)) bad(kNotElf);
    if (header[ehdr::kClass] != kElfClass64)
        bad(fmt::format("the kernel is not a 64-bit ELF file (EI_CLASS {}, ELFCLASS64 is 2)", header[ehdr::kClass]));
    if (header[ehdr::kData] != kElfData2Lsb)
        bad(fmt::format("the kernel ELF is not little-endian (EI_DATA {}, ELFDATA2LSB is 1)", header[ehdr::kData]));
    const auto machine = field(header, ehdr::kMachine, 2);
    if (machine != kEmX86_64) bad(fmt::format("the kernel ELF is not for x86-64 (e_machine {}, EM_X86_64 is 62)", machine));
    const auto type = field(header, ehdr::kType, 2);
    if (type != kEtExec && type != kEtDyn)
        bad(fmt::format("the kernel ELF is not an executable (e_type {}: ET_EXEC 2 or ET_DYN 3 expected)", type));

    const uint64_t phoff = field(header, ehdr::kPhoff, 8), entsize = field(header, ehdr::kPhentsize, 2);
    const uint64_t count = field(header, ehdr::kPhnum, 2);
    if (count == kPnXnum) bad("the kernel ELF has 65535 or more program headers (PN_XNUM)");
    if (count > 0 && entsize != phdr::kSize)
        bad(fmt::format("the kernel ELF's program headers are {} bytes each, not {} (e_phentsize)", entsize, phdr::kSize));
    if (!within(phoff, count * phdr::kSize, file.size))
        bad(fmt::format("the kernel ELF's {} program headers at {:#x} lie outside the {}-byte file", count, phoff,
                        file.size));
    const std::vector<uint8_t> table = file.bytes(phoff, count * phdr::kSize, "program headers");
    std::vector<Phdr> headers;
    for (uint64_t i = 0; i < count; ++i) headers.push_back(program_header(table, i * phdr::kSize));
    return headers;
}

// The PT_LOAD segments, checked against the file, the RAM and each other.
std::vector<Segment> load_segments(uint64_t file_size, const std::vector<Phdr>& headers, uint64_t ram_start,
                                   uint64_t ram_end) {
    std::vector<Segment> segments;
    for (const Phdr& h : headers) {
        if (h.type != kPtLoad || h.mem_size == 0) continue;
        if (!within(h.offset, h.file_size, file_size))
            bad(fmt::format("a PT_LOAD segment's {} file bytes at offset {:#x} lie outside the {}-byte kernel file",
                            h.file_size, h.offset, file_size));
        if (h.file_size > h.mem_size)
            bad(fmt::format("a PT_LOAD segment at {:#x} has more file bytes ({:#x}) than memory ({:#x})", h.paddr,
                            h.file_size, h.mem_size));
        if (h.paddr < ram_start || !within(h.paddr - ram_start, h.mem_size, ram_end - std::min(ram_end, ram_start)))
            bad(fmt::format("a PT_LOAD segment at {:#x} of {:#x} bytes lies outside the guest RAM the kernel may use "
                            "[{:#x}, {:#x})", h.paddr, h.mem_size, ram_start, ram_end));
        segments.push_back({h.paddr, h.offset, h.file_size, h.mem_size});
    }
    std::vector<Segment> sorted = segments;
    std::sort(sorted.begin(), sorted.end(), [](const Segment& a, const Segment& b) { return a.paddr < b.paddr; });
    for (size_t i = 1; i < sorted.size(); ++i) {
        const Segment &a = sorted[i - 1], &b = sorted[i];
        if (b.paddr - a.paddr < a.mem_size)  // sorted, and inside RAM: no overflow
            bad(fmt::format("the kernel's PT_LOAD segments [{:#x}, {:#x}) and [{:#x}, {:#x}) overlap", a.paddr,
                            a.paddr + a.mem_size, b.paddr, b.paddr + b.mem_size));
    }
    return segments;
}

// Walks the Elf64_Nhdr entries of one PT_NOTE segment (gABI "Note Section": namesz, descsz, type,
// then the name and the desc, each padded so that what follows starts 4-aligned; 8-aligned where
// p_align is 8, as binutils' readelf reads .note.gnu.property). Returns the PVH entry when the
// segment holds Xen's note.
std::optional<uint32_t> pvh_entry_in(const File& file, const Phdr& h) {
    if (!within(h.offset, h.file_size, file.size))
        bad(fmt::format("a PT_NOTE segment's {} bytes at offset {:#x} lie outside the {}-byte kernel file", h.file_size,
                        h.offset, file.size));
    const std::vector<uint8_t> bytes = file.bytes(h.offset, h.file_size, "PT_NOTE segment");
    const std::span<const uint8_t> notes = bytes;
    const uint64_t align = h.align == 8 ? 8 : 4;
    uint64_t at = 0;
    while (notes.size() - at >= 12) {
        const uint64_t namesz = field(notes, at, 4), descsz = field(notes, at + 4, 4), type = field(notes, at + 8, 4);
        const uint64_t name_at = at + 12, desc_at = align_up(name_at + namesz, align);
        if (!within(name_at, namesz, notes.size()) || !within(desc_at, descsz, notes.size()))
            bad(fmt::format("a note in the kernel's PT_NOTE segment at offset {:#x} runs past its end", h.offset + at));
        const auto name = notes.subspan(static_cast<size_t>(name_at), static_cast<size_t>(namesz));
        if (type == kXenElfnotePhys32Entry && namesz == sizeof kXenOwner &&
            std::memcmp(name.data(), kXenOwner, sizeof kXenOwner) == 0) {
            // Debian 12's Linux 6.1 emits _ASM_PTR (8 bytes; seen in its vmlinux), other kernels
            // .long; Xen's elfnote.h allows 4 or 8 for numbers, and Xen and QEMU keep the low 32 bits.
            if (descsz != 4 && descsz != 8)
                bad(fmt::format("the kernel's PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY) holds {} bytes, not 4 or 8", descsz));
            return static_cast<uint32_t>(field(notes, static_cast<size_t>(desc_at), 4));
        }
        at = std::min<uint64_t>(align_up(desc_at + descsz, align), notes.size());
    }
    return std::nullopt;
}

}  // namespace

bool is_elf(std::span<const uint8_t> file) noexcept {
    static constexpr uint8_t kMagic[4] = {0x7F, 'E', 'L', 'F'};
    return file.size() >= sizeof kMagic && std::memcmp(file.data(), kMagic, sizeof kMagic) == 0;
}

Image parse(std::span<const uint8_t> file, uint64_t ram_start, uint64_t ram_end) {
    return parse(file.size(), in_memory(file), ram_start, ram_end);
}

Image parse(uint64_t file_size, const ReadAt& read, uint64_t ram_start, uint64_t ram_end) {
    const File file{file_size, read};
    const std::vector<Phdr> headers = program_headers(file);
    Image image;
    image.segments = load_segments(file_size, headers, ram_start, ram_end);

    std::optional<uint32_t> entry;
    for (const Phdr& h : headers)
        if (h.type == kPtNote && !entry) entry = pvh_entry_in(file, h);
    if (!entry) bad("the kernel has no PVH entry (XEN_ELFNOTE_PHYS32_ENTRY): built without CONFIG_PVH?");
    image.pvh_entry = *entry;
    const bool inside = std::any_of(image.segments.begin(), image.segments.end(), [&](const Segment& s) {
        return s.paddr <= *entry && *entry - s.paddr < s.mem_size;
    });
    if (!inside) bad(fmt::format("the kernel's PVH entry {:#x} lies outside every PT_LOAD segment", *entry));

    image.lowest = image.segments.front().paddr;  // a segment holds the entry: there is one
    for (const Segment& s : image.segments) {
        image.lowest = std::min(image.lowest, s.paddr);
        image.highest = std::max(image.highest, s.paddr + s.mem_size);
    }
    return image;
}

bool load_into(const GuestMemory& memory, const Image& image, std::span<const uint8_t> file) noexcept {
    return load_into(memory, image, file.size(), in_memory(file));
}

bool load_into(const GuestMemory& memory, const Image& image, uint64_t file_size, const ReadAt& read) noexcept {
    for (const Segment& s : image.segments)
        if (s.file_size > s.mem_size || !within(s.offset, s.file_size, file_size) || !memory.span(s.paddr, s.mem_size))
            return false;
    for (const Segment& s : image.segments) {
        const std::span<uint8_t> to = *memory.span(s.paddr, s.mem_size);
        if (!read(s.offset, to.first(static_cast<size_t>(s.file_size)))) return false;
        std::fill(to.begin() + static_cast<ptrdiff_t>(s.file_size), to.end(), uint8_t{0});
    }
    return true;
}

}  // namespace minivmm::elf_kernel
