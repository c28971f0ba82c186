#include "vmm/tpm/tpm_state_dir.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fmt/core.h>

#include "vmm/base/log.hpp"

namespace minivmm {

namespace {

std::string errno_text(int err) { return std::strerror(err); }

// The only names minivmm ever creates, reads or removes in a state directory (libtpms's
// TPM_PERMANENT_ALL_NAME, TPM_SAVESTATE_NAME, TPM_VOLATILESTATE_NAME, prefixed as swtpm does).
constexpr std::string_view kStatePrefixes[] = {"tpm-00.", "tpm2-00."};
constexpr std::string_view kStateKinds[] = {"permall", "savestate", "volatilestate"};

// "dir/" -> "dir", so that opening it with O_NOFOLLOW does not follow a symbolic link "dir"
// (a trailing slash makes the kernel resolve the link).
std::string without_trailing_slashes(std::string path) {
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    return path;
}

// Where mkdir would create `path`: its parent directory.
std::string parent_of(const std::string& path) {
    size_t slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

constexpr std::string_view kMarkerText =
    "This directory holds the state of minivmm's in-process TPM (-tpm-state). minivmm touches only\n"
    "its own files here: .lock, tpm-00.* and tpm2-00.* state files, the EK certificates' CA\n"
    "(ek-ca.key, ek-ca.pem) and their .tmp replacements.\n";



}  // namespace

bool TpmStateDir::is_state_name(std::string_view name) noexcept {
    for (std::string_view prefix : kStatePrefixes) {
        if (!name.starts_with(prefix)) continue;
        for (std::string_view kind : kStateKinds)
            if (name.substr(prefix.size()) == kind) return true;
    }
    return false;
}

bool TpmStateDir::is_ca_name(std::string_view name) noexcept { return name == kCaKeyName || name == kCaCertName; }

bool TpmStateDir::is_own_name(std::string_view name) noexcept {
    if (name == kLockName || name == kMarkerName || is_state_name(name) || is_ca_name(name)) return true;
    if (!name.ends_with(kTempSuffix)) return false;
    const std::string_view base = name.substr(0, name.size() - kTempSuffix.size());
    return is_state_name(base) || is_ca_name(base);
}

std::vector<std::string> TpmStateDir::own_file_names() {
    std::vector<std::string> names{std::string(kLockName), std::string(kMarkerName)};
    for (std::string_view prefix : kStatePrefixes)
        for (std::string_view kind : kStateKinds) {
            std::string name = fmt::format("{}{}", prefix, kind);
            names.push_back(name + std::string(kTempSuffix));
            names.push_back(std::move(name));
        }
    for (std::string_view name : {kCaKeyName, kCaCertName}) {
        names.emplace_back(name);
        names.push_back(std::string(name) + std::string(kTempSuffix));
    }
    return names;
}

UniqueFd TpmStateDir::open_directory(const std::string& path) {
    const std::string real = without_trailing_slashes(path);
    UniqueFd fd(::open(real.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (fd.valid()) return fd;
    int err = errno;
    struct stat st {};
    if ((err == ELOOP || err == ENOTDIR) && ::lstat(real.c_str(), &st) == 0 && S_ISLNK(st.st_mode))
        throw TpmStateError(fmt::format("TPM state directory {} is a symbolic link; give the directory itself", path));
    throw TpmStateError(err == ENOTDIR ? fmt::format("TPM state directory {} is not a directory", path)
                                       : fmt::format("cannot open TPM state directory {}: {}", path, errno_text(err)));
}

TpmStateDir::TpmStateDir(std::string path, UniqueFd dir_fd) : path_(std::move(path)), dir_fd_(std::move(dir_fd)) {}

std::optional<TpmStateDir> TpmStateDir::inspect(const std::string& path) {
    if (path.empty()) throw TpmStateError("-tpm-state: empty directory name");
    const std::string real = without_trailing_slashes(path);
    struct stat st {};
    if (::lstat(real.c_str(), &st) != 0) {
        int err = errno;
        if (err == ENOENT) {
            // It will be created: mkdir needs an existing, writable parent directory.
            const std::string parent = parent_of(real);
            struct stat pst {};
            if (::stat(parent.c_str(), &pst) != 0) err = errno;
            else if (!S_ISDIR(pst.st_mode)) err = ENOTDIR;
            else if (::faccessat(AT_FDCWD, parent.c_str(), W_OK | X_OK, AT_EACCESS) != 0) err = errno;
            else return std::nullopt;
        }
        throw TpmStateError(fmt::format("cannot create TPM state directory {}: {}", path, errno_text(err)));
    }
    TpmStateDir dir(path, open_directory(path));
    dir.check_ownership();
    return dir;
}

TpmStateDir::TpmStateDir(std::string path) : path_(std::move(path)) {
    if (path_.empty()) throw TpmStateError("-tpm-state: empty directory name");
    if (::mkdir(without_trailing_slashes(path_).c_str(), 0700) != 0 && errno != EEXIST)
        throw TpmStateError(fmt::format("cannot create TPM state directory {}: {}", path_, errno_text(errno)));
    dir_fd_ = open_directory(path_);
    // Whose directory it is is decided before anything is created in it.
    const bool marked = check_ownership();
    lock();
    if (!marked) write_marker();
    remove_stale_temporaries();
}

// A directory is minivmm's when it holds our marker, or (new and empty, or made by a minivmm
// from before the marker) when every name in it is one minivmm uses. Anything else may be
// somebody's files, which we must not delete or give away (-runas).
bool TpmStateDir::check_ownership() const {
    int fd = ::openat(dir_fd_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) throw TpmStateError(fmt::format("cannot read TPM state directory {}: {}", path_, errno_text(errno)));
    DIR* dir = ::fdopendir(fd);
    if (!dir) {
        int err = errno;
        ::close(fd);
        throw TpmStateError(fmt::format("cannot read TPM state directory {}: {}", path_, errno_text(err)));
    }
    bool marked = false;
    std::string foreign;
    while (dirent* e = ::readdir(dir)) {
        std::string_view name = e->d_name;
        if (name == "." || name == "..") continue;
        struct stat st {};
        if (name == kMarkerName && ::fstatat(dir_fd_.get(), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISREG(st.st_mode))
            marked = true;
        else if (!is_own_name(name) && foreign.empty())
            foreign = name;
    }
    ::closedir(dir);
    if (!marked && !foreign.empty())
        throw TpmStateError(fmt::format("TPM state directory {} is not empty and was not made by minivmm (it holds "
                                        "'{}' and no {}); give a new or empty directory",
                                        path_, foreign, kMarkerName));
    return marked;
}

void TpmStateDir::write_marker() {
    UniqueFd fd(::openat(dir_fd_.get(), std::string(kMarkerName).c_str(),
                         O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    const ssize_t n = fd.valid() ? ::write(fd.get(), kMarkerText.data(), kMarkerText.size()) : -1;
    const int err = n < 0 ? errno : EIO;  // a short write of a few hundred bytes to a new file: EIO
    if (n != static_cast<ssize_t>(kMarkerText.size()))
        throw TpmStateError(fmt::format("cannot write {} in TPM state directory {}: {}", kMarkerName, path_,
                                        errno_text(err)));
}

void TpmStateDir::lock() {
    std::string lock_path = file_path(kLockName);
    // O_NOFOLLOW: a planted ".lock -> victim" must not make us truncate the victim; O_NONBLOCK
    // so that a FIFO planted there cannot hang the open (refused just below).
    lock_fd_ = UniqueFd(::openat(dir_fd_.get(), std::string(kLockName).c_str(),
                                 O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600));
    if (!lock_fd_.valid())
        throw TpmStateError(fmt::format("cannot create the lock file {} of TPM state directory {}: {}", lock_path,
                                        path_, errno == ELOOP ? "it is a symbolic link" : errno_text(errno)));
    struct stat st {};
    if (::fstat(lock_fd_.get(), &st) != 0 || !S_ISREG(st.st_mode))
        throw TpmStateError(fmt::format("cannot use the lock file {} of TPM state directory {}: not a regular file",
                                        lock_path, path_));
    if (::flock(lock_fd_.get(), LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        if (err != EWOULDBLOCK)
            throw TpmStateError(fmt::format("cannot lock TPM state directory {}: {}", path_, errno_text(err)));
        char buf[32] = {};
        ssize_t n = ::pread(lock_fd_.get(), buf, sizeof(buf) - 1, 0);
        long pid = n > 0 ? std::strtol(buf, nullptr, 10) : 0;
        throw TpmStateError(pid > 0 ? fmt::format("TPM state directory {} is in use by another minivmm (pid {})", path_, pid)
                                    : fmt::format("TPM state directory {} is in use by another minivmm", path_));
    }
    // The pid is only informative (for the message above); the flock is what excludes.
    std::string pid = fmt::format("{}\n", ::getpid());
    if (::ftruncate(lock_fd_.get(), 0) != 0 ||
        ::pwrite(lock_fd_.get(), pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
        log::warn("cannot write our pid into {}: {}", lock_path, errno_text(errno));
}

// A SIGKILL between creating a temporary file and renaming it leaves "NAME.tmp": the real file is
// intact, the temporary is garbage. We hold the lock, so no other writer exists.
void TpmStateDir::remove_stale_temporaries() noexcept {
    int fd = ::openat(dir_fd_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    DIR* dir = ::fdopendir(fd);
    if (!dir) {
        ::close(fd);
        return;
    }
    while (dirent* e = ::readdir(dir)) {
        std::string_view name = e->d_name;
        // Only our own temporaries: anything else in the directory is not ours to delete.
        if (name.ends_with(kTempSuffix) && name != kLockName && name != kMarkerName && is_own_name(name)) {
            if (::unlinkat(dir_fd_.get(), e->d_name, 0) == 0)
                log::info("removed {} left behind by an interrupted write", file_path(name));
        }
    }
    ::closedir(dir);
}

std::string TpmStateDir::file_path(std::string_view name) const {
    return path_.ends_with('/') ? fmt::format("{}{}", path_, name) : fmt::format("{}/{}", path_, name);
}

bool TpmStateDir::exists(std::string_view name) const noexcept {
    if (!is_state_name(name)) return false;
    struct stat st {};
    return ::fstatat(dir_fd_.get(), std::string(name).c_str(), &st, 0) == 0;
}

TpmStateDir::ReadResult TpmStateDir::read(std::string_view name, TpmVersion version) const noexcept {
    ReadResult r;
    try {
        if (!is_state_name(name)) {
            r.status = ReadResult::Status::error;
            r.error = fmt::format("invalid TPM state file name '{}'", name);
            return r;
        }
        std::vector<uint8_t>& file = r.payload;
        read_file(name, tpmstate::kHeaderSize + tpmstate::kMaxPayload, "TPM state file", r);
        if (r.status != ReadResult::Status::ok) {
            if (r.status == ReadResult::Status::error && r.error.empty())
                r.error = fmt::format("TPM state file {} is corrupt (too large: more than {} bytes); move it away to "
                                      "start a fresh TPM", file_path(name), tpmstate::kHeaderSize + tpmstate::kMaxPayload);
            return r;
        }
        r.status = ReadResult::Status::missing;
        auto d = tpmstate::decode_file(file, version);
        std::string what;
        switch (d.status) {
        case tpmstate::DecodeStatus::ok: {
            std::vector<uint8_t> payload(d.payload.begin(), d.payload.end());
            r.status = ReadResult::Status::ok;
            r.payload = std::move(payload);
            return r;
        }
        case tpmstate::DecodeStatus::wrong_version:
            r.status = ReadResult::Status::error;
            r.error = fmt::format("TPM state file {} holds TPM {} state, not TPM {}; use -tpm-version {} or another "
                                  "-tpm-state directory",
                                  file_path(name), tpmstate::version_text(d.version), tpmstate::version_text(version),
                                  tpmstate::version_text(d.version));
            return r;
        case tpmstate::DecodeStatus::bad_magic: what = "not a minivmm TPM state file"; break;
        case tpmstate::DecodeStatus::unsupported_format: what = "unknown format version"; break;
        case tpmstate::DecodeStatus::truncated: what = fmt::format("truncated: {} bytes", file.size()); break;
        case tpmstate::DecodeStatus::too_long: what = "trailing bytes after the state"; break;
        case tpmstate::DecodeStatus::checksum_mismatch: what = "checksum mismatch"; break;
        }
        r.status = ReadResult::Status::error;
        r.error = fmt::format("TPM state file {} is corrupt ({}); move it away to start a fresh TPM", file_path(name), what);
    } catch (...) {
        r.status = ReadResult::Status::error;
        r.payload.clear();
        r.error = "out of memory reading a TPM state file";
    }
    return r;
}

}  // namespace minivmm
