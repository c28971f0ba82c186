#include "vmm/kernel_cache.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/core.h>

#include "vmm/base/error.hpp"
#include "vmm/base/log.hpp"
#include "vmm/base/read_file.hpp"
#include "vmm/base/unique_fd.hpp"

namespace minivmm::kernel_cache {

std::string directory(const std::string& dir) {
    std::string path = dir;
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno != ENOENT)
            throw SetupError(kExitFile, fmt::format("-kernel-cache {}: {}", dir, std::strerror(errno)));
    } else if (S_ISLNK(st.st_mode)) {
        throw SetupError(kExitFile, fmt::format("-kernel-cache {}: is a symbolic link; give the directory itself", dir));
    } else if (!S_ISDIR(st.st_mode)) {
        throw SetupError(kExitFile, fmt::format("-kernel-cache {}: not a directory", dir));
    }
    return path;
}

bool store(const std::string& dir, const std::string& name, std::span<const uint8_t> bytes, const char* what) {
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        log::warn("-kernel-cache {}: cannot create: {}", dir, std::strerror(errno));
        return false;
    }
    const std::string temp = fmt::format("{}/.{}.{}", dir, name, ::getpid());
    UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    bool ok = fd.get() >= 0;
    for (size_t done = 0; ok && done < bytes.size();) {
        const ssize_t n = ::write(fd.get(), bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        ok = n > 0;
        if (ok) done += static_cast<size_t>(n);
    }
    ok = ok && ::fsync(fd.get()) == 0 && ::rename(temp.c_str(), (dir + "/" + name).c_str()) == 0;
    if (!ok) {
        log::warn("-kernel-cache {}: cannot store {}: {}", dir, what, std::strerror(errno));
        ::unlink(temp.c_str());
    }
    return ok;
}

std::optional<std::string> read_small(const std::string& dir, const std::string& name, size_t limit) {
    FileRead f = read_whole_file(dir + "/" + name, limit, /*follow_links=*/false);
    if (!f.ok()) return std::nullopt;
    return std::string(f.bytes.begin(), f.bytes.end());
}

}  // namespace minivmm::kernel_cache
