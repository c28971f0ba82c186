// libFuzzer target for the vmlinux reader of PVH boots (firmware/elf_kernel.hpp): the -kernel file
// is the user's, so every byte of it may be wrong. The input is the file itself, read for a guest
// whose kernel RAM is [kRamStart, kRamEnd).
// Checks: parse() never reads outside the file (ASan: the input is an exactly-sized heap block);
// an Image it accepts has non-empty, non-overlapping segments inside the RAM and the file, the
// PVH entry inside one of them and [lowest, highest) spanning them; load_into() a GuestMemory of
// exactly that RAM then succeeds and leaves each segment holding its file bytes, then zeros.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "firmware/elf_kernel.hpp"
#include "tests/fuzz/fuzz_support.hpp"

using namespace minivmm;
using namespace minivmm::fuzz;

namespace {

constexpr uint64_t kRamStart = 0x100000, kRamEnd = 0x110000;  // 64 KiB at 1 MiB

MINIVMM_FUZZ_HARNESS bool holds(const GuestRam& ram, const elf_kernel::Segment& s, std::span<const uint8_t> file) {
    for (uint64_t i = 0; i < s.mem_size; ++i) {
        const uint8_t want = i < s.file_size ? file[s.offset + i] : 0;
        if (*ram.byte(s.paddr + i) != want) return false;
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::vector<uint8_t> file(data, data + size);  // exactly sized: ASan sees any overread
    check(elf_kernel::is_elf(file) == (size >= 4 && data[0] == 0x7F && data[1] == 'E' && data[2] == 'L' && data[3] == 'F'));
    elf_kernel::Image image;
    try {
        image = elf_kernel::parse(file, kRamStart, kRamEnd);
    } catch (const std::invalid_argument&) {
        return 0;
    }
    check(!image.segments.empty());
    check(kRamStart <= image.lowest && image.lowest < image.highest && image.highest <= kRamEnd);
    bool entry_inside = false;
    for (const elf_kernel::Segment& s : image.segments) {
        check(s.mem_size > 0 && s.file_size <= s.mem_size);
        check(s.offset <= file.size() && s.file_size <= file.size() - s.offset);
        check(image.lowest <= s.paddr && s.mem_size <= image.highest - s.paddr);
        entry_inside |= s.paddr <= image.pvh_entry && image.pvh_entry - s.paddr < s.mem_size;
        for (const elf_kernel::Segment& t : image.segments)
            check(&s == &t || s.paddr + s.mem_size <= t.paddr || t.paddr + t.mem_size <= s.paddr);
    }
    check(entry_inside);

    static const GuestRam::Layout kLayout[] = {{kRamStart, kRamEnd - kRamStart}};
    GuestRam ram(kLayout);
    ram.fill_pattern(0xAA);
    check(elf_kernel::load_into(ram.memory, image, file));
    for (const elf_kernel::Segment& s : image.segments) check(holds(ram, s, file));
    return 0;
}
