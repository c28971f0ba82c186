// Reading an input file (the BIOS image, the -kernel and -initrd files, a -kernel-cache entry) at
// start-up: close-on-exec, a regular file only, its size checked against a limit before anything
// is read, EINTR and short reads handled. Read whole into memory, or kept open and read in place
// (pread) where copying it would cost more than it saves. The caller words the error, so each
// option keeps its message.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "vmm/base/unique_fd.hpp"

namespace minivmm {

// Which file, in which version: what fstat says of it (device, inode, size, modification and
// status-change times). Any write to a file changes its ctime, which only the kernel sets
// (vmm/file_digests.hpp relies on that).
struct FileStamp {
    uint64_t dev = 0, ino = 0, size = 0;
    int64_t mtime_ns = 0, ctime_ns = 0;
    bool operator==(const FileStamp&) const = default;
};
FileStamp stamp_of(const struct stat& st) noexcept;

struct FileRead {
    enum class Status { ok, cannot_open, symbolic_link, not_regular, too_large, cannot_read, shrank };
    Status status = Status::ok;
    int err = 0;        // errno for cannot_open and cannot_read
    uint64_t size = 0;  // the file's size once known (for too_large)
    std::vector<uint8_t> bytes;
    // The file's stamp, the same before and after the read (nullopt if it changed meanwhile).
    std::optional<FileStamp> stamp;
    bool ok() const noexcept { return status == Status::ok; }
};

// `follow_links` false opens with O_NOFOLLOW: a symbolic link is refused (Status::symbolic_link).
FileRead read_whole_file(const std::string& path, uint64_t max_size, bool follow_links);


// An input file kept open, read in place. Its fd pins the file it opened: a file renamed over
// its path later is not what it reads, and stamp_now() tells whether this one changed.
class OpenFile {
public:
    OpenFile() = default;
    OpenFile(UniqueFd fd, const FileStamp& stamp) noexcept : fd_(std::move(fd)), stamp_(stamp) {}

    int fd() const noexcept { return fd_.get(); }
    uint64_t size() const noexcept { return stamp_.size; }  // when opened
    const FileStamp& stamp() const noexcept { return stamp_; }  // when opened
    // Reads out.size() bytes at `offset` (pread: no file position, EINTR and short reads handled);
    // false on an error or when the file ends first.
    bool read_at(uint64_t offset, std::span<uint8_t> out) const noexcept;
    // The file's stamp now, through the fstat system call itself (see read_file.cpp); nullopt if
    // that fails.
    std::optional<FileStamp> stamp_now() const noexcept;

private:
    UniqueFd fd_;
    FileStamp stamp_;
};

struct FileOpen {
    FileRead::Status status = FileRead::Status::ok;  // never cannot_read or shrank
    int err = 0;        // errno for cannot_open
    uint64_t size = 0;  // the file's size once known (for too_large)
    OpenFile file;      // with Status::ok
    bool ok() const noexcept { return status == FileRead::Status::ok; }
};

// Opens `path` read-only as read_whole_file does (O_NOFOLLOW unless `follow_links`, a regular
// file of at most `max_size` bytes), without reading it.
FileOpen open_input_file(const std::string& path, uint64_t max_size, bool follow_links);

}  // namespace minivmm
