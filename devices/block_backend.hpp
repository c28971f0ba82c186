// Storage behind a block device model (virtio-blk): a byte-addressed image of fixed size.
// Implementations: vmm/host/disk_image (a file, optionally with a copy-on-write overlay) and
// in-memory backends in tests. Guest-facing calls never throw; false means an I/O error.
#pragma once

#include <cstdint>
#include <span>

#include "devices/device_state.hpp"

namespace minivmm {

struct BlockBackend {
    virtual ~BlockBackend() = default;
    virtual uint64_t size() const noexcept = 0;  // bytes
    virtual bool read_only() const noexcept = 0;
    // [offset, offset + data.size()) must lie inside size(); callers check.
    virtual bool read(uint64_t offset, std::span<uint8_t> data) noexcept = 0;
    virtual bool write(uint64_t offset, std::span<const uint8_t> data) noexcept = 0;
    virtual bool flush() noexcept = 0;
    // Snapshots: what the backend holds beyond the image itself (DiskImage: the -snapshot overlay,
    // the guest's writes that never reach the file). load_state: all or nothing.
    virtual void save_state(StateWriter&) const {}
    virtual bool load_state(StateReader&) noexcept { return true; }
};

}  // namespace minivmm
