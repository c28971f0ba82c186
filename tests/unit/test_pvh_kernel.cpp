// PvhKernel (vmm/pvh_kernel.hpp) with a -kernel-cache entry, without KVM and without a bzImage:
// a cache hit reads nothing of the bzImage, so a synthetic ELF (tests/unit/elf_test_file.hpp)
// stored under the bzImage's digest is the kernel. The entry is read in place: loaded as the same
// ELF in memory would be, at every power-on, and not at all once it changed on disk.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "firmware/elf_kernel.hpp"
#include "firmware/linux_boot.hpp"
#include "tests/unit/elf_test_file.hpp"
#include "tests/unit/temp_dir.hpp"
#include "vmm/pvh_kernel.hpp"

using namespace minivmm;
using namespace minivmm::testing;

static_assert(std::is_nothrow_move_constructible_v<PvhKernel> && !std::is_copy_constructible_v<PvhKernel>);

namespace {

// A -kernel-cache directory whose entry for the digest ab cd is `elf`.
struct Cache {
    explicit Cache(const std::vector<uint8_t>& elf) { spit(entry(), elf); }
    TempDir dir;
    linux_boot::Plan plan;  // no initrd
    std::string entry() const { return dir.sub("abcd.vmlinux"); }
    // PvhKernel::from_bzimage for a "bzImage" of no bytes: only a cache hit gives a kernel.
    std::optional<PvhKernel> kernel() const {
        std::string why;
        return PvhKernel::from_bzimage({{}, "bzImage", {0xAB, 0xCD}, plan, 512ull << 20, dir.path.string()}, why);
    }
};

// The guest RAM the good kernel's segments go to, as the ELF in memory loads it.
std::vector<uint8_t> loaded_from_memory(const std::vector<uint8_t>& elf) {
    Ram ram(kText, 0x2000);
    REQUIRE(elf_kernel::load_into(ram.memory, elf_kernel::parse(elf, kRamStart, kRamEnd), elf));
    return ram.bytes;
}

}  // namespace

TEST_CASE("a -kernel-cache entry is kept open and loaded at every power-on as the ELF in memory is") {
    const std::vector<uint8_t> elf = good_kernel().bytes();
    Cache cache(elf);
    std::optional<PvhKernel> k = cache.kernel();
    REQUIRE(k);
    CHECK(k->from_cache());
    CHECK(k->elf_size() == elf.size());
    CHECK(k->cache_fd() >= 0);
    CHECK(k->image().pvh_entry == kText + 0x10);
    for (int power_on = 0; power_on < 2; ++power_on) {
        Ram ram(kText, 0x2000);
        REQUIRE(k->load_into(ram.memory));
        CHECK(ram.bytes == loaded_from_memory(elf));
    }
    // Moved (main keeps it in a std::optional): the fd goes with it.
    const int fd = k->cache_fd();
    PvhKernel moved = std::move(*k);
    CHECK(moved.cache_fd() == fd);
    Ram ram(kText, 0x2000);
    CHECK(moved.load_into(ram.memory));
}

TEST_CASE("a -kernel-cache entry changed on disk after start-up is not loaded") {
    const std::vector<uint8_t> elf = good_kernel().bytes();
    auto changed = [&](auto change) {
        Cache cache(elf);
        const std::optional<PvhKernel> k = cache.kernel();
        REQUIRE(k);
        std::this_thread::sleep_for(std::chrono::milliseconds(25));  // past a coarse timestamp tick (a jiffy)
        change(cache.entry());
        Ram ram(kText, 0x2000);
        const bool loaded = k->load_into(ram.memory);
        CHECK(std::all_of(ram.bytes.begin(), ram.bytes.end(), [](uint8_t b) { return b == 0xAA; }));
        return !loaded;
    };
    CHECK(changed([](const std::string& path) { std::ofstream(path, std::ios::binary | std::ios::app).put('x'); }));
    CHECK(changed([](const std::string& path) { REQUIRE(::truncate(path.c_str(), kBody + 0x220) == 0); }));
    CHECK(changed([](const std::string& path) {  // the same bytes and size, another modification time
        const timespec times[2] = {{0, UTIME_OMIT}, {1234567890, 0}};
        REQUIRE(::utimensat(AT_FDCWD, path.c_str(), times, 0) == 0);
    }));
    CHECK(changed([](const std::string& path) {  // written in place, the modification time then put back
        struct stat before {};
        REQUIRE(::stat(path.c_str(), &before) == 0);
        std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
        f.seekp(static_cast<std::streamoff>(kBody + 0x100));
        f.put('\x5A');
        f.close();
        const timespec times[2] = {{0, UTIME_OMIT}, before.st_mtim};
        REQUIRE(::utimensat(AT_FDCWD, path.c_str(), times, 0) == 0);  // only the change time tells
    }));
    // Replaced by a rename, as a second minivmm storing the entry does: the fd still reads the file it
    // opened, but that file's change time moved when it lost its name; refused too (the safe side).
    CHECK(changed([&elf](const std::string& path) {
        spit(path + ".new", elf);
        REQUIRE(::rename((path + ".new").c_str(), path.c_str()) == 0);
    }));
}

TEST_CASE("a -kernel-cache entry that is not a usable kernel is not taken (and decompressed again)") {
    const std::vector<uint8_t> good = good_kernel().bytes();
    std::vector<uint8_t> elf = good;
    elf[18] = 3;  // e_machine EM_386
    Cache bad(elf);
    CHECK_FALSE(bad.kernel());  // the warning, then the empty "bzImage" has no payload: nullopt
    Cache cut(std::vector<uint8_t>(good.begin(), good.begin() + 40));
    CHECK_FALSE(cut.kernel());
    Cache link(good);
    REQUIRE(::rename(link.entry().c_str(), link.dir.sub("target").c_str()) == 0);
    REQUIRE(::symlink(link.dir.sub("target").c_str(), link.entry().c_str()) == 0);
    CHECK_FALSE(link.kernel());  // never through a symbolic link
}
