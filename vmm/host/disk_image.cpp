#include "vmm/host/disk_image.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <stdexcept>

#include <fmt/core.h>

#include "vmm/base/log.hpp"

namespace minivmm {


namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
    throw std::runtime_error(fmt::format("disk image {} {}", path, what));
}

// Runs pread or pwrite until the whole range is transferred: retries EINTR, continues after
// short transfers, fails on EOF or error.
template <typename Buf, typename Op>
bool transfer_full(Op op, int fd, Buf* buf, size_t len, uint64_t offset) noexcept {
    while (len > 0) {
        const ssize_t n = op(fd, buf, len, static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        buf += n;
        len -= static_cast<size_t>(n);
        offset += static_cast<uint64_t>(n);
    }
    return true;
}

bool pread_full(int fd, uint8_t* buf, size_t len, uint64_t offset) noexcept {
    return transfer_full(::pread, fd, buf, len, offset);
}

bool pwrite_full(int fd, const uint8_t* buf, size_t len, uint64_t offset) noexcept {
    return transfer_full(::pwrite, fd, buf, len, offset);
}

// Splits [offset, offset + size) at overlay block boundaries and calls piece(block, offset in the
// block, offset in the data, length) for each part in order; false as soon as a part fails.
template <typename Piece>
bool for_each_block(uint64_t offset, size_t size, Piece&& piece) noexcept {
    for (size_t done = 0; done < size;) {
        const uint64_t pos = offset + done;
        const uint64_t in_block = pos % DiskImage::kOverlayBlock;
        const size_t n = static_cast<size_t>(std::min<uint64_t>(size - done, DiskImage::kOverlayBlock - in_block));
        if (!piece(pos / DiskImage::kOverlayBlock, in_block, done, n)) return false;
        done += n;
    }
    return true;
}

}  // namespace

std::unique_ptr<DiskImage> DiskImage::open(const std::string& path, bool snapshot) {
    bool read_only = snapshot;
    int fd = snapshot ? -1 : ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0 && (snapshot || errno == EACCES || errno == EROFS || errno == EPERM || errno == EISDIR)) {
        read_only = true;
        fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0) {
        const int err = errno;
        if (err == ENOENT) fail(path, "does not exist");
        if (err == EACCES || err == EPERM) fail(path, fmt::format("is not readable: {}", std::strerror(err)));
        fail(path, fmt::format("cannot be opened: {}", std::strerror(err)));
    }
    UniqueFd owned(fd);

    struct stat st {};
    if (::fstat(owned.get(), &st) != 0) fail(path, fmt::format("cannot be examined: {}", std::strerror(errno)));
    if (S_ISDIR(st.st_mode)) fail(path, "is a directory");
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) fail(path, "is not a regular file or block device");
    const off_t end = ::lseek(owned.get(), 0, SEEK_END);  // also right for block devices
    if (end < 0) fail(path, fmt::format("has no size: {}", std::strerror(errno)));
    const auto size = static_cast<uint64_t>(end);
    if (size == 0) fail(path, "is 0 bytes (empty)");
    if (size % kSectorSize != 0) fail(path, fmt::format("is {} bytes, not a multiple of {}", size, kSectorSize));
    if (read_only && !snapshot) log::info("disk image {} is not writable, the guest sees it read-only", path);
    return std::unique_ptr<DiskImage>(new DiskImage(path, std::move(owned), size, read_only && !snapshot, snapshot));
}

DiskImage::DiskImage(std::string path, UniqueFd fd, uint64_t size, bool read_only, bool snapshot)
    : path_(std::move(path)), fd_(std::move(fd)), size_(size), read_only_(read_only), snapshot_(snapshot) {}

bool DiskImage::read(uint64_t offset, std::span<uint8_t> data) noexcept {
    if (!in_range(offset, data.size())) return false;
    if (snapshot_) return overlay_read(offset, data);
    if (!pread_full(fd_.get(), data.data(), data.size(), offset)) {
        log::debug("disk image {}: read of {} bytes at {} failed", path_, data.size(), offset);
        return false;
    }
    return true;
}

bool DiskImage::write(uint64_t offset, std::span<const uint8_t> data) noexcept {
    if (read_only_ || !in_range(offset, data.size())) return false;
    if (snapshot_) return overlay_write(offset, data);
    if (!pwrite_full(fd_.get(), data.data(), data.size(), offset)) {
        log::debug("disk image {}: write of {} bytes at {} failed: {}", path_, data.size(), offset, std::strerror(errno));
        return false;
    }
    return true;
}

bool DiskImage::flush() noexcept {
    if (snapshot_ || read_only_) return true;  // nothing of ours to make durable
    while (::fdatasync(fd_.get()) != 0) {
        if (errno != EINTR) return false;
    }
    return true;
}

bool DiskImage::overlay_read(uint64_t offset, std::span<uint8_t> data) noexcept {
    return for_each_block(offset, data.size(), [&](uint64_t block, uint64_t in_block, size_t done, size_t n) {
        auto it = overlay_.find(block);
        if (it == overlay_.end()) return pread_full(fd_.get(), data.data() + done, n, offset + done);
        std::memcpy(data.data() + done, it->second.get() + in_block, n);
        return true;
    });
}

bool DiskImage::overlay_write(uint64_t offset, std::span<const uint8_t> data) noexcept {
    return for_each_block(offset, data.size(), [&](uint64_t block, uint64_t in_block, size_t done, size_t n) {
        auto it = overlay_.find(block);
        if (it == overlay_.end()) {
            // First write to this block: copy it from the file (the last block may be partial).
            try {
                auto copy = std::make_unique<uint8_t[]>(kOverlayBlock);  // zeroed
                const uint64_t start = block * kOverlayBlock;
                const uint64_t len = std::min<uint64_t>(kOverlayBlock, size_ - start);
                if (!pread_full(fd_.get(), copy.get(), static_cast<size_t>(len), start)) return false;
                it = overlay_.emplace(block, std::move(copy)).first;
            } catch (const std::bad_alloc&) {
                log::debug("disk image {}: out of memory for the snapshot overlay", path_);
                return false;
            }
        }
        std::memcpy(it->second.get() + in_block, data.data() + done, n);
        return true;
    });
}

bool DiskImage::identity(uint64_t& file_size, int64_t& mtime_ns) const noexcept {
    struct stat st {};
    // The fstat system call itself: glibc's fstat() is newfstatat, which takes a path (sandbox).
    if (::syscall(SYS_fstat, static_cast<long>(fd_.get()), &st) != 0) return false;
    file_size = static_cast<uint64_t>(st.st_size);
    mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    return true;
}

void DiskImage::save_state(StateWriter& out) const {
    out.u8(1);  // format
    out.boolean(snapshot_);
    out.u64(size_);
    // In block order, so the same overlay always gives the same bytes.
    std::vector<uint64_t> blocks;
    blocks.reserve(overlay_.size());
    for (const auto& [block, data] : overlay_) blocks.push_back(block);
    std::sort(blocks.begin(), blocks.end());
    out.u64(blocks.size());
    for (uint64_t block : blocks) {
        out.u64(block);
        out.bytes({overlay_.at(block).get(), kOverlayBlock});
    }
}

bool DiskImage::load_state(StateReader& in) noexcept {
    uint8_t format = 0;
    bool snapshot = false;
    uint64_t size = 0, count = 0;
    in.u8(format);
    in.boolean(snapshot);
    in.u64(size);
    in.u64(count);
    const uint64_t blocks = (size_ + kOverlayBlock - 1) / kOverlayBlock;
    if (!in.ok() || format != 1 || snapshot != snapshot_ || size != size_ || count > blocks || (count && !snapshot_))
        return false;
    try {
        std::unordered_map<uint64_t, std::unique_ptr<uint8_t[]>> overlay;
        uint64_t previous = 0;
        for (uint64_t i = 0; i < count; ++i) {
            uint64_t block = 0;
            auto data = std::make_unique<uint8_t[]>(kOverlayBlock);
            if (!in.u64(block) || block >= blocks || (i > 0 && block <= previous) ||
                !in.bytes(std::span<uint8_t>(data.get(), kOverlayBlock)))
                return false;
            previous = block;
            overlay.emplace(block, std::move(data));
        }
        overlay_ = std::move(overlay);
        return true;
    } catch (const std::bad_alloc&) {
        return false;
    }
}

}  // namespace minivmm
