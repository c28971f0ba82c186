#include "vmm/tpm_state_dir.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fmt/core.h>

#include "vmm/log.hpp"

namespace minivmm {

namespace tpmstate {

namespace {

constexpr std::array<uint8_t, 8> kMagic = {'M', 'V', 'M', 'T', 'P', 'M', 'S', 'T'};

constexpr std::array<uint32_t, 256> make_crc_table() {
    std::array<uint32_t, 256> table{};
    for (uint32_t i = 0; i < 256; ++i) {
        uint32_t c = i;
        for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    return table;
}
constexpr auto kCrcTable = make_crc_table();

uint32_t version_code(TpmVersion v) noexcept { return v == TpmVersion::v2_0 ? 20 : 12; }

uint32_t get_le32(const uint8_t* p) noexcept {
    return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
void put_le32(uint8_t* p, uint32_t v) noexcept {
    for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

}  // namespace

// CRC-32 as in IEEE 802.3 / zlib (reflected polynomial 0xEDB88320, pre- and post-inverted).
uint32_t crc32(std::span<const uint8_t> bytes, uint32_t crc) noexcept {
    crc = ~crc;
    for (uint8_t b : bytes) crc = kCrcTable[(crc ^ b) & 0xff] ^ (crc >> 8);
    return ~crc;
}

std::vector<uint8_t> encode_file(TpmVersion version, std::span<const uint8_t> payload) {
    std::vector<uint8_t> file(kHeaderSize + payload.size());
    std::copy(kMagic.begin(), kMagic.end(), file.begin());
    put_le32(&file[8], kFormatVersion);
    put_le32(&file[12], version_code(version));
    put_le32(&file[16], static_cast<uint32_t>(payload.size()));
    std::copy(payload.begin(), payload.end(), file.begin() + kHeaderSize);
    uint32_t crc = crc32(std::span<const uint8_t>(file.data(), 20));
    put_le32(&file[20], crc32(payload, crc));
    return file;
}

Decoded decode_file(std::span<const uint8_t> file, TpmVersion expected) noexcept {
    Decoded d;
    if (file.size() < kHeaderSize) {
        d.status = file.size() >= kMagic.size() && std::equal(kMagic.begin(), kMagic.end(), file.begin())
                       ? DecodeStatus::truncated
                       : DecodeStatus::bad_magic;
        return d;
    }
    if (!std::equal(kMagic.begin(), kMagic.end(), file.begin())) return d;
    if (get_le32(&file[8]) != kFormatVersion) {
        d.status = DecodeStatus::unsupported_format;
        return d;
    }
    uint32_t length = get_le32(&file[16]);
    if (file.size() - kHeaderSize < length) {
        d.status = DecodeStatus::truncated;
        return d;
    }
    if (file.size() - kHeaderSize > length) {
        d.status = DecodeStatus::too_long;
        return d;
    }
    auto payload = file.subspan(kHeaderSize, length);
    if (crc32(payload, crc32(file.first(20))) != get_le32(&file[20])) {
        d.status = DecodeStatus::checksum_mismatch;
        return d;
    }
    uint32_t code = get_le32(&file[12]);
    if (code != 12 && code != 20) {
        d.status = DecodeStatus::unsupported_format;
        return d;
    }
    d.version = code == 20 ? TpmVersion::v2_0 : TpmVersion::v1_2;
    if (d.version != expected) {
        d.status = DecodeStatus::wrong_version;
        return d;
    }
    d.status = DecodeStatus::ok;
    d.payload = payload;
    return d;
}

std::string_view version_text(TpmVersion version) noexcept { return version == TpmVersion::v2_0 ? "2.0" : "1.2"; }

}  // namespace tpmstate

namespace {

std::string errno_text(int err) { return std::strerror(err); }

// Writes all of `bytes` to `fd`, retrying on EINTR and short writes; returns 0 or errno.
int write_all(int fd, std::span<const uint8_t> bytes) noexcept {
    while (!bytes.empty()) {
        ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        bytes = bytes.subspan(static_cast<size_t>(n));
    }
    return 0;
}

bool is_plain_name(std::string_view name) noexcept {
    if (name.empty() || name.size() > 64 || name[0] == '.') return false;
    for (char c : name)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_')) return false;
    return true;
}

}  // namespace

TpmStateDir::TpmStateDir(std::string path) : path_(std::move(path)) {
    if (path_.empty()) throw TpmStateError("-tpm-state: empty directory name");
    if (::mkdir(path_.c_str(), 0700) != 0 && errno != EEXIST)
        throw TpmStateError(fmt::format("cannot create TPM state directory {}: {}", path_, errno_text(errno)));
    dir_fd_ = UniqueFd(::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir_fd_.valid()) {
        int err = errno;
        throw TpmStateError(err == ENOTDIR ? fmt::format("TPM state directory {} is not a directory", path_)
                                           : fmt::format("cannot open TPM state directory {}: {}", path_, errno_text(err)));
    }
    lock();
    remove_stale_temporaries();
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
        if (name.size() > kTempSuffix.size() && name.ends_with(kTempSuffix)) {
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
    if (!is_plain_name(name)) return false;
    struct stat st {};
    return ::fstatat(dir_fd_.get(), std::string(name).c_str(), &st, 0) == 0;
}

TpmStateDir::ReadResult TpmStateDir::read(std::string_view name, TpmVersion version) const noexcept {
    ReadResult r;
    try {
        if (!is_plain_name(name)) {
            r.status = ReadResult::Status::error;
            r.error = fmt::format("invalid TPM state file name '{}'", name);
            return r;
        }
        auto io_error = [&](int err) {
            r.status = ReadResult::Status::error;
            r.error = fmt::format("cannot read TPM state file {}: {}", file_path(name), errno_text(err));
            return r;
        };
        UniqueFd fd(::openat(dir_fd_.get(), std::string(name).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
        if (!fd.valid()) {
            if (errno == ENOENT) return r;  // missing
            return io_error(errno);
        }
        struct stat st {};
        if (::fstat(fd.get(), &st) != 0) return io_error(errno);
        if (!S_ISREG(st.st_mode)) return io_error(EINVAL);
        if (static_cast<uint64_t>(st.st_size) > tpmstate::kHeaderSize + tpmstate::kMaxPayload) {
            r.status = ReadResult::Status::error;
            r.error = fmt::format("TPM state file {} is corrupt (too large: {} bytes); move it away to start a fresh TPM",
                                  file_path(name), st.st_size);
            return r;
        }
        std::vector<uint8_t> file(static_cast<size_t>(st.st_size));
        size_t got = 0;
        while (got < file.size()) {
            ssize_t n = ::pread(fd.get(), file.data() + got, file.size() - got, static_cast<off_t>(got));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return io_error(errno);
            if (n == 0) break;
            got += static_cast<size_t>(n);
        }
        file.resize(got);
        auto d = tpmstate::decode_file(file, version);
        std::string what;
        switch (d.status) {
        case tpmstate::DecodeStatus::ok:
            r.status = ReadResult::Status::ok;
            r.payload.assign(d.payload.begin(), d.payload.end());
            return r;
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

std::string TpmStateDir::write(std::string_view name, TpmVersion version, std::span<const uint8_t> payload) const noexcept {
    try {
        if (!is_plain_name(name)) return fmt::format("invalid TPM state file name '{}'", name);
        if (payload.size() > tpmstate::kMaxPayload)
            return fmt::format("TPM state {} too large ({} bytes)", file_path(name), payload.size());
        std::vector<uint8_t> file = tpmstate::encode_file(version, payload);
        std::string final_name(name);
        std::string temp_name = final_name + std::string(kTempSuffix);
        auto fail = [&](std::string_view step, int err) {
            ::unlinkat(dir_fd_.get(), temp_name.c_str(), 0);
            return fmt::format("cannot write TPM state file {}: {}: {}", file_path(name), step, errno_text(err));
        };
        UniqueFd fd(::openat(dir_fd_.get(), temp_name.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
        if (!fd.valid()) return fail("create", errno);
        if (int err = write_all(fd.get(), file); err != 0) return fail("write", err);
        // The data must be on disk before the rename makes it the state (else a crash could
        // leave a renamed but empty file on some file systems).
        if (::fsync(fd.get()) != 0) return fail("fsync", errno);
        fd.reset();
        if (::renameat(dir_fd_.get(), temp_name.c_str(), dir_fd_.get(), final_name.c_str()) != 0)
            return fail("rename", errno);
        // And the rename itself must be durable.
        if (::fsync(dir_fd_.get()) != 0)
            return fmt::format("cannot write TPM state file {}: fsync of the directory: {}", file_path(name), errno_text(errno));
        return {};
    } catch (...) {
        return "out of memory writing a TPM state file";
    }
}

std::string TpmStateDir::remove(std::string_view name) const noexcept {
    try {
        if (!is_plain_name(name)) return fmt::format("invalid TPM state file name '{}'", name);
        if (::unlinkat(dir_fd_.get(), std::string(name).c_str(), 0) != 0) {
            if (errno == ENOENT) return {};
            return fmt::format("cannot remove TPM state file {}: {}", file_path(name), errno_text(errno));
        }
        if (::fsync(dir_fd_.get()) != 0)
            return fmt::format("cannot remove TPM state file {}: fsync of the directory: {}", file_path(name), errno_text(errno));
        return {};
    } catch (...) {
        return "out of memory removing a TPM state file";
    }
}

}  // namespace minivmm
