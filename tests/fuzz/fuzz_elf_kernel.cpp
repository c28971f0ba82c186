// libFuzzer target for the vmlinux reader of PVH boots (firmware/elf_kernel.hpp): the -kernel file
// is the user's, so every byte of it may be wrong. The input is the file itself, read for a guest
// whose kernel RAM is [kRamStart, kRamEnd).
// Checks: parse() never reads outside the file (ASan: the input is an exactly-sized heap block);
// an Image it accepts has non-empty, non-overlapping segments inside the RAM and the file, the
// PVH entry inside one of them and [lowest, highest) spanning them; load_into() a GuestMemory of
// exactly that RAM then succeeds and leaves each segment holding its file bytes, then zeros.
// The reader-based API (a -kernel-cache entry read in place) on the same file: parse() asks only
// for parts inside the file and gives the same Image or the same message; a read failing at any
// step is refused with its own line; load_into() through the reader fills RAM as the span version
// does, and returns false when a read fails.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "firmware/elf_kernel.hpp"
#include "tests/fuzz/fuzz_support.hpp"

using namespace minivmm;
using namespace minivmm::fuzz;

namespace {

constexpr uint64_t kRamStart = 0x100000, kRamEnd = 0x110000;  // 64 KiB at 1 MiB

// A ReadAt over the file that checks it is asked only for bytes inside it, counts its reads and
// fails the one numbered `fail_at` (0 = the first) and those after it.
struct Reader {
    std::span<const uint8_t> file;
    size_t fail_at = SIZE_MAX;
    size_t reads = 0;
    elf_kernel::ReadAt read() {
        return [this](uint64_t offset, std::span<uint8_t> out) MINIVMM_FUZZ_HARNESS {
            check(offset <= file.size() && out.size() <= file.size() - offset);
            if (reads++ >= fail_at) return false;
            std::copy_n(file.begin() + static_cast<ptrdiff_t>(offset), out.size(), out.begin());
            return true;
        };
    }
};

// The Image, or the message parse() threw.
struct Parsed {
    std::optional<elf_kernel::Image> image;
    std::string error;
};
Parsed parse_with(uint64_t size, const elf_kernel::ReadAt& read) {
    try {
        return {elf_kernel::parse(size, read, kRamStart, kRamEnd), {}};
    } catch (const std::invalid_argument& e) {
        return {std::nullopt, e.what()};
    }
}

MINIVMM_FUZZ_HARNESS bool same(const elf_kernel::Image& a, const elf_kernel::Image& b) {
    if (a.pvh_entry != b.pvh_entry || a.lowest != b.lowest || a.highest != b.highest || a.segments.size() != b.segments.size())
        return false;
    for (size_t i = 0; i < a.segments.size(); ++i) {
        const elf_kernel::Segment &x = a.segments[i], &y = b.segments[i];
        if (x.paddr != y.paddr || x.offset != y.offset || x.file_size != y.file_size || x.mem_size != y.mem_size) return false;
    }
    return true;
}

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
    std::optional<elf_kernel::Image> by_span;
    std::string span_error;
    try {
        by_span = elf_kernel::parse(file, kRamStart, kRamEnd);
    } catch (const std::invalid_argument& e) {
        span_error = e.what();
    }
    Reader reader{file};
    const Parsed by_reader = parse_with(file.size(), reader.read());
    check(by_reader.image.has_value() == by_span.has_value());
    check(by_span ? same(*by_reader.image, *by_span) : by_reader.error == span_error);
    // A read that fails at any step is refused, with its own line.
    for (size_t k = 0; k < reader.reads; ++k) {
        Reader failing{file, k};
        const Parsed refused = parse_with(file.size(), failing.read());
        check(!refused.image && refused.error.starts_with("cannot read the kernel file's ") && failing.reads == k + 1);
    }
    if (!by_span) return 0;
    const elf_kernel::Image& image = *by_span;
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

    GuestRam read_ram(kLayout);
    read_ram.fill_pattern(0x55);
    Reader loader{file};
    check(elf_kernel::load_into(read_ram.memory, image, file.size(), loader.read()));
    check(loader.reads == image.segments.size());
    std::vector<uint8_t> copied, read;
    ram.snapshot(copied);
    read_ram.snapshot(read);
    for (const elf_kernel::Segment& s : image.segments) {
        const uint64_t at = s.paddr - kRamStart;
        check(std::equal(copied.begin() + at, copied.begin() + at + s.mem_size, read.begin() + at));
    }
    Reader failing{file, image.segments.size() - 1};
    check(!elf_kernel::load_into(read_ram.memory, image, file.size(), failing.read()));
    return 0;
}
