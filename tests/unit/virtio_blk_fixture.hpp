// Shared fixture for the virtio-blk unit tests: an in-memory BlockBackend, recording IrqLine and
// MsiSink, and a small "guest driver" (Machine) that programs the PCI function and its queue.
#pragma once


#include <algorithm>
#include <array>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "devices/pci_host.hpp"
#include "devices/virtio_blk.hpp"
#include "devices/virtio_pci.hpp"
#include "devices/bus.hpp"

#include <doctest/doctest.h>

namespace minivmm::testing {


struct MemBackend final : BlockBackend {
    std::vector<uint8_t> bytes;
    bool ro = false;
    bool fail = false;
    int flushes = 0;
    std::function<void()> on_flush;  // runs inside flush(), if set
    explicit MemBackend(size_t size) : bytes(size) {
        for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(i / 512 + i);
    }
    uint64_t size() const noexcept override { return bytes.size(); }
    bool read_only() const noexcept override { return ro; }
    bool read(uint64_t off, std::span<uint8_t> d) noexcept override {
        if (fail || off + d.size() > bytes.size()) return false;
        std::memcpy(d.data(), bytes.data() + off, d.size());
        return true;
    }
    bool write(uint64_t off, std::span<const uint8_t> d) noexcept override {
        if (fail || ro || off + d.size() > bytes.size()) return false;
        std::memcpy(bytes.data() + off, d.data(), d.size());
        return true;
    }
    bool flush() noexcept override {
        if (on_flush) on_flush();
        ++flushes;
        return !fail;
    }
};

struct RecordingIrq final : IrqLine {
    bool level = false;
    int raises = 0;
    void set(bool l) noexcept override {
        if (l && !level) ++raises;
        level = l;
    }
};

struct RecordingMsi final : MsiSink {
    std::vector<std::pair<uint64_t, uint32_t>> messages;
    void signal(uint64_t address, uint32_t data) noexcept override { messages.emplace_back(address, data); }
};

constexpr uint64_t kBar0 = 0xFE00'0000, kBar1 = 0xFE00'4000;
constexpr uint64_t kDesc = 0x1000, kAvail = 0x2000, kUsed = 0x3000;
constexpr uint64_t kHeader = 0x10000, kData = 0x20000, kStatus = 0x30000;
constexpr uint16_t F_NEXT = 1, F_WRITE = 2;
constexpr unsigned kSlot = 1;

// Common config offsets (virtio 1.0 §4.1.4.3)
enum : uint32_t { DFSEL = 0x00, DF = 0x04, GFSEL = 0x08, GF = 0x0C, MSIXCFG = 0x10, NUMQ = 0x12, STATUS = 0x14,
                  GEN = 0x15, QSEL = 0x16, QSIZE = 0x18, QMSIX = 0x1A, QENABLE = 0x1C, QNOFF = 0x1E,
                  QDESC = 0x20, QAVAIL = 0x28, QUSED = 0x30 };

struct Seg {
    uint64_t addr;
    uint32_t len;
    bool write;
};

struct Machine {
    std::vector<uint8_t> ram = std::vector<uint8_t>(0x200000);
    GuestMemory mem{{{0, ram.size(), ram.data()}}};
    Bus pio{"pio"};
    Bus mmio{"mmio"};
    PciHost host{pio, mmio};
    MemBackend disk;
    RecordingIrq irq;
    RecordingMsi msi;
    VirtioBlk pci{mem, disk, irq, msi};
    uint16_t avail_idx = 0;
    uint16_t qsize = 16;

    // program = false: the BARs are left as firmware finds them (a machine about to be restored).
    explicit Machine(size_t disk_size = 128 * 512, bool ro = false, bool program = true) : disk(disk_size) {
        disk.ro = ro;
        pio.insert(PciHost::kPortBase, PciHost::kPortSize, host);
        host.add(kSlot, pci);
        if (!program) return;
        cfg_write(0x10, 4, kBar0);
        cfg_write(0x14, 4, kBar1);
        cfg_write(0x04, 2, pci::kCommandMemory | pci::kCommandMaster);
    }
    // --- config space through 0xCF8/0xCFC ---
    void select(unsigned reg) {
        std::array<uint8_t, 4> a{};
        store_le(a, 0x8000'0000u | kSlot << 11 | (reg & 0xfc));
        pio.write(0xCF8, a);
    }
    uint32_t cfg_read(unsigned reg, size_t size) {
        select(reg);
        std::array<uint8_t, 4> d{};
        pio.read(0xCFC + (reg & 3), std::span<uint8_t>(d.data(), size));
        return static_cast<uint32_t>(load_le(std::span<const uint8_t>(d.data(), size)));
    }
    void cfg_write(unsigned reg, size_t size, uint32_t v) {
        select(reg);
        std::array<uint8_t, 4> d{};
        store_le(std::span<uint8_t>(d.data(), size), v);
        pio.write(0xCFC + (reg & 3), std::span<const uint8_t>(d.data(), size));
    }
    // --- MMIO ---
    uint64_t rd(uint64_t addr, size_t size) {
        std::array<uint8_t, 8> d{};
        mmio.read(addr, std::span<uint8_t>(d.data(), size));
        return load_le(std::span<const uint8_t>(d.data(), size));
    }
    void wr(uint64_t addr, size_t size, uint64_t v) {
        std::array<uint8_t, 8> d{};
        store_le(std::span<uint8_t>(d.data(), size), v);
        mmio.write(addr, std::span<const uint8_t>(d.data(), size));
    }
    uint64_t common(uint32_t off, size_t size) { return rd(kBar0 + off, size); }
    void set_common(uint32_t off, size_t size, uint64_t v) { wr(kBar0 + off, size, v); }
    uint8_t status() { return static_cast<uint8_t>(common(STATUS, 1)); }
    uint64_t device_features() {
        set_common(DFSEL, 4, 0);
        uint64_t f = common(DF, 4);
        set_common(DFSEL, 4, 1);
        return f | common(DF, 4) << 32;
    }
    void set_driver_features(uint64_t f) {
        set_common(GFSEL, 4, 0);
        set_common(GF, 4, f & 0xffffffff);
        set_common(GFSEL, 4, 1);
        set_common(GF, 4, f >> 32);
    }
    // Driver initialisation, virtio 1.0 §3.1.1. Returns false if FEATURES_OK was refused.
    bool init(uint64_t features = virtio::kFVersion1, bool driver_ok = true) {
        set_common(STATUS, 1, 0);
        set_common(STATUS, 1, virtio::kStatusAcknowledge);
        set_common(STATUS, 1, virtio::kStatusAcknowledge | virtio::kStatusDriver);
        set_driver_features(features);
        set_common(STATUS, 1, virtio::kStatusAcknowledge | virtio::kStatusDriver | virtio::kStatusFeaturesOk);
        if (!(status() & virtio::kStatusFeaturesOk)) return false;
        set_common(QSEL, 2, 0);
        set_common(QSIZE, 2, qsize);
        set_common(QDESC, 4, kDesc);  // lo/hi halves, as Linux writes them
        set_common(QDESC + 4, 4, 0);
        set_common(QAVAIL, 8, kAvail);
        set_common(QUSED, 4, kUsed);
        set_common(QUSED + 4, 4, 0);
        set_common(QENABLE, 2, 1);
        avail_idx = 0;
        if (driver_ok)
            set_common(STATUS, 1, virtio::kStatusAcknowledge | virtio::kStatusDriver | virtio::kStatusFeaturesOk |
                                      virtio::kStatusDriverOk);
        return true;
    }
    void notify() { wr(kBar0 + VirtioPci::kNotifyOffset, 2, 0); }
    // Puts a chain made of `segs` (descriptors 0..n-1) on the avail ring and notifies.
    void submit(const std::vector<Seg>& segs, bool kick = true) {
        for (size_t i = 0; i < segs.size(); ++i) {
            const uint64_t d = kDesc + 16 * i;
            mem.write_obj(d, segs[i].addr);
            mem.write_obj(d + 8, segs[i].len);
            mem.write_obj<uint16_t>(d + 12, (i + 1 < segs.size() ? F_NEXT : 0) | (segs[i].write ? F_WRITE : 0));
            mem.write_obj<uint16_t>(d + 14, static_cast<uint16_t>(i + 1));
        }
        mem.write_obj<uint16_t>(kAvail + 4 + 2 * (avail_idx % qsize), 0);
        ++avail_idx;
        mem.write_obj<uint16_t>(kAvail + 2, avail_idx);
        if (kick) notify();
    }
    void header(uint32_t type, uint64_t sector) {
        mem.write_obj(kHeader, type);
        mem.write_obj<uint32_t>(kHeader + 4, 0);
        mem.write_obj(kHeader + 8, sector);
        mem.write_obj<uint8_t>(kStatus, 0xEE);
    }
    uint8_t request(uint32_t type, uint64_t sector, uint32_t data_len, bool data_writable) {
        header(type, sector);
        std::vector<Seg> segs{{kHeader, 16, false}};
        if (data_len) segs.push_back({kData, data_len, data_writable});
        segs.push_back({kStatus, 1, true});
        submit(segs);
        return *mem.read_obj<uint8_t>(kStatus);
    }
    uint16_t used_idx() { return *mem.read_obj<uint16_t>(kUsed + 2); }
    uint32_t last_used_len() { return *mem.read_obj<uint32_t>(kUsed + 8 + 8 * ((used_idx() - 1) % qsize)); }
    uint8_t read_isr() { return static_cast<uint8_t>(rd(kBar0 + VirtioPci::kIsrOffset, 1)); }
    // Vendor capability of the given cfg_type, or 0.
    unsigned find_cap(uint8_t cfg_type) {
        for (unsigned cap = cfg_read(0x34, 1), n = 0; cap && n < 48; cap = cfg_read(cap + 1, 1), ++n)
            if (cfg_read(cap, 1) == pci::kCapVendor && cfg_read(cap + 3, 1) == cfg_type) return cap;
        return 0;
    }
    unsigned find_msix() {
        for (unsigned cap = cfg_read(0x34, 1), n = 0; cap && n < 48; cap = cfg_read(cap + 1, 1), ++n)
            if (cfg_read(cap, 1) == pci::kCapMsix) return cap;
        return 0;
    }
};


}  // namespace minivmm::testing
