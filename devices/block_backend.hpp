// Storage behind a block device model (virtio-blk): a byte-addressed image of fixed size.
// Implementations: vmm/host/disk_image (a file, optionally with a copy-on-write overlay) and
// in-memory backends in tests. Guest-facing calls never throw; false means an I/O error.
#pragma once

#include <cstdint>
#include <span>

namespace minivmm {

struct BlockBackend {
    virtual ~BlockBackend() = default;
    virtual uint64_t size() const noexcept = 0;  // bytes
    virtual bool read_only() const noexcept = 0;
    // [offset, offset + data.size()) must lie inside size(); callers check.
    virtual bool read(uint64_t offset, std::span<uint8_t> data) noexcept = 0;
    virtual bool write(uint64_t offset, std::span<const uint8_t> data) noexcept = 0;
    virtual bool flush() noexcept = 0;
};

}  // namespace minivmm
