// DiskImage (vmm/host/disk_image): raw image files, read-only fallback, snapshot overlay, errors.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "vmm/host/disk_image.hpp"

using namespace minivmm;

namespace {

struct TempFile {
    std::string path;
    explicit TempFile(size_t size, const char* dir = "/tmp") {
        path = std::string(dir) + "/minivmm-test-XXXXXX";
        const int fd = ::mkstemp(path.data());
        REQUIRE(fd >= 0);
        std::vector<uint8_t> data(size);
        for (size_t i = 0; i < size; ++i) data[i] = static_cast<uint8_t>(i * 13 + 5);
        REQUIRE(::write(fd, data.data(), size) == static_cast<ssize_t>(size));
        ::close(fd);
    }
    ~TempFile() { ::unlink(path.c_str()); }
    std::vector<uint8_t> contents() const {
        std::ifstream in(path, std::ios::binary);
        return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
    }
};

std::string open_error(const std::string& path, bool snapshot = false) {
    try {
        DiskImage::open(path, snapshot);
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return "";
}

// Runs fn in a child process without root privileges (permission checks do not apply to root).
template <typename Fn>
int as_unprivileged(Fn fn) {
    const pid_t pid = ::fork();
    if (pid == 0) {
        if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(99);
        ::_exit(fn());
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 98;
}

}  // namespace

TEST_CASE("disk image read, write and flush") {
    TempFile f(8192);
    auto img = DiskImage::open(f.path, false);
    CHECK(img->size() == 8192);
    CHECK_FALSE(img->read_only());
    std::array<uint8_t, 512> buf{};
    CHECK(img->read(512, buf));
    CHECK(buf[0] == static_cast<uint8_t>(512 * 13 + 5));
    buf.fill(0x5A);
    CHECK(img->write(1024, buf));
    CHECK(img->flush());
    CHECK(f.contents()[1024] == 0x5A);
    CHECK(f.contents()[1535] == 0x5A);
    CHECK_FALSE(img->read(8192 - 256, buf));  // past the end
    CHECK_FALSE(img->write(~uint64_t{0} - 10, buf));
}

TEST_CASE("disk image snapshot leaves the file unchanged") {
    TempFile f(3 * 512);  // not a multiple of the 4 KiB overlay block
    const auto original = f.contents();
    auto img = DiskImage::open(f.path, true);
    CHECK_FALSE(img->read_only());
    CHECK(img->snapshot());
    std::vector<uint8_t> w(536, 0x77);
    CHECK(img->write(1000, w));  // spans sectors, ends in the partial last block
    std::vector<uint8_t> r(1536);
    CHECK(img->read(0, r));
    CHECK(std::equal(r.begin(), r.begin() + 1000, original.begin()));
    CHECK(std::all_of(r.begin() + 1000, r.begin() + 1536, [](uint8_t b) { return b == 0x77; }));
    CHECK_FALSE(img->write(1400, w));  // past the end
    CHECK(img->flush());
    img.reset();
    CHECK(f.contents() == original);
}

TEST_CASE("disk image open errors") {
    CHECK(open_error("/nonexistent/minivmm.img").find("disk image /nonexistent/minivmm.img does not exist") == 0);
    CHECK(open_error("/tmp") == "disk image /tmp is a directory");
    TempFile empty(0);
    CHECK(open_error(empty.path) == "disk image " + empty.path + " is 0 bytes (empty)");
    TempFile odd(1000);
    CHECK(open_error(odd.path) == "disk image " + odd.path + " is 1000 bytes, not a multiple of 512");
    CHECK(open_error("/dev/null").find("is not a regular file or block device") != std::string::npos);
}

TEST_CASE("disk image permissions") {
    TempFile f(1024);
    const auto original = f.contents();
    REQUIRE(::chmod(f.path.c_str(), 0444) == 0);
    const int ro = as_unprivileged([&] {
        try {
            auto img = DiskImage::open(f.path, false);
            std::array<uint8_t, 512> buf{};
            if (!img->read_only() || !img->read(0, buf) || img->write(0, buf)) return 1;
            return 0;
        } catch (...) {
            return 2;
        }
    });
    CHECK(ro == 0);
    CHECK(f.contents() == original);
    REQUIRE(::chmod(f.path.c_str(), 0000) == 0);
    const int unreadable = as_unprivileged([&] {
        const std::string msg = open_error(f.path);
        return msg.find("disk image " + f.path + " is not readable") == 0 ? 0 : 1;
    });
    CHECK(unreadable == 0);
}
