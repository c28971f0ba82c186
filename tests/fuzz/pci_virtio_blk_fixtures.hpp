// Fixtures of the PCI/virtio-blk fuzz target (fuzz_pci_virtio_blk.cpp): guest RAM layout, queue and
// request addresses, the in-memory disk, an INTx line, a device occupying the TPM window, a second
// PCI function with an I/O and a 64-bit BAR, and the address/length pickers of the operations.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

#include "devices/pci_host.hpp"
#include "devices/virtio_blk.hpp"
#include "tests/fuzz/fuzz_support.hpp"
#include "vmm/base/platform.hpp"

namespace minivmm::fuzz::pci_blk {

constexpr GuestRam::Layout kLayout[] = {
    {0x0, 0x4000},
    {0x4000, 0x1000},   // adjacent: buffers and rings may cross into it
    {0x10000, 0x1000},  // an island between holes
    {0xFFFF'FFFF'FFFF'E000, 0x1000},
};
constexpr uint8_t kSlot = platform::kVirtioBlkSlot;
constexpr uint64_t kDefaultBar0 = 0xFE00'0000, kDefaultBar1 = 0xFE00'4000;
// Default queue layout and request buffers (data runs across the region boundary at 0x4000).
constexpr uint64_t kDesc = 0x1000, kAvail = 0x2000, kUsed = 0x2400, kIndirectTable = 0x2E00;
constexpr uint64_t kHeader = 0x3000, kStatus = 0x3010, kData = 0x3200;
constexpr uint16_t kNext = 1, kWrite = 2, kIndirect = 4;

// Common configuration offsets (virtio 1.0 §4.1.4.3).
enum : uint32_t { DFSEL = 0x00, DF = 0x04, GFSEL = 0x08, GF = 0x0C, MSIXCFG = 0x10, STATUS = 0x14,
                  QSEL = 0x16, QSIZE = 0x18, QMSIX = 0x1A, QENABLE = 0x1C, QDESC = 0x20, QAVAIL = 0x28, QUSED = 0x30 };

// The disk: up to 32 KiB in a buffer allocated once and cleared for every input.
class MemBackend final : public BlockBackend {
public:
    static constexpr size_t kMaxSize = 32 * 1024;
    MemBackend(size_t size, bool ro) : size_(std::min(size, kMaxSize)), ro_(ro) {
        static const auto storage = std::make_unique<uint8_t[]>(kMaxSize);
        bytes_ = storage.get();
        std::memset(bytes_, 0x5A, size_);
    }
    uint64_t size() const noexcept override { return size_; }
    bool read_only() const noexcept override { return ro_; }
    bool read(uint64_t offset, std::span<uint8_t> data) noexcept override {
        check(offset <= size_ && data.size() <= size_ - offset);  // callers check (block_backend.hpp)
        if (fail) return false;
        std::memcpy(data.data(), bytes_ + offset, data.size());
        return true;
    }
    bool write(uint64_t offset, std::span<const uint8_t> data) noexcept override {
        check(!ro_);
        check(offset <= size_ && data.size() <= size_ - offset);
        if (fail) return false;
        std::memcpy(bytes_ + offset, data.data(), data.size());
        return true;
    }
    bool flush() noexcept override { return !fail; }
    bool fail = false;

private:
    uint8_t* bytes_;
    size_t size_;
    bool ro_;
};

// INTx is level-triggered: a reset may lower an already low line, so only the level is checked.
class LevelIrq final : public IrqLine {
public:
    void set(bool l) noexcept override { level = l; }
    bool level = false;
};

// A device that answers zeros: something on the bus for BARs to collide with, and the windows
// of the test function below.
class Busy final : public Device {
public:
    explicit Busy(std::string_view name = "busy") : name_(name) {}
    std::string_view name() const noexcept override { return name_; }
    void read(uint64_t, std::span<uint8_t> data) noexcept override { std::fill(data.begin(), data.end(), 0); }
    void write(uint64_t, std::span<const uint8_t>) noexcept override {}

private:
    std::string_view name_;
};

// A second function with the BAR kinds virtio-blk does not use: a 16-byte I/O BAR and a 64-bit
// prefetchable memory BAR (BAR2/3), programmed and decoded through the same host bridge.
class TestFunction final : public PciFunction {
public:
    static constexpr uint8_t kSlot = 2;
    TestFunction(Device& io, Device& mem) : PciFunction("test-fn", PciIdentity{0x1234, 0x5678, 0, 0xFF0000, 0, 0, 1}) {
        add_bar(0, PciBarType::io, 16, io);
        add_bar(2, PciBarType::mem64, 0x2000, mem, true);
    }
};

inline uint64_t pick_gpa(Input& in) {
    static constexpr uint64_t kAddrs[] = {0x0, 0x1000, 0x2000, 0x2400, 0x2E00, 0x3000, 0x3200, 0x3FF0, 0x3FFF,
                                          0x4000, 0x4FF0, 0x4FFF, 0x5000, 0xFFF0, 0x10000, 0x10FF0, 0x11000,
                                          0xFFFF'FFFF'FFFF'E000, 0xFFFF'FFFF'FFFF'EFF0, 0xFFFF'FFFF'FFFF'F000,
                                          0xFFFF'FFFF'FFFF'FFF0};
    constexpr size_t n = sizeof kAddrs / sizeof kAddrs[0];
    const uint8_t sel = in.u8();
    if (sel < n) return kAddrs[sel];
    if (sel < 2 * n) return kAddrs[sel - n] + in.u8() - 0x80;
    if (sel < 0xF0) return in.u16() % 0x5000;
    return in.u64();
}

inline uint32_t pick_len(Input& in) {
    switch (in.u8() % 8) {
    case 0: return 0;
    case 1: return 1;
    case 2: return 16;
    case 3: return 512;
    case 4: return 1024 + 512 * (in.u8() % 8);
    case 5: return in.u16();
    case 6: return in.u32();
    default: return in.u8();
    }
}

}  // namespace minivmm::fuzz::pci_blk
