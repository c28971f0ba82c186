// The vmlinux reader for PVH boots (firmware/elf_kernel.hpp) through a ReadAt, as a -kernel-cache
// entry is read in place: the same Image and messages as from the span, only the headers and the
// notes read at parse time, each segment read straight into guest RAM, and a read that fails
// (a file that shrank, an I/O error) refused with one line or false. No KVM, no file.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "firmware/elf_kernel.hpp"
#include "tests/unit/elf_test_file.hpp"

using namespace minivmm;
using namespace minivmm::testing;
namespace ek = minivmm::elf_kernel;

namespace {

// A ReadAt over `file` that records every read as (offset, size) and fails the read numbered
// `fail_at` (0 = the first) and every one after it.
struct Reader {
    explicit Reader(std::span<const uint8_t> f, size_t fail = SIZE_MAX) : file(f), fail_at(fail) {}
    std::span<const uint8_t> file;
    size_t fail_at;
    std::vector<std::pair<uint64_t, uint64_t>> reads;

    ek::ReadAt read() {
        return [this](uint64_t offset, std::span<uint8_t> out) {
            reads.emplace_back(offset, out.size());
            if (reads.size() > fail_at || offset > file.size() || out.size() > file.size() - offset) return false;
            std::copy_n(file.begin() + static_cast<ptrdiff_t>(offset), out.size(), out.begin());
            return true;
        };
    }
};

std::string error_of(uint64_t size, const ek::ReadAt& read) {
    try {
        ek::parse(size, read, kRamStart, kRamEnd);
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "";
}

bool same(const ek::Image& a, const ek::Image& b) {
    return a.pvh_entry == b.pvh_entry && a.lowest == b.lowest && a.highest == b.highest &&
           std::equal(a.segments.begin(), a.segments.end(), b.segments.begin(), b.segments.end(),
                      [](const ek::Segment& x, const ek::Segment& y) {
                          return x.paddr == y.paddr && x.offset == y.offset && x.file_size == y.file_size &&
                                 x.mem_size == y.mem_size;
                      });
}

}  // namespace

TEST_CASE("through a reader, parse gives the span's Image and reads only the headers and the notes") {
    const auto file = good_kernel().bytes();
    Reader reader(file);
    const ek::Image image = ek::parse(file.size(), reader.read(), kRamStart, kRamEnd);
    CHECK(same(image, ek::parse(file, kRamStart, kRamEnd)));
    const uint64_t notes = good_kernel().phs[0].file_size;
    using Read = std::pair<uint64_t, uint64_t>;
    CHECK(reader.reads == std::vector<Read>{{0, 64}, {64, 4 * 56}, {kBody, notes}});
}

TEST_CASE("through a reader, a malformed file gets the span's message") {
    // A few of test_elf_kernel.cpp's cases: the checks are the same code, fed by the reader.
    std::vector<std::vector<uint8_t>> files = {{}, {0x7F, 'E', 'L', 'F', 2, 1}};
    for (auto change : {+[](Elf& e) { e.machine = 3; }, +[](Elf& e) { e.phoff = 0x600; },
                        +[](Elf& e) { e.phs[2].file_size = 0x100; }, +[](Elf& e) { e.phs[0].offset = ~0ull - 4; },
                        +[](Elf& e) { e.phs[0].file_size -= 4; }, +[](Elf& e) { e.phs.erase(e.phs.begin()); }}) {
        Elf e = good_kernel();
        change(e);
        files.push_back(e.bytes());
    }
    for (const auto& file : files) {
        std::string span_error;
        try {
            ek::parse(file, kRamStart, kRamEnd);
        } catch (const std::invalid_argument& e) {
            span_error = e.what();
        }
        REQUIRE(!span_error.empty());
        Reader reader(file);
        CHECK(error_of(file.size(), reader.read()) == span_error);
    }
}

TEST_CASE("through a reader, a read that fails is refused with one line") {
    const auto file = good_kernel().bytes();
    const std::string failures[] = {"cannot read the kernel file's ELF header (64 bytes at offset 0x0)",
                                    "cannot read the kernel file's program headers (224 bytes at offset 0x40)",
                                    "cannot read the kernel file's PT_NOTE segment (84 bytes at offset 0x400)"};
    for (size_t i = 0; i < std::size(failures); ++i) {
        Reader reader(file, i);
        CHECK(error_of(file.size(), reader.read()) == failures[i]);
    }
    // A file shorter than its size says (it shrank after its fstat): the notes are past its end.
    Reader cut{std::span(file).first(kBody + 0x20)};
    CHECK(error_of(file.size(), cut.read()) == failures[2]);
    // Cut short and saying so: the span's message.
    const auto shorter = std::span(file).first(kBody + 0x220);
    Reader honest(shorter);
    CHECK(error_of(shorter.size(), honest.read()) == "a PT_LOAD segment's 64 file bytes at offset 0x600 lie outside the " +
                                                         std::to_string(shorter.size()) + "-byte kernel file");
}

TEST_CASE("through a reader, load_into reads each segment straight into guest RAM, as the span version copies it") {
    const auto file = good_kernel().bytes();
    const ek::Image image = ek::parse(file, kRamStart, kRamEnd);
    Ram by_span(kText, 0x2000), by_reader(kText, 0x2000);
    REQUIRE(ek::load_into(by_span.memory, image, file));
    Reader reader(file);
    REQUIRE(ek::load_into(by_reader.memory, image, file.size(), reader.read()));
    CHECK(by_reader.bytes == by_span.bytes);
    using Read = std::pair<uint64_t, uint64_t>;
    CHECK(reader.reads == std::vector<Read>{{kBody + 0x100, 0x100}, {kBody + 0x200, 0x40}});  // file bytes only, once
}

TEST_CASE("through a reader, load_into checks every range before it reads, and fails on a failed read") {
    const auto file = good_kernel().bytes();
    const ek::Image image = ek::parse(file, kRamStart, kRamEnd);
    auto untouched = [](const Ram& ram) { return std::all_of(ram.bytes.begin(), ram.bytes.end(), [](uint8_t b) { return b == 0xAA; }); };

    Ram short_ram(kText, 0x1100);  // ends inside the data segment's .bss
    Reader reader(file);
    CHECK_FALSE(ek::load_into(short_ram.memory, image, file.size(), reader.read()));
    CHECK(untouched(short_ram));
    CHECK(reader.reads.empty());
    Ram ram(kText, 0x2000);
    CHECK_FALSE(ek::load_into(ram.memory, image, kBody + 0x220, reader.read()));  // a segment past the file's end
    CHECK(untouched(ram));
    CHECK(reader.reads.empty());

    Reader failing(file, 1);  // the text segment is read, the data segment's read fails
    CHECK_FALSE(ek::load_into(ram.memory, image, file.size(), failing.read()));
    CHECK(std::equal(ram.bytes.begin(), ram.bytes.begin() + 0x100, file.begin() + kBody + 0x100));
    CHECK(failing.reads.size() == 2);
    Reader shrunk{std::span(file).first(kBody + 0x220)};  // the file is shorter than at start-up
    CHECK_FALSE(ek::load_into(ram.memory, image, file.size(), shrunk.read()));
    CHECK(ek::load_into(ram.memory, ek::Image{}, 0, Reader(file, 0).read()));  // nothing to read
}
