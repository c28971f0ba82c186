// vmm/base/read_file.hpp on real files: what the BIOS image and the -kernel/-initrd files are read with.
#include <doctest/doctest.h>

#include <unistd.h>

#include <fstream>
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
