// TpmStateDir's file I/O (vmm/tpm/tpm_state_dir.hpp): reading a file whole, and replacing one
// atomically (temporary, fsync, rename, fsync of the directory).
#include "vmm/tpm/tpm_state_dir.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/core.h>

namespace minivmm {

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

// 1 MiB: far more than a PEM certificate or key.
constexpr size_t kMaxPlainFile = 1u << 20;

}  // namespace

std::string TpmStateDir::write(std::string_view name, TpmVersion version, std::span<const uint8_t> payload) const noexcept {
    try {
        if (!is_state_name(name)) return fmt::format("invalid TPM state file name '{}'", name);
        if (payload.size() > tpmstate::kMaxPayload)
            return fmt::format("TPM state {} too large ({} bytes)", file_path(name), payload.size());
        return replace_file(name, tpmstate::encode_file(version, payload), 0600);
    } catch (...) {
        return "out of memory writing a TPM state file";
    }
}

std::string TpmStateDir::write_plain(std::string_view name, std::span<const uint8_t> bytes, unsigned mode) const noexcept {
    try {
        if (!is_ca_name(name)) return fmt::format("invalid TPM state file name '{}'", name);
        return replace_file(name, bytes, mode);
    } catch (...) {
        return "out of memory writing a file";
    }
}

TpmStateDir::ReadResult TpmStateDir::read_plain(std::string_view name) const noexcept {
    ReadResult r;
    try {
        if (!is_ca_name(name)) {
            r.status = ReadResult::Status::error;
            r.error = fmt::format("invalid TPM state file name '{}'", name);
            return r;
        }
        read_file(name, kMaxPlainFile, "file", r);
        if (r.status == ReadResult::Status::error && r.error.empty())
            r.error = fmt::format("{} is larger than {} bytes; move it away", file_path(name), kMaxPlainFile);
    } catch (...) {
        r.status = ReadResult::Status::error;
        r.error = "out of memory reading a file";
    }
    return r;
}

// status ok with the bytes; missing; error with r.error set, or empty for "larger than `limit`".
void TpmStateDir::read_file(std::string_view name, size_t limit, std::string_view what, ReadResult& r) const {
    auto io_error = [&](int err) {
        r.status = ReadResult::Status::error;
        r.error = fmt::format("cannot read {} {}: {}", what, file_path(name), errno_text(err));
    };
    r.status = ReadResult::Status::missing;
    // O_NONBLOCK: a FIFO planted under our name must not hang the open (refused below).
    UniqueFd fd(::openat(dir_fd_.get(), std::string(name).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    if (!fd.valid()) {
        if (errno != ENOENT) io_error(errno);
        return;
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return io_error(errno);
    if (!S_ISREG(st.st_mode)) return io_error(EINVAL);
    if (static_cast<uint64_t>(st.st_size) > limit) {
        r.status = ReadResult::Status::error;
        return;
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
    r.payload = std::move(file);
    r.status = ReadResult::Status::ok;
}

std::string TpmStateDir::replace_file(std::string_view name, std::span<const uint8_t> file, unsigned mode) const {
    std::string final_name(name);
    std::string temp_name = final_name + std::string(kTempSuffix);
    auto fail = [&](std::string_view step, int err) {
        ::unlinkat(dir_fd_.get(), temp_name.c_str(), 0);
        return fmt::format("cannot write {}: {}: {}", file_path(name), step, errno_text(err));
    };
    UniqueFd fd(::openat(dir_fd_.get(), temp_name.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
    if (!fd.valid()) return fail("create", errno);
    if (int err = write_all(fd.get(), file); err != 0) return fail("write", err);
    // The data must be on disk before the rename makes it the state (else a crash could
    // leave a renamed but empty file on some file systems).
    if (::fsync(fd.get()) != 0) return fail("fsync", errno);
    fd.reset();
    if (::renameat(dir_fd_.get(), temp_name.c_str(), dir_fd_.get(), final_name.c_str()) != 0) return fail("rename", errno);
    // And the rename itself must be durable.
    if (::fsync(dir_fd_.get()) != 0)
        return fmt::format("cannot write {}: fsync of the directory: {}", file_path(name), errno_text(errno));
    return {};
}

std::string TpmStateDir::remove(std::string_view name) const noexcept {
    try {
        if (!is_state_name(name)) return fmt::format("invalid TPM state file name '{}'", name);
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
