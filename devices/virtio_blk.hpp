// Virtio block device (virtio 1.0 §5.2) over a BlockBackend: one request queue, requests IN,
// OUT, FLUSH and GET_ID, 512-byte sectors. VirtioBlkModel is the block logic; VirtioBlk is the
// complete PCI function (the model on the virtio-pci transport) the machine plugs in:
//     VirtioBlk blk(memory, backend, intx, msi);    // class 0x010000, 1AF4:1042, subsystem 1AF4:0002
//     pci_host.add(platform::kVirtioBlkSlot, blk);
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "devices/block_backend.hpp"
#include "devices/virtio_pci.hpp"

namespace minivmm {

namespace virtio_blk {
inline constexpr uint16_t kDeviceType = 2;
inline constexpr uint64_t kSectorSize = 512;
inline constexpr uint16_t kQueueSize = Virtqueue::kMaxSize;
// Feature bits (§5.2.3)
inline constexpr uint64_t kFSegMax = uint64_t{1} << 2;
inline constexpr uint64_t kFRo = uint64_t{1} << 5;
inline constexpr uint64_t kFBlkSize = uint64_t{1} << 6;
inline constexpr uint64_t kFFlush = uint64_t{1} << 9;
// Request types and status values (§5.2.6)
inline constexpr uint32_t kTIn = 0, kTOut = 1, kTFlush = 4, kTGetId = 8;
inline constexpr uint8_t kSOk = 0, kSIoErr = 1, kSUnsupp = 2;
inline constexpr size_t kIdBytes = 20;  // VIRTIO_BLK_ID_BYTES
inline constexpr char kSerial[] = "minivmm";
// struct virtio_blk_config up to num_queues (§5.2.4): capacity@0, size_max@8, seg_max@12,
// geometry@16, blk_size@20, topology@24, writeback@32, num_queues@34.
inline constexpr uint32_t kConfigSize = 36;
}  // namespace virtio_blk

// No snapshot state of its own: its config space is read-only (no VIRTIO_BLK_F_CONFIG_WCE) and
// requests are served whole within handle_chain; VirtioBlk's state is VirtioPci's.
class VirtioBlkModel final : public VirtioDeviceModel {
public:
    // The backend must outlive the device; its size must be a multiple of 512 (DiskImage checks).
    explicit VirtioBlkModel(BlockBackend& backend);

    uint16_t device_type() const noexcept override { return virtio_blk::kDeviceType; }
    uint32_t pci_class_code() const noexcept override { return 0x010000; }  // mass storage, as QEMU
    uint64_t device_features() const noexcept override;
    uint16_t num_queues() const noexcept override { return 1; }
    uint32_t config_size() const noexcept override { return virtio_blk::kConfigSize; }
    void read_config(uint32_t offset, std::span<uint8_t> data) noexcept override;
    void write_config(uint32_t offset, std::span<const uint8_t> data) noexcept override;
    void reset() noexcept override {}
    uint32_t handle_chain(uint16_t queue, const Virtqueue::Chain& chain, const GuestMemory& memory) noexcept override;

    uint64_t capacity_sectors() const noexcept { return capacity_; }

private:
    uint8_t transfer(uint32_t type, uint64_t sector, ChainCursor& in, ChainCursor& out, uint64_t& data_written) noexcept;

    BlockBackend& backend_;
    uint64_t capacity_;
    std::array<uint8_t, virtio_blk::kConfigSize> config_{};
};

namespace detail {
// Base-from-member: the model must exist before the VirtioPci base that refers to it.
struct VirtioBlkModelHolder {
    explicit VirtioBlkModelHolder(BlockBackend& backend) : blk_model(backend) {}
    VirtioBlkModel blk_model;
};
}  // namespace detail

class VirtioBlk final : private detail::VirtioBlkModelHolder, public VirtioPci {
public:
    // memory, backend, intx and msi must outlive the device. intx is the function's INTA# line
    // (GSI platform::pci_intx_gsi(slot, 0)); msi receives MSI-X messages. Throws on set-up errors.
    VirtioBlk(const GuestMemory& memory, BlockBackend& backend, IrqLine& intx, MsiSink& msi)
        : VirtioBlkModelHolder(backend), VirtioPci(blk_model, memory, intx, msi) {}
    const VirtioBlkModel& model() const noexcept { return blk_model; }
};

}  // namespace minivmm
