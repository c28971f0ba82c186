// The vmlinux reader for PVH boots (firmware/elf_kernel.hpp) on synthetic ELF files
// (tests/unit/elf_test_file.hpp), the file given as a span. No KVM. The same reader through a
// ReadAt: test_elf_kernel_reader.cpp.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "firmware/elf_kernel.hpp"
#include "tests/unit/elf_test_file.hpp"
#include "vmm/base/bytes.hpp"
#include "vmm/base/guest_memory.hpp"

using namespace minivmm;
using namespace minivmm::testing;
namespace ek = minivmm::elf_kernel;

namespace {

std::string error_of(const std::vector<uint8_t>& file, uint64_t ram_start = kRamStart, uint64_t ram_end = kRamEnd) {
    try {
        ek::parse(file, ram_start, ram_end);
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("a vmlinux's PT_LOAD segments, PVH entry and span") {
    const auto file = good_kernel().bytes();
    CHECK(ek::is_elf(file));
    const ek::Image image = ek::parse(file, kRamStart, kRamEnd);
    REQUIRE(image.segments.size() == 2);  // the PT_LOAD without memory is left out
    CHECK(image.segments[0].paddr == kText);
    CHECK(image.segments[0].offset == kBody + 0x100);
    CHECK(image.segments[0].file_size == 0x100);
    CHECK(image.segments[0].mem_size == 0x100);
    CHECK(image.segments[1].paddr == kData);
    CHECK(image.segments[1].offset == kBody + 0x200);
    CHECK(image.segments[1].file_size == 0x40);
    CHECK(image.segments[1].mem_size == 0x200);
    CHECK(image.pvh_entry == kText + 0x10);
    CHECK(image.lowest == kText);
    CHECK(image.highest == kData + 0x200);

    Ram ram(kText, 0x2000);
    REQUIRE(ek::load_into(ram.memory, image, file));
    CHECK(std::equal(ram.bytes.begin(), ram.bytes.begin() + 0x100, file.begin() + kBody + 0x100));
    CHECK(std::all_of(ram.bytes.begin() + 0x100, ram.bytes.begin() + 0x1000, [](uint8_t b) { return b == 0xAA; }));
    CHECK(std::equal(ram.bytes.begin() + 0x1000, ram.bytes.begin() + 0x1040, file.begin() + kBody + 0x200));
    CHECK(std::all_of(ram.bytes.begin() + 0x1040, ram.bytes.begin() + 0x1200, [](uint8_t b) { return b == 0; }));  // .bss
    CHECK(std::all_of(ram.bytes.begin() + 0x1200, ram.bytes.end(), [](uint8_t b) { return b == 0xAA; }));
}

TEST_CASE("the PVH entry note's desc is 4 bytes (.long) or 8 (_ASM_PTR), of which the low 32 bits count") {
    CHECK(ek::parse(good_kernel(4).bytes(), kRamStart, kRamEnd).pvh_entry == kText + 0x10);
    CHECK(ek::parse(good_kernel(8).bytes(), kRamStart, kRamEnd).pvh_entry == kText + 0x10);
    CHECK(ek::parse(good_kernel(8, 0xABCD'0000'0000ull + kData + 4).bytes(), kRamStart, kRamEnd).pvh_entry == kData + 4);
    CHECK(error_of(good_kernel(2).bytes()) == "the kernel's PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY) holds 2 bytes, not 4 or 8");
}

TEST_CASE("an 8-aligned PT_NOTE (as .note.gnu.property) is walked with 8-byte padding") {
    Elf e = good_kernel();
    auto notes = note(std::string("GNU\0", 4), 5, std::vector<uint8_t>(12, 0xC3), 8);  // desc ends at 28: 4 bytes of padding
    const auto pvh = note(kXen, 18, le(kData + 8, 4), 8);
    notes.insert(notes.end(), pvh.begin(), pvh.end());
    CHECK(notes.size() == 32 + 24);
    std::copy(notes.begin(), notes.end(), e.body.begin());
    e.phs[0] = {kPtNote, kBody, 0, notes.size(), notes.size(), 8};
    CHECK(ek::parse(e.bytes(), kRamStart, kRamEnd).pvh_entry == kData + 8);
    e.phs[0].align = 4;  // read with 4-byte padding, a note starts in the padding and then goes astray
    CHECK(error_of(e.bytes()) == "a note in the kernel's PT_NOTE segment at offset 0x42c runs past its end");
}

TEST_CASE("an ET_DYN vmlinux (a relocatable build) is read the same way") {
    Elf e = good_kernel();
    e.type = 3;
    CHECK(ek::parse(e.bytes(), kRamStart, kRamEnd).segments.size() == 2);
}

TEST_CASE("files that are not a 64-bit little-endian x86-64 executable are refused") {
    auto with = [](auto change) {
        Elf e = good_kernel();
        change(e);
        return error_of(e.bytes());
    };
    std::vector<uint8_t> bz = good_kernel().bytes();
    bz[0] = 'M', bz[1] = 'Z';
    CHECK_FALSE(ek::is_elf(bz));
    CHECK(error_of(bz) == "the kernel is not an ELF file (no 7f 'E' 'L' 'F' header)");
    CHECK(error_of(std::vector<uint8_t>{0x7F, 'E', 'L', 'F', 2, 1}) == "the kernel is not an ELF file (no 7f 'E' 'L' 'F' header)");
    CHECK(error_of({}) == "the kernel is not an ELF file (no 7f 'E' 'L' 'F' header)");
    CHECK(with([](Elf& e) { e.elf_class = 1; }) == "the kernel is not a 64-bit ELF file (EI_CLASS 1, ELFCLASS64 is 2)");
    CHECK(with([](Elf& e) { e.data = 2; }) == "the kernel ELF is not little-endian (EI_DATA 2, ELFDATA2LSB is 1)");
    CHECK(with([](Elf& e) { e.machine = 3; }) == "the kernel ELF is not for x86-64 (e_machine 3, EM_X86_64 is 62)");
    CHECK(with([](Elf& e) { e.type = 1; }) == "the kernel ELF is not an executable (e_type 1: ET_EXEC 2 or ET_DYN 3 expected)");
    CHECK(with([](Elf& e) { e.type = 4; }) == "the kernel ELF is not an executable (e_type 4: ET_EXEC 2 or ET_DYN 3 expected)");
}

TEST_CASE("program headers must lie in the file and be Elf64_Phdr-sized") {
    auto with = [](auto change) {
        Elf e = good_kernel();
        change(e);
        return error_of(e.bytes());
    };
    const size_t size = good_kernel().bytes().size();
    CHECK(with([](Elf& e) { e.phentsize = 32; }) == "the kernel ELF's program headers are 32 bytes each, not 56 (e_phentsize)");
    CHECK(with([](Elf& e) { e.phoff = 0x600; }) ==
          "the kernel ELF's 4 program headers at 0x600 lie outside the " + std::to_string(size) + "-byte file");
    CHECK(with([](Elf& e) { e.phoff = ~0ull - 16; }) ==
          "the kernel ELF's 4 program headers at 0xffffffffffffffef lie outside the " + std::to_string(size) + "-byte file");
    auto many = good_kernel().bytes();
    store_le(std::span(many).subspan(56, 2), 0xFFFF);
    CHECK(error_of(many) == "the kernel ELF has 65535 or more program headers (PN_XNUM)");
}

TEST_CASE("PT_LOAD segments must lie in the file, fit their memory and the guest's RAM") {
    auto with = [](auto change) {
        Elf e = good_kernel();
        change(e);
        return error_of(e.bytes());
    };
    const std::string size = std::to_string(good_kernel().bytes().size());
    CHECK(with([](Elf& e) { e.phs[2].file_size = 0x100; }) ==
          "a PT_LOAD segment's 256 file bytes at offset 0x600 lie outside the " + size + "-byte kernel file");
    // offset + file_size wraps around to a small number: still outside.
    CHECK(with([](Elf& e) { e.phs[1].offset = 0xFFFFFFFFFFFFFF00; }) ==
          "a PT_LOAD segment's 256 file bytes at offset 0xffffffffffffff00 lie outside the " + size + "-byte kernel file");
    CHECK(with([](Elf& e) { e.phs[1].offset = 0x10, e.phs[1].file_size = ~0ull - 8, e.phs[1].mem_size = ~0ull; }) ==
          "a PT_LOAD segment's 18446744073709551607 file bytes at offset 0x10 lie outside the " + size + "-byte kernel file");
    CHECK(with([](Elf& e) { e.phs[2].mem_size = 0x20; }) ==
          "a PT_LOAD segment at 0x1001000 has more file bytes (0x40) than memory (0x20)");

    CHECK(with([](Elf& e) { e.phs[1].paddr = 0xF0000; }) ==
          "a PT_LOAD segment at 0xf0000 of 0x100 bytes lies outside the guest RAM the kernel may use [0x100000, 0x1ff00000)");
    CHECK(with([](Elf& e) { e.phs[2].paddr = kRamEnd - 0x100; }) ==
          "a PT_LOAD segment at 0x1fefff00 of 0x200 bytes lies outside the guest RAM the kernel may use [0x100000, 0x1ff00000)");
    CHECK(with([](Elf& e) { e.phs[2].paddr = 0xFFFFFFFFFFFFF000; e.phs[2].mem_size = 0x2000; }) ==
          "a PT_LOAD segment at 0xfffffffffffff000 of 0x2000 bytes lies outside the guest RAM the kernel may use "
          "[0x100000, 0x1ff00000)");
    // Up to the end of RAM exactly is fine; an empty or inverted RAM range holds nothing.
    Elf edge = good_kernel(8, kRamEnd - 0x200);
    edge.phs[2].paddr = kRamEnd - 0x200;
    CHECK(ek::parse(edge.bytes(), kRamStart, kRamEnd).highest == kRamEnd);
    CHECK(error_of(good_kernel().bytes(), kRamEnd, kRamStart) ==
          "a PT_LOAD segment at 0x1000000 of 0x100 bytes lies outside the guest RAM the kernel may use [0x1ff00000, 0x100000)");
}

TEST_CASE("two PT_LOAD segments may touch but not overlap in physical memory") {
    Elf touching = good_kernel();
    touching.phs[2].paddr = kText + 0x100;
    CHECK(ek::parse(touching.bytes(), kRamStart, kRamEnd).highest == kText + 0x300);
    Elf e = good_kernel();
    e.phs[2].paddr = kText + 0xFF;
    CHECK(error_of(e.bytes()) == "the kernel's PT_LOAD segments [0x1000000, 0x1000100) and [0x10000ff, 0x10002ff) overlap");
    e.phs[2].paddr = kText - 0x100;  // in file order after the one it overlaps
    CHECK(error_of(e.bytes()) == "the kernel's PT_LOAD segments [0xffff00, 0x1000100) and [0x1000000, 0x1000100) overlap");
}

TEST_CASE("the PVH entry must be there, well-formed and inside a segment") {
    const std::string no_pvh = "the kernel has no PVH entry (XEN_ELFNOTE_PHYS32_ENTRY): built without CONFIG_PVH?";
    Elf e = good_kernel();
    e.phs.erase(e.phs.begin());  // no PT_NOTE
    CHECK(error_of(e.bytes()) == no_pvh);
    e = good_kernel();
    e.body[0x48] = 'Y';  // the third note's owner "Xen" becomes "Yen"
    CHECK(error_of(e.bytes()) == no_pvh);
    e = good_kernel();
    e.phs[0].file_size -= 20;  // the segment ends before the PVH note
    CHECK(error_of(e.bytes()) == no_pvh);
    e = good_kernel();
    e.phs[0].file_size -= 4;  // the PVH note's desc runs past the segment
    CHECK(error_of(e.bytes()) == "a note in the kernel's PT_NOTE segment at offset 0x43c runs past its end");
    e = good_kernel();
    store_le(std::span(e.body).subspan(0, 4), 0xFFFFFFF0);  // the first note's namesz
    CHECK(error_of(e.bytes()) == "a note in the kernel's PT_NOTE segment at offset 0x400 runs past its end");
    e = good_kernel();
    e.phs[0].offset = ~0ull - 4;
    CHECK(error_of(e.bytes()).starts_with("a PT_NOTE segment's 84 bytes at offset 0xfffffffffffffffb lie outside the "));

    CHECK(error_of(good_kernel(4, kData + 0x200).bytes()) == "the kernel's PVH entry 0x1001200 lies outside every PT_LOAD segment");
    CHECK(error_of(good_kernel(8, kText - 1).bytes()) == "the kernel's PVH entry 0xffffff lies outside every PT_LOAD segment");
    CHECK(ek::parse(good_kernel(4, kData + 0x1FF).bytes(), kRamStart, kRamEnd).pvh_entry == kData + 0x1FF);
}

TEST_CASE("load_into writes nothing unless every segment fits guest memory and the file") {
    const auto file = good_kernel().bytes();
    const ek::Image image = ek::parse(file, kRamStart, kRamEnd);
    Ram short_ram(kText, 0x1100);  // ends inside the data segment's .bss
    CHECK_FALSE(ek::load_into(short_ram.memory, image, file));
    CHECK(std::all_of(short_ram.bytes.begin(), short_ram.bytes.end(), [](uint8_t b) { return b == 0xAA; }));

    Ram ram(kText, 0x2000);
    CHECK_FALSE(ek::load_into(ram.memory, image, std::span(file).first(kBody + 0x220)));  // a shorter file
    ek::Image wrong = image;
    wrong.segments[1].file_size = 0x300;  // more file bytes than memory
    CHECK_FALSE(ek::load_into(ram.memory, wrong, file));
    CHECK(std::all_of(ram.bytes.begin(), ram.bytes.end(), [](uint8_t b) { return b == 0xAA; }));
    CHECK(ek::load_into(ram.memory, ek::Image{}, file));
}
