#include "vmm/tpm/swtpm_state_dir.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fmt/core.h>

#include "vmm/tpm/swtpm_process.hpp"

namespace minivmm {

namespace {

constexpr std::string_view kPrefix20 = "tpm2-00.";
constexpr std::string_view kPrefix12 = "tpm-00.";
constexpr std::string_view kKinds[] = {"permall", "volatilestate", "savestate"};
constexpr std::string_view kLibtpmsMarker = ".minivmm-tpm-state";  // TpmStateDir::kMarkerName

std::string_view prefix_of(TpmVersion v) { return v == TpmVersion::v2_0 ? kPrefix20 : kPrefix12; }
std::string_view text_of(TpmVersion v) { return v == TpmVersion::v2_0 ? "2.0" : "1.2"; }
std::string permall(TpmVersion v) { return std::string(prefix_of(v)) + "permall"; }

std::string without_trailing_slashes(std::string path) {
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    return path;
}

UniqueFd open_directory(int at, const std::string& path, const std::string& shown) {
    UniqueFd fd(::openat(at, path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (fd.valid()) return fd;
    const int err = errno;
    struct stat st {};
    if ((err == ELOOP || err == ENOTDIR) && ::fstatat(at, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISLNK(st.st_mode))
        throw SwtpmStateError(fmt::format("swtpm state directory {} is a symbolic link; give the directory itself", shown));
    throw SwtpmStateError(err == ENOTDIR ? fmt::format("swtpm state directory {} is not a directory", shown)
                                         : fmt::format("cannot open swtpm state directory {}: {}", shown, std::strerror(err)));
}

// Calls `f(name, d_type)` for every entry but . and ..; throws on a read error.
template <typename F>
void for_each_entry(int dir_fd, const std::string& shown, F&& f) {
    int fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR* dir = fd >= 0 ? ::fdopendir(fd) : nullptr;
    if (!dir) {
        const int err = errno;
        if (fd >= 0) ::close(fd);
        throw SwtpmStateError(fmt::format("cannot read swtpm state directory {}: {}", shown, std::strerror(err)));
    }
    while (dirent* e = ::readdir(dir)) {
        std::string_view name = e->d_name;
        if (name != "." && name != "..") f(std::string(name));
    }
    ::closedir(dir);
}

}  // namespace

SwtpmTools SwtpmTools::find() {
    SwtpmTools tools{find_in_path("swtpm"), find_in_path("swtpm_setup")};
    for (auto [path, name] : {std::pair{&tools.swtpm, "swtpm"}, std::pair{&tools.swtpm_setup, "swtpm_setup"}}) {
        if (path->empty())
            throw SwtpmStateError(fmt::format("-tpm-swtpm: {} is not in PATH (install swtpm and swtpm-tools; Debian: "
                                              "apt install swtpm swtpm-tools)", name));
        if (path->find(' ') != std::string::npos)  // swtpm_setup --tpm splits at spaces
            throw SwtpmStateError(fmt::format("-tpm-swtpm: {} is found at {}, a path with a space, which swtpm_setup "
                                              "cannot be given", name, *path));
    }
    return tools;
}

bool SwtpmStateDir::is_swtpm_name(std::string_view name) noexcept {
    if (name == ".lock") return true;
    for (std::string_view prefix : {kPrefix20, kPrefix12}) {
        if (!name.starts_with(prefix)) continue;
        for (std::string_view kind : kKinds)
            if (name.substr(prefix.size()) == kind) return true;
    }
    return false;
}

void SwtpmStateDir::inspect(const std::string& path, TpmVersion version) {
    if (path.empty()) throw SwtpmStateError("-tpm-swtpm: empty directory name");
    const std::string real = without_trailing_slashes(path);
    struct stat st {};
    if (::lstat(real.c_str(), &st) != 0) {
        int err = errno;
        if (err == ENOENT) {  // to be created: its parent must be an existing, writable directory
            const size_t slash = real.rfind('/');
            const std::string parent = slash == std::string::npos ? "." : slash == 0 ? "/" : real.substr(0, slash);
            struct stat pst {};
            if (::stat(parent.c_str(), &pst) != 0) err = errno;
            else if (!S_ISDIR(pst.st_mode)) err = ENOTDIR;
            else if (::faccessat(AT_FDCWD, parent.c_str(), W_OK | X_OK, AT_EACCESS) != 0) err = errno;
            else return;
        }
        throw SwtpmStateError(fmt::format("cannot create swtpm state directory {}: {}", path, std::strerror(err)));
    }
    SwtpmStateDir dir;
    dir.path_ = path;
    dir.version_ = version;
    dir.dir_fd_ = open_directory(AT_FDCWD, real, path);
    dir.check_contents();
}

SwtpmStateDir::SwtpmStateDir(std::string path, TpmVersion version) : path_(std::move(path)), version_(version) {
    if (path_.empty()) throw SwtpmStateError("-tpm-swtpm: empty directory name");
    const std::string real = without_trailing_slashes(path_);
    if (::mkdir(real.c_str(), 0700) != 0 && errno != EEXIST)
        throw SwtpmStateError(fmt::format("cannot create swtpm state directory {}: {}", path_, std::strerror(errno)));
    dir_fd_ = open_directory(AT_FDCWD, real, path_);
    check_contents();  // whose directory it is, before anything is created in it
    lock();
    remove_work_dir();
}

// DIR may hold swtpm's files of our version, our lock and work directory, nothing else: anything
// else may be somebody's files (or -tpm-state's libtpms state, which swtpm cannot read).
void SwtpmStateDir::check_contents() const {
    std::string foreign;
    bool libtpms = false, other_version = false;
    const std::string_view other = prefix_of(version_ == TpmVersion::v2_0 ? TpmVersion::v1_2 : TpmVersion::v2_0);
    for_each_entry(dir_fd_.get(), path_, [&](const std::string& name) {
        if (name == kLibtpmsMarker) libtpms = true;
        else if (name.starts_with(other) && is_swtpm_name(name)) other_version = true;
        else if (!is_swtpm_name(name) && name != kLockName && name != kWorkName && foreign.empty()) foreign = name;
    });
    if (libtpms)
        throw SwtpmStateError(fmt::format("swtpm state directory {} holds the state of minivmm's in-process TPM "
                                          "(-tpm-state), which swtpm cannot use; give it with -tpm-state, or give "
                                          "-tpm-swtpm another directory", path_));
    if (other_version) {
        const TpmVersion theirs = version_ == TpmVersion::v2_0 ? TpmVersion::v1_2 : TpmVersion::v2_0;
        throw SwtpmStateError(fmt::format("swtpm state directory {} holds a TPM {} ({}), not the TPM {} asked for; "
                                          "use -tpm-version {}, or give another directory", path_, text_of(theirs),
                                          permall(theirs), text_of(version_), text_of(theirs)));
    }
    if (!foreign.empty())
        throw SwtpmStateError(fmt::format("swtpm state directory {} holds '{}', which is not swtpm's; give a new or "
                                          "empty directory, or one swtpm made", path_, foreign));
}

void SwtpmStateDir::lock() {
    lock_fd_ = UniqueFd(::openat(dir_fd_.get(), std::string(kLockName).c_str(),
                                 O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600));
    struct stat st {};
    if (!lock_fd_.valid() || ::fstat(lock_fd_.get(), &st) != 0 || !S_ISREG(st.st_mode))
        throw SwtpmStateError(fmt::format("cannot use the lock file {}/{}: {}", path_, kLockName,
                                          lock_fd_.valid() ? "not a regular file"
                                          : errno == ELOOP ? "it is a symbolic link"
                                                           : std::strerror(errno)));
    if (::flock(lock_fd_.get(), LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK)
            throw SwtpmStateError(fmt::format("cannot lock swtpm state directory {}: {}", path_, std::strerror(errno)));
        char buf[32] = {};
        const ssize_t n = ::pread(lock_fd_.get(), buf, sizeof(buf) - 1, 0);
        const long pid = n > 0 ? std::strtol(buf, nullptr, 10) : 0;
        throw SwtpmStateError(pid > 0 ? fmt::format("swtpm state directory {} is in use by another minivmm (pid {})",
                                                    path_, pid)
                                      : fmt::format("swtpm state directory {} is in use by another minivmm", path_));
    }
    const std::string pid = fmt::format("{}\n", ::getpid());
    if (::ftruncate(lock_fd_.get(), 0) != 0 || ::pwrite(lock_fd_.get(), pid.data(), pid.size(), 0) < 0) {
        // the pid only makes the "in use" message better: not worth refusing the run
    }
}

bool SwtpmStateDir::manufactured() const noexcept {
    struct stat st {};
    return ::fstatat(dir_fd_.get(), permall(version_).c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

// What a run killed while manufacturing left: swtpm's files in our work directory, then the directory.
void SwtpmStateDir::remove_work_dir() const {
    const std::string work(kWorkName);
    struct stat st {};
    if (::fstatat(dir_fd_.get(), work.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return;
    const std::string shown = fmt::format("{}/{}", path_, work);
    UniqueFd fd = open_directory(dir_fd_.get(), work, shown);
    for_each_entry(fd.get(), shown, [&](const std::string& name) {
        if (is_swtpm_name(name)) ::unlinkat(fd.get(), name.c_str(), 0);
    });
    if (::unlinkat(dir_fd_.get(), work.c_str(), AT_REMOVEDIR) != 0)
        throw SwtpmStateError(fmt::format("cannot remove {} (left by an interrupted manufacturing): {}", shown,
                                          std::strerror(errno)));
}

std::string SwtpmStateDir::begin_manufacturing() {
    const std::string work(kWorkName);
    if (::mkdirat(dir_fd_.get(), work.c_str(), 0700) != 0)
        throw SwtpmStateError(fmt::format("cannot create {}/{}: {}", path_, work, std::strerror(errno)));
    return fmt::format("{}/{}", without_trailing_slashes(path_), work);
}

void SwtpmStateDir::finish_manufacturing() {
    const std::string name = permall(version_);
    const std::string from = fmt::format("{}/{}", kWorkName, name);
    if (::renameat(dir_fd_.get(), from.c_str(), dir_fd_.get(), name.c_str()) != 0 || ::fsync(dir_fd_.get()) != 0)
        throw SwtpmStateError(fmt::format("cannot move the manufactured TPM state {}/{} into {}: {}", path_, from,
                                          path_, std::strerror(errno)));
    remove_work_dir();
}

void SwtpmStateDir::check_reachable(uid_t uid, gid_t gid) const {
    char* resolved = ::realpath(path_.c_str(), nullptr);
    if (!resolved) return;  // opened above, so it exists; swtpm will say what is wrong
    std::string dir = resolved;
    std::free(resolved);
    for (;;) {
        const size_t slash = dir.rfind('/');
        dir = slash == 0 ? "/" : dir.substr(0, slash);  // DIR itself becomes the user's (give_to)
        struct stat st {};
        if (::stat(dir.c_str(), &st) != 0) return;
        const mode_t bit = st.st_uid == uid ? S_IXUSR : st.st_gid == gid ? S_IXGRP : S_IXOTH;
        if ((st.st_mode & bit) == 0)
            throw SwtpmStateError(fmt::format("-runas: swtpm runs as uid {} and cannot reach swtpm state directory {}: "
                                              "{} (mode {:04o}) does not let that user through; give a directory it "
                                              "can reach", uid, path_, dir, st.st_mode & 07777));
        if (dir == "/") return;
    }
}

void SwtpmStateDir::give_to(uid_t uid, gid_t gid) const {
    auto chown_at = [&](int at, const std::string& name, const std::string& shown) {
        if (::fchownat(at, name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW | (name.empty() ? AT_EMPTY_PATH : 0)) != 0)
            throw SwtpmStateError(fmt::format("-runas: cannot give {} to uid {}: {}", shown, uid, std::strerror(errno)));
    };
    chown_at(dir_fd_.get(), "", path_);
    for_each_entry(dir_fd_.get(), path_, [&](const std::string& name) {
        if (is_swtpm_name(name) || name == kLockName) chown_at(dir_fd_.get(), name, fmt::format("{}/{}", path_, name));
    });
    struct stat st {};
    const std::string work(kWorkName);
    if (::fstatat(dir_fd_.get(), work.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
        chown_at(dir_fd_.get(), work, fmt::format("{}/{}", path_, work));
}

}  // namespace minivmm
