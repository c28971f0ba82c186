// A raw disk image file as a BlockBackend. Opened read-write when possible, read-only when the
// file is not writable (EACCES/EROFS/EPERM). In snapshot mode the file is only read and guest
// writes go to an in-memory copy-on-write overlay of 4 KiB blocks, discarded at exit (the
// overlay grows to at most the image size).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>

#include "devices/block_backend.hpp"
#include "vmm/base/unique_fd.hpp"

namespace minivmm {

class DiskImage final : public BlockBackend {
public:
    static constexpr uint64_t kSectorSize = 512;
    static constexpr uint64_t kOverlayBlock = 4096;

    // Throws std::runtime_error with one message naming the file when it is missing, not
    // readable, a directory (or otherwise not a regular file / block device), empty, or not a
    // multiple of 512 bytes.
    static std::unique_ptr<DiskImage> open(const std::string& path, bool snapshot);

    uint64_t size() const noexcept override { return size_; }
    bool read_only() const noexcept override { return read_only_; }
    bool read(uint64_t offset, std::span<uint8_t> data) noexcept override;
    bool write(uint64_t offset, std::span<const uint8_t> data) noexcept override;
    bool flush() noexcept override;

    // The -snapshot overlay, block by block (nothing else: the file is the file).
    void save_state(StateWriter& out) const override;
    bool load_state(StateReader& in) noexcept override;

    // The image file's length and modification time now (fstat, allowed on this fd under the
    // sandbox): a snapshot records them, a restore needs the same. False if fstat fails.
    bool identity(uint64_t& file_size, int64_t& mtime_ns) const noexcept;
    int fd() const noexcept { return fd_.get(); }

    bool snapshot() const noexcept { return snapshot_; }
    const std::string& path() const noexcept { return path_; }

private:
    DiskImage(std::string path, UniqueFd fd, uint64_t size, bool read_only, bool snapshot);
    bool in_range(uint64_t offset, uint64_t len) const noexcept { return offset <= size_ && len <= size_ - offset; }
    bool overlay_read(uint64_t offset, std::span<uint8_t> data) noexcept;
    bool overlay_write(uint64_t offset, std::span<const uint8_t> data) noexcept;

    std::string path_;
    UniqueFd fd_;
    uint64_t size_;
    bool read_only_;
    bool snapshot_;
    std::unordered_map<uint64_t, std::unique_ptr<uint8_t[]>> overlay_;  // block index -> 4 KiB
};

}  // namespace minivmm
