#include "vmm/base/read_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "vmm/base/unique_fd.hpp"

namespace minivmm {

namespace {

FileStamp stamp_of(const struct stat& st) noexcept {
    return {static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino), static_cast<uint64_t>(st.st_size),
            st.st_mtim.tv_sec * 1'000'000'000ll + st.st_mtim.tv_nsec, st.st_ctim.tv_sec * 1'000'000'000ll + st.st_ctim.tv_nsec};
}

}  // namespace

FileRead read_whole_file(const std::string& path, uint64_t max_size, bool follow_links) {
    FileRead r;
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
    r.bytes.resize(static_cast<size_t>(r.size));
    size_t done = 0;
    while (done < r.bytes.size()) {
        ssize_t n = ::read(fd.get(), r.bytes.data() + done, r.bytes.size() - done);
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
    if (::fstat(fd.get(), &after) == 0 && stamp_of(after) == stamp_of(st)) r.stamp = stamp_of(st);
    return r;
}

}  // namespace minivmm
