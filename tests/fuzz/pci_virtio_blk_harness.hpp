// The machine of fuzz_pci_virtio_blk: guest RAM, the PCI host bridge with virtio-blk and a second
// test function on their buses, a disk; the accesses a driver makes through them (config space
// through 0xCF8/0xCFC, BAR MMIO, guest-memory pokes, descriptors, the avail ring, notifications);
// and the invariants checked after every operation (tests/fuzz/fuzz_pci_virtio_blk.cpp says which).
// The fuzzer's operations are in the derived Harness there.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "devices/pci_host.hpp"
#include "devices/virtio_blk.hpp"
#include "tests/fuzz/fuzz_support.hpp"
#include "tests/fuzz/pci_virtio_blk_fixtures.hpp"
#include "tests/fuzz/write_confinement.hpp"
#include "devices/bus.hpp"
#include "vmm/base/platform.hpp"

namespace minivmm::fuzz::pci_blk {

class HarnessBase {
public:
    HarnessBase(GuestRam& ram, std::vector<uint8_t>& snapshot, uint8_t config)
        : ram_(ram),
          served_elsewhere_(config & 0x20),
          disk_(size_t{512} * ((config & 3) == 3 ? 0 : 4u << (config & 3) * 2), config & 4),
          blk_(ram_.memory, disk_, intx_, msi_),
          before_(snapshot) {
        disk_.fail = config & 8;
        if (served_elsewhere_) blk_.set_queue_notifier(&notifier_);
        ram_.fill_pattern(config);
        pio_.insert(PciHost::kPortBase, PciHost::kPortSize, host_);
        mmio_.insert(platform::kTpmTisBase, platform::kTpmTisSize, busy_);
        host_.add(kSlot, blk_);
        host_.add(TestFunction::kSlot, test_fn_);
        if (config & 0x10) program_bars(kDefaultBar0, kDefaultBar1, pci::kCommandMemory | pci::kCommandMaster);
    }

protected:
    // Config bit 0x20: the queue is served as the VMM's I/O thread serves it (QueueNotifier;
    // take / serve / finish), here within the operation that notified.
    struct RecordingNotifier final : QueueNotifier {
        bool kicked = false;
        std::optional<uint64_t> base;
        void notify(uint16_t) noexcept override { kicked = true; }
        void notify_base_changed(std::optional<uint64_t> b) noexcept override { base = b; }
    };
    void serve_kicked() {
        if (!notifier_.kicked) return;
        notifier_.kicked = false;
        for (unsigned n = 0; n < Virtqueue::kMaxSize && blk_.take(0, request_); ++n)
            blk_.finish(0, request_, blk_.serve(0, request_));
        blk_.interrupt_if_used(0);
    }
    // A request taken, then the driver resets the device while it is served: the reset waits for
    // it (device_status stays non-zero, nothing else is taken), and its completion never appears.
    void reset_during_service() {
        if (!blk_.take(0, request_)) return;
        common_write(STATUS, 1, 0);  // reaches the device only where BAR0 is decoded
        const bool waiting = blk_.reset_waiting();
        VirtioPci::Request other;
        if (waiting) check(blk_.device_status() != 0 && !blk_.take(0, other));
        blk_.finish(0, request_, blk_.serve(0, request_));
        blk_.interrupt_if_used(0);
        if (waiting) check(blk_.device_status() == 0 && blk_.queue(0).used_idx() == 0 && !blk_.queue(0).enabled());
    }
    // The notify address the notifier last heard is where BAR0 is on the bus, if it is.
    void check_notify_base() {
        if (!served_elsewhere_) return;
        const auto w = blk_.bar_window(0);
        const Bus::Hit hit = w ? mmio_.find(w->base, 1) : Bus::Hit{};
        const bool mapped = hit.device && hit.device->name().ends_with("-bar0") && hit.offset == 0;
        check(notifier_.base == (mapped ? std::optional(w->base + VirtioPci::kNotifyOffset) : std::nullopt));
    }

    void cfg_select(uint8_t slot, uint16_t reg) {
        std::array<uint8_t, 4> a{};
        store_le(a, 0x8000'0000u | uint32_t{slot} << 11 | (reg & 0xfc));
        pio_.write(platform::kPciConfigAddress, a);
    }
    void cfg_write(uint16_t reg, size_t size, uint32_t v) {
        cfg_select(kSlot, reg);
        std::array<uint8_t, 4> d{};
        store_le(std::span<uint8_t>(d.data(), size), v);
        pio_.write(platform::kPciConfigData + (reg & 3), std::span<const uint8_t>(d.data(), size));
    }
    uint32_t cfg_read(uint16_t reg, size_t size) {
        cfg_select(kSlot, reg);
        uint8_t d[8] = {};
        guarded_read(pio_, platform::kPciConfigData + (reg & 3), size, d);
        return static_cast<uint32_t>(load_le(std::span<const uint8_t>(d, size)));
    }
    void program_bars(uint64_t bar0, uint64_t bar1, uint16_t command) {
        cfg_write(pci::kBar0, 4, static_cast<uint32_t>(bar0));
        cfg_write(pci::kBar0 + 4, 4, static_cast<uint32_t>(bar1));
        cfg_write(pci::kCommand, 2, command);
        remember(bar0);
        remember(bar1);
    }
    void remember(uint64_t base) {
        base &= ~uint64_t{0xFFF};
        if (std::find(bases_.begin(), bases_.end(), base) == bases_.end() && bases_.size() < 32) bases_.push_back(base);
    }
    uint64_t bar_base(int bar) {
        const auto w = blk_.bar_window(bar);
        return w ? w->base : (bar == 0 ? kDefaultBar0 : kDefaultBar1);
    }
    uint64_t mmio_read(uint64_t address, size_t n) {
        uint8_t got[8];
        guarded_read(mmio_, address, n, got);
        return load_le(std::span<const uint8_t>(got, n));
    }
    void mmio_write(uint64_t address, size_t n, uint64_t value) {
        uint8_t d[8];
        store_le(std::span<uint8_t>(d, n), value);
        mmio_.write(address, std::span<const uint8_t>(d, n));
    }
    void common_write(uint32_t field, size_t n, uint64_t value) { mmio_write(bar_base(0) + field, n, value); }
    // Writes whatever of the bytes is RAM. The snapshot follows, so that only the device's own
    // writes show up as changes.
    void poke(uint64_t gpa, std::span<const uint8_t> bytes) {
        for (size_t i = 0; i < bytes.size(); ++i) {
            uint8_t* p = ram_.byte(gpa + i);
            if (!p) continue;
            *p = bytes[i];
            if (tracking_) before_[writes_.index_of(gpa + i)] = bytes[i];
        }
    }
    void write_desc(uint64_t table, uint16_t index, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
        uint8_t d[16];
        store_le(std::span<uint8_t>(d, 8), addr);
        store_le(std::span<uint8_t>(d + 8, 4), len);
        store_le(std::span<uint8_t>(d + 12, 2), flags);
        store_le(std::span<uint8_t>(d + 14, 2), next);
        poke(table + 16ull * index, d);
    }
    void push_avail(uint16_t head) {
        const Virtqueue& q = blk_.queue(0);
        uint8_t h[2], idx[2];
        store_le(h, head);
        poke(q.avail_addr() + 4 + 2ull * (avail_idx_ % q.size()), h);
        ++avail_idx_;
        store_le(idx, avail_idx_);
        poke(q.avail_addr() + 2, idx);
    }
    void notify(uint16_t queue) { mmio_write(bar_base(0) + VirtioPci::kNotifyOffset + 4ull * queue, 2, queue); }
    std::optional<uint16_t> used_idx() const {
        const Virtqueue& q = blk_.queue(0);
        uint8_t idx[2];
        if (!q.enabled() || !ram_.peek(q.used_addr() + 2, idx)) return std::nullopt;
        return static_cast<uint16_t>(idx[0] | idx[1] << 8);
    }
    // The used index only moves forward, by at most one ring per operation (or restarts from 0
    // after a reset within the operation), and what the device published is its own count.
    void check_used(uint16_t count_before) {
        const Virtqueue& q = blk_.queue(0);
        if (!q.enabled()) return;
        const uint16_t count = q.used_idx();
        check(static_cast<uint16_t>(count - count_before) <= q.size() || count <= q.size());
        // A count of 0 is a reset (the ring in memory is the driver's business until a publish).
        const std::optional<uint16_t> in_memory = used_idx();
        if (count != count_before && count != 0 && in_memory && !writes_.data_over_used()) check(*in_memory == count);
    }
    void check_state() {
        // INTx: edges only (EdgeCheckingIrq) and only for a set ISR with MSI-X and INTX_DISABLE off.
        if (intx_.level) {
            uint8_t control[2];
            blk_.config_read(static_cast<uint16_t>(blk_.msix_cap_offset() + 2), control);
            check(blk_.isr() != 0);
            check(!(blk_.command() & pci::kCommandIntxDisable));
            check(!(control[1] & 0x80));  // MSI-X enable
        }
        // §3.1.1: FEATURES_OK only for VERSION_1 and offered bits.
        if (blk_.device_status() & virtio::kStatusFeaturesOk) {
            const uint64_t offered = blk_.model().device_features() | virtio::kFVersion1 | virtio::kFRingIndirect;
            check((blk_.driver_features() & virtio::kFVersion1) && !(blk_.driver_features() & ~offered));
        }
        // A BAR is on the bus only where it currently decodes.
        for (int bar = 0; bar < 2; ++bar) {
            const auto w = blk_.bar_window(bar);
            for (uint64_t base : bases_) {
                const Bus::Hit hit = mmio_.find(base, 1);
                if (!hit.device || hit.device == &busy_) continue;
                const bool is_this_bar = hit.device->name().ends_with(bar == 0 ? "-bar0" : "-msix");
                if (is_this_bar) check(w && base >= w->base && base - w->base < w->size);
            }
        }
        const auto io = test_fn_.bar_window(0);
        for (uint64_t base : io_bases_)
            if (pio_.find(base, 1).device == &test_io_) check(io && io->io && base - io->base < io->size);
        const auto mem = test_fn_.bar_window(2);
        for (uint64_t base : mem_bases_)
            if (mmio_.find(base, 1).device == &test_mem_) check(mem && !mem->io && base - mem->base < mem->size);
        check(!test_fn_.bar_window(1) && !test_fn_.bar_window(3));  // not implemented / upper half
    }

    GuestRam& ram_;
    bool served_elsewhere_;
    RecordingNotifier notifier_;
    VirtioPci::Request request_;
    MemBackend disk_;
    LevelIrq intx_;
    CountingMsi msi_;
    Bus pio_{"pio"}, mmio_{"mmio"};
    Busy busy_;
    Busy test_io_{"test-io"}, test_mem_{"test-mem"};
    TestFunction test_fn_{test_io_, test_mem_};
    VirtioBlk blk_;
    PciHost host_{pio_, mmio_};
    uint16_t avail_idx_ = 0;
    std::vector<uint64_t> bases_, io_bases_, mem_bases_;
    std::vector<uint8_t>& before_;
    WriteConfinement writes_{ram_};  // what the device may write during this operation
    bool tracking_ = false;          // before_/writes_ describe this operation
};

}  // namespace minivmm::fuzz::pci_blk
