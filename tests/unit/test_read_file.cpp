// vmm/base/read_file.hpp on real files: what the BIOS image and the -kernel/-initrd files are read with.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>
#include <vector>

#include "tests/unit/temp_dir.hpp"
#include "vmm/base/read_file.hpp"

using namespace minivmm;
using minivmm::testing::TempDir;
using Status = FileRead::Status;

namespace {
void write(const std::string& path, size_t size) {
    std::ofstream out(path, std::ios::binary);
    for (size_t i = 0; i < size; ++i) out.put(static_cast<char>(i * 7));
}
}  // namespace

TEST_CASE("a regular file is read whole, up to and including the limit") {
    TempDir dir;
    write(dir.sub("f"), 70000);  // more than one read() on some file systems
    FileRead r = read_whole_file(dir.sub("f"), 70000, false);
    REQUIRE(r.ok());
    REQUIRE(r.bytes.size() == 70000);
    CHECK(r.size == 70000);
    CHECK(r.bytes[69999] == static_cast<uint8_t>(69999 * 7));
    write(dir.sub("empty"), 0);
    FileRead e = read_whole_file(dir.sub("empty"), 10, false);
    CHECK(e.ok());
    CHECK(e.bytes.empty());
}

TEST_CASE("over the limit, missing, a directory, a device: refused before reading") {
    TempDir dir;
    write(dir.sub("f"), 100);
    FileRead big = read_whole_file(dir.sub("f"), 99, true);
    CHECK(big.status == Status::too_large);
    CHECK(big.size == 100);
    CHECK(big.bytes.empty());
    FileRead missing = read_whole_file(dir.sub("none"), 99, true);
    CHECK(missing.status == Status::cannot_open);
    CHECK(missing.err == ENOENT);
    CHECK(read_whole_file(dir.path.string(), 99, true).status == Status::not_regular);
    CHECK(read_whole_file("/dev/null", 99, true).status == Status::not_regular);
}

TEST_CASE("a symbolic link is refused without follow_links and followed with it") {
    TempDir dir;
    write(dir.sub("target"), 10);
    REQUIRE(::symlink(dir.sub("target").c_str(), dir.sub("link").c_str()) == 0);
    CHECK(read_whole_file(dir.sub("link"), 99, false).status == Status::symbolic_link);
    FileRead followed = read_whole_file(dir.sub("link"), 99, true);
    REQUIRE(followed.ok());
    CHECK(followed.bytes.size() == 10);
}

TEST_CASE("an input file kept open: refused as read_whole_file refuses, else read in place at any offset") {
    TempDir dir;
    write(dir.sub("f"), 70000);
    CHECK(open_input_file(dir.sub("f"), 69999, false).status == Status::too_large);
    CHECK(open_input_file(dir.sub("none"), 99, false).err == ENOENT);
    CHECK(open_input_file(dir.path.string(), 99, false).status == Status::not_regular);
    REQUIRE(::symlink(dir.sub("f").c_str(), dir.sub("link").c_str()) == 0);
    CHECK(open_input_file(dir.sub("link"), 70000, false).status == Status::symbolic_link);

    FileOpen open = open_input_file(dir.sub("f"), 70000, false);
    REQUIRE(open.ok());
    CHECK(open.file.size() == 70000);
    CHECK((::fcntl(open.file.fd(), F_GETFD) & FD_CLOEXEC) != 0);
    std::vector<uint8_t> part(70000 - 3);
    REQUIRE(open.file.read_at(3, part));
    const std::vector<uint8_t> whole = read_whole_file(dir.sub("f"), 70000, false).bytes;
    CHECK(std::equal(part.begin(), part.end(), whole.begin() + 3, whole.end()));
    CHECK(open.file.read_at(70000, std::span<uint8_t>()));
    uint8_t byte = 0;
    CHECK_FALSE(open.file.read_at(70000, std::span(&byte, 1)));  // past the end
    CHECK_FALSE(open.file.read_at(69999, part));
    CHECK_FALSE(open.file.read_at(~0ull - 1, std::span(&byte, 1)));  // beyond any off_t
}

TEST_CASE("an open file's stamp: the same until the file is written, touched or loses its name") {
    TempDir dir;
    auto opened = [&](const std::string& name) {
        FileOpen o = open_input_file(dir.sub(name), 1 << 20, false);
        REQUIRE(o.ok());
        REQUIRE(o.file.stamp_now() == o.file.stamp());
        return std::move(o.file);
    };
    write(dir.sub("appended"), 100);
    const OpenFile appended = opened("appended");
    std::ofstream(dir.sub("appended"), std::ios::binary | std::ios::app).put('x');
    CHECK(appended.stamp_now()->size == 101);
    CHECK(appended.stamp_now() != appended.stamp());

    write(dir.sub("touched"), 100);
    const OpenFile touched = opened("touched");
    const timespec times[2] = {{0, UTIME_OMIT}, {1234567890, 0}};  // mtime only: same size and bytes
    REQUIRE(::utimensat(AT_FDCWD, dir.sub("touched").c_str(), times, 0) == 0);
    CHECK(touched.stamp_now() != touched.stamp());

    write(dir.sub("replaced"), 100);
    const OpenFile replaced = opened("replaced");
    write(dir.sub("new"), 200);
    std::this_thread::sleep_for(std::chrono::milliseconds(25));  // past a coarse timestamp tick (a jiffy)
    REQUIRE(::rename(dir.sub("new").c_str(), dir.sub("replaced").c_str()) == 0);
    std::vector<uint8_t> bytes(101);
    CHECK_FALSE(replaced.read_at(0, bytes));  // the fd still reads the 100-byte file it opened...
    CHECK(replaced.stamp_now() != replaced.stamp());  // ...whose change time moved as it lost its name
}
