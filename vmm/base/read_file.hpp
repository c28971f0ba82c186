// Reading a whole input file (the BIOS image, the -kernel and -initrd files) once, at start-up:
// close-on-exec, a regular file only, its size checked against a limit before anything is read,
// EINTR and short reads handled. The caller words the error, so each option keeps its message.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace minivmm {

// Which file, in which version: what fstat says of it. Any write to a file changes its ctime, which
// only the kernel sets (vmm/file_digests.hpp relies on that).
struct FileStamp {
    uint64_t dev = 0, ino = 0, size = 0;
    int64_t mtime_ns = 0, ctime_ns = 0;
    bool operator==(const FileStamp&) const = default;
};

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

}  // namespace minivmm
