#include "devices/virtio_blk.hpp"

#include <algorithm>
#include <cstring>

#include "vmm/base/log.hpp"

namespace minivmm {

using namespace virtio_blk;

namespace {
constexpr size_t kHeaderSize = 16;  // struct virtio_blk_req: le32 type, le32 reserved, le64 sector
}

VirtioBlkModel::VirtioBlkModel(BlockBackend& backend) : backend_(backend), capacity_(backend.size() / kSectorSize) {
    store_le(std::span<uint8_t>(config_.data() + 0, 8), capacity_);
    store_le(std::span<uint8_t>(config_.data() + 12, 4), kQueueSize - 2);  // seg_max: header + status take 2
    store_le(std::span<uint8_t>(config_.data() + 20, 4), kSectorSize);    // blk_size
}

uint64_t VirtioBlkModel::device_features() const noexcept {
    return kFSegMax | kFBlkSize | kFFlush | (backend_.read_only() ? kFRo : 0);
}

void VirtioBlkModel::read_config(uint32_t offset, std::span<uint8_t> data) noexcept {
    for (size_t i = 0; i < data.size(); ++i) data[i] = offset + i < config_.size() ? config_[offset + i] : 0;
}

void VirtioBlkModel::write_config(uint32_t offset, std::span<const uint8_t> data) noexcept {
    // Only `writeback` is writable, and only with VIRTIO_BLK_F_CONFIG_WCE, which is not offered.
    log::debug("virtio-blk: ignored {}-byte config write at {:#x}", data.size(), offset);
}

uint32_t VirtioBlkModel::handle_chain(uint16_t, const Virtqueue::Chain& chain, const GuestMemory& memory) noexcept {
    ChainCursor in(memory, chain.readable());
    ChainCursor out(memory, chain.writable());
    // §5.2.6: the status byte is the last device-writable byte; without it nothing can be reported.
    if (out.remaining() == 0) {
        log::debug("virtio-blk: request without a status byte");
        return 0;
    }
    uint8_t status = kSIoErr;
    uint64_t data_written = 0;
    std::array<uint8_t, kHeaderSize> header{};
    if (in.remaining() >= kHeaderSize && in.read(header)) {
        const auto type = static_cast<uint32_t>(load_le(std::span<const uint8_t>(header.data(), 4)));
        const uint64_t sector = load_le(std::span<const uint8_t>(header.data() + 8, 8));
        status = transfer(type, sector, in, out, data_written);
    } else {
        log::debug("virtio-blk: request header shorter than {} bytes", kHeaderSize);
    }
    out.skip(out.remaining() - 1);
    out.write(std::span<const uint8_t>(&status, 1));
    return static_cast<uint32_t>(std::min<uint64_t>(data_written + 1, UINT32_MAX));
}

uint8_t VirtioBlkModel::transfer(uint32_t type, uint64_t sector, ChainCursor& in, ChainCursor& out,
                            uint64_t& data_written) noexcept {
    const uint64_t out_data = out.remaining() - 1;  // writable bytes before the status byte
    auto in_range = [&](uint64_t bytes) {
        if (bytes % kSectorSize != 0) return false;  // §5.2.6.1: whole sectors only
        return sector <= capacity_ && bytes / kSectorSize <= capacity_ - sector;
    };
    switch (type) {
    case kTIn: {
        if (!in_range(out_data)) {
            log::debug("virtio-blk: read of {} bytes at sector {} outside {} sectors", out_data, sector, capacity_);
            return kSIoErr;
        }
        uint64_t pos = sector * kSectorSize;
        const bool ok = out.for_each_piece(out_data, [&](std::span<uint8_t> piece) {
            if (!backend_.read(pos, piece)) return false;
            pos += piece.size();
            data_written += piece.size();
            return true;
        });
        return ok ? kSOk : kSIoErr;
    }
    case kTOut: {
        const uint64_t bytes = in.remaining();
        if (backend_.read_only()) return kSIoErr;
        if (!in_range(bytes)) {
            log::debug("virtio-blk: write of {} bytes at sector {} outside {} sectors", bytes, sector, capacity_);
            return kSIoErr;
        }
        uint64_t pos = sector * kSectorSize;
        const bool ok = in.for_each_piece(bytes, [&](std::span<uint8_t> piece) {
            if (!backend_.write(pos, piece)) return false;
            pos += piece.size();
            return true;
        });
        return ok ? kSOk : kSIoErr;
    }
    case kTFlush:
        return backend_.flush() ? kSOk : kSIoErr;
    case kTGetId: {
        // §5.2.6: up to 20 bytes, NUL-padded (not terminated when exactly 20 long).
        std::array<uint8_t, kIdBytes> id{};
        std::memcpy(id.data(), kSerial, std::min(sizeof kSerial - 1, kIdBytes));
        const size_t n = static_cast<size_t>(std::min<uint64_t>(out_data, kIdBytes));
        if (!out.write(std::span<const uint8_t>(id.data(), n))) return kSIoErr;
        data_written = n;
        return kSOk;
    }
    default:
        log::debug("virtio-blk: unsupported request type {}", type);
        return kSUnsupp;
    }
}

}  // namespace minivmm
