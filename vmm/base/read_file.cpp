#include "vmm/base/read_file.hpp"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace minivmm {

FileOpen open_input_file(const std::string& path, uint64_t max_size, bool follow_links) {
    FileOpen r;
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | (follow_links ? 0 : O_NOFOLLOW)));
    if (!fd.valid()) {
        r.err = errno;
        r.status = !follow_links && r.err == ELOOP ? FileRead::Status::symbolic_link : FileRead::Status::cannot_open;
        return r;
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
        r.status = FileRead::Status::not_regular;
        return r;
    }
    r.size = static_cast<uint64_t>(st.st_size);
    if (r.size > max_size) {
        r.status = FileRead::Status::too_large;
        return r;
    }
    r.file = OpenFile(std::move(fd), stamp_of(st));
    return r;
}

FileRead read_whole_file(const std::string& path, uint64_t max_size, bool follow_links) {
    FileRead r;
    FileOpen open = open_input_file(path, max_size, follow_links);
    r.status = open.status;
    r.err = open.err;
    r.size = open.size;
    if (!open.ok()) return r;
    r.bytes.resize(static_cast<size_t>(r.size));
    size_t done = 0;
    while (done < r.bytes.size()) {
        ssize_t n = ::read(open.file.fd(), r.bytes.data() + done, r.bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            r.err = n < 0 ? errno : 0;
            r.status = n < 0 ? FileRead::Status::cannot_read : FileRead::Status::shrank;
            r.bytes.clear();
            return r;
        }
        done += static_cast<size_t>(n);
    }
    struct stat after {};
    if (::fstat(open.file.fd(), &after) == 0 && stamp_of(after) == open.file.stamp()) r.stamp = open.file.stamp();
    return r;
}

FileStamp stamp_of(const struct stat& st) noexcept {
    return {static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino), static_cast<uint64_t>(st.st_size),
            st.st_mtim.tv_sec * 1'000'000'000ll + st.st_mtim.tv_nsec, st.st_ctim.tv_sec * 1'000'000'000ll + st.st_ctim.tv_nsec};
}

bool OpenFile::read_at(uint64_t offset, std::span<uint8_t> out) const noexcept {
    constexpr uint64_t kMaxOffset = INT64_MAX;  // off_t's
    if (offset > kMaxOffset || out.size() > kMaxOffset - offset) return false;
    size_t done = 0;
    while (done < out.size()) {
        const ssize_t n = ::pread(fd_.get(), out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;  // an error, or the end of the file
        done += static_cast<size_t>(n);
    }
    return true;
}

std::optional<FileStamp> OpenFile::stamp_now() const noexcept {
    // glibc 2.33 and later make fstat() a newfstatat(fd, "", AT_EMPTY_PATH), which a seccomp filter
    // cannot tell from a stat of any path (it does not see the path); the fstat system call takes
    // the fd alone, and the sandbox allows it on this fd only (vmm/host/README.md "Sandbox").
    // On x86-64 the kernel's struct stat is glibc's.
    struct stat st {};
    if (::syscall(SYS_fstat, static_cast<long>(fd_.get()), &st) != 0) return std::nullopt;
    return stamp_of(st);
}

}  // namespace minivmm
