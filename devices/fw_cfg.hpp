// QEMU's firmware configuration device (docs/specs/fw_cfg.rst), x86 port-I/O variant with the
// DMA interface. This is how SeaBIOS learns the RAM map, CPU count, boot order and receives the
// ACPI tables (SeaBIOS src/fw/paravirt.c). Map it on the PIO bus at platform::kFwCfgPort,
// size platform::kFwCfgPortSize:
//   +0      selector, 16-bit LE write; selecting a key resets the data offset
//   +0/+1   data, 8-bit reads (QEMU's "comb" region answers byte reads at either port)
//   +4..+11 DMA address, big-endian: +4 high 32 bits, +8 low 32 bits (this write starts the
//           transfer), or one 64-bit write at +4; reads return the signature "QEMU CFG".
// Items are added at set-up time only (add_item/add_file are not to be called while a vCPU
// runs); no lock inside (devices/device.hpp).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "devices/device.hpp"
#include "devices/device_state.hpp"
#include "vmm/base/guest_memory.hpp"

namespace minivmm {

namespace fw_cfg {
// Selector keys (fw_cfg.rst "Selector Register", QEMU include/standard-headers/linux/qemu_fw_cfg.h).
inline constexpr uint16_t kSignature = 0x0000;
inline constexpr uint16_t kId = 0x0001;
inline constexpr uint16_t kNoGraphic = 0x0004;
inline constexpr uint16_t kNbCpus = 0x0005;
inline constexpr uint16_t kBootMenu = 0x000E;
inline constexpr uint16_t kMaxCpus = 0x000F;
inline constexpr uint16_t kFileDir = 0x0019;
inline constexpr uint16_t kFileFirst = 0x0020;
inline constexpr uint16_t kWriteChannel = 0x4000;  // legacy write flag, ignored on select
inline constexpr uint16_t kArchLocal = 0x8000;
inline constexpr uint16_t kAcpiTables = 0x8000;
inline constexpr uint16_t kIrq0Override = 0x8002;
inline constexpr uint16_t kE820Table = 0x8003;
// Legacy keys are 0x0000-0x001F and 0x8000-0x801F; file keys 0x0020-0x3FFF.
inline constexpr uint16_t kLegacyKeyLimit = 0x0020;
inline constexpr uint16_t kFileKeyLimit = 0x4000;

// FW_CFG_ID feature bits.
inline constexpr uint32_t kIdTraditional = 1u << 0;
inline constexpr uint32_t kIdDma = 1u << 1;

// DMA descriptor control bits (fw_cfg.rst "FWCfgDmaAccess").
inline constexpr uint32_t kDmaError = 0x01;
inline constexpr uint32_t kDmaRead = 0x02;
inline constexpr uint32_t kDmaSkip = 0x04;
inline constexpr uint32_t kDmaSelect = 0x08;
inline constexpr uint32_t kDmaWrite = 0x10;
inline constexpr size_t kDmaDescriptorSize = 16;  // be32 control, be32 length, be64 address

// Read back from the DMA address register (big-endian "QEMU CFG").
inline constexpr uint64_t kDmaSignature = 0x51454D5520434647;

// File directory entry: be32 size, be16 select, be16 reserved, char name[56].
inline constexpr size_t kFileNameSize = 56;  // including the terminating NUL
inline constexpr size_t kDirEntrySize = 64;

// Register offsets inside the port window.
inline constexpr uint64_t kSelectorOffset = 0;
inline constexpr uint64_t kDataOffset = 1;
inline constexpr uint64_t kDmaOffset = 4;
inline constexpr uint64_t kDmaLowOffset = 8;
}  // namespace fw_cfg

class FwCfg : public Device, public SavesState {
public:
    // `memory` is where DMA descriptors and buffers live; it must outlive the device.
    explicit FwCfg(const GuestMemory& memory);

    std::string_view name() const noexcept override { return "fw_cfg"; }
    void read(uint64_t offset, std::span<uint8_t> data) noexcept override;
    void write(uint64_t offset, std::span<const uint8_t> data) noexcept override;

    // A legacy (numbered) item, e.g. fw_cfg::kNbCpus. Throws std::invalid_argument for a key
    // outside the legacy ranges, a key the device owns (signature, ID, directory), a duplicate,
    // or data larger than 4 GiB - 1.
    void add_item(uint16_t key, std::vector<uint8_t> data);
    // A named file, listed in the directory; returns its selector key (keys are handed out in
    // insertion order from 0x0020 and stay valid; the directory itself is sorted by name as
    // QEMU sorts it). Throws std::invalid_argument for an empty name, a name of 56 or more
    // bytes or containing NUL, a duplicate name, too many files, or data larger than 4 GiB - 1.
    uint16_t add_file(std::string name, std::vector<uint8_t> data);
    // A file of `size` zero bytes the guest may overwrite with DMA WRITE (never beyond its end,
    // QEMU fw_cfg_dma_transfer), e.g. the target of a table-loader WRITE_POINTER.
    uint16_t add_writable_file(std::string name, size_t size);
    // The current contents of an item (for writable files), under the device lock like read()
    // and write() (the -kernel boot port calls it on a vCPU); empty if absent.
    std::vector<uint8_t> contents(uint16_t key) const noexcept;

    // Snapshot (format version 1): u16 selected key, u64 data offset, u64 latched DMA address
    // (high half), then u16 count and, per writable file in key order, u16 key + its contents.
    // Read-only items are not saved: the same machine rebuilds them identically. load_state
    // refuses a blob whose writable files are not exactly this device's (keys and sizes), an
    // offset past the selected item's end, or a DMA address with a low half.
    void save_state(StateWriter& out) const override;
    bool load_state(std::span<const uint8_t> blob) noexcept override;

    // Inspection for tests and diagnostics (set-up time only).
    const std::vector<uint8_t>* item(uint16_t key) const noexcept;
    std::optional<uint16_t> file_key(std::string_view name) const noexcept;

private:
    struct File {
        std::string name;
        uint16_t key;
    };

    void select(uint16_t key) noexcept;
    uint8_t read_data_byte() noexcept;
    void dma_transfer(uint64_t descriptor_address) noexcept;
    // Performs the data phase of one DMA request; returns the control word to write back.
    uint32_t dma_data(uint32_t control, uint32_t length, uint64_t address) noexcept;
    void rebuild_directory();

    const GuestMemory& memory_;
    std::map<uint16_t, std::vector<uint8_t>> items_;
    std::vector<File> files_;  // in key order
    std::vector<uint16_t> writable_;  // keys of add_writable_file

    // Guest-side state.
    uint16_t selected_ = fw_cfg::kSignature;   // selected key (without kWriteChannel)
    std::vector<uint8_t>* current_ = nullptr;  // selected item, or null (reads as zeros)
    bool current_writable_ = false;
    uint64_t offset_ = 0;                            // data offset into *current_
    uint64_t dma_address_ = 0;                       // latched DMA address (high half)
};

}  // namespace minivmm
