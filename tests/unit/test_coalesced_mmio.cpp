// The coalesced MMIO ring replay (vmm/kvm/coalesced_mmio.hpp) on a page laid out as the kernel's
// struct kvm_coalesced_mmio_ring, filled here the way KVM fills it (virt/kvm/coalesced_mmio.c).
#include <doctest/doctest.h>

#include <linux/kvm.h>

#include <cstring>
#include <vector>

#include "devices/bus.hpp"
#include "vmm/kvm/coalesced_mmio.hpp"

using namespace minivmm;

namespace {

struct Recorder final : Device {
    std::string_view name() const noexcept override { return "fifo"; }
    void read(uint64_t, std::span<uint8_t> data) noexcept override { std::memset(data.data(), 0, data.size()); }
    void write(uint64_t offset, std::span<const uint8_t> data) noexcept override {
        writes.push_back({offset, std::vector<uint8_t>(data.begin(), data.end())});
    }
    std::vector<std::pair<uint64_t, std::vector<uint8_t>>> writes;
};

// A 4 KiB ring page with the kernel's producer side.
struct Page {
    std::vector<uint8_t> bytes = std::vector<uint8_t>(4096, 0);
    uint32_t& first() { return *reinterpret_cast<uint32_t*>(bytes.data()); }
    uint32_t& last() { return *reinterpret_cast<uint32_t*>(bytes.data() + 4); }
    // `len` < 0: the data's size.
    void push(uint32_t capacity, uint64_t addr, std::vector<uint8_t> data, uint32_t pio = 0, int64_t len = -1) {
        uint8_t* e = bytes.data() + CoalescedMmioRing::kHeaderSize + last() * CoalescedMmioRing::kEntrySize;
        uint32_t n = static_cast<uint32_t>(len < 0 ? static_cast<int64_t>(data.size()) : len);
        std::memcpy(e, &addr, 8);
        std::memcpy(e + 8, &n, 4);
        std::memcpy(e + 12, &pio, 4);
        std::memcpy(e + 16, data.data(), std::min<size_t>(data.size(), 8));
        last() = (last() + 1) % capacity;
    }
};

}  // namespace

TEST_CASE("the ring layout matches linux/kvm.h and KVM_COALESCED_MMIO_MAX") {
    // The entry is a plain struct; the ring's header is two u32 before a flexible array, which
    // C++ sees through __DECLARE_FLEX_ARRAY with another offset, so the C layout is spelled out.
    CHECK(CoalescedMmioRing::kEntrySize == sizeof(kvm_coalesced_mmio));
    CHECK(offsetof(kvm_coalesced_mmio, data) == 16);
    CHECK(CoalescedMmioRing::kHeaderSize == 2 * sizeof(uint32_t));
    Page page;
    CoalescedMmioRing ring(page.bytes);
    CHECK(ring.capacity() == 170);  // (4096 - 8) / 24 with 4 KiB pages
}

TEST_CASE("pending writes are replayed in order through the bus and their slots freed") {
    Bus bus("mmio");
    Recorder fifo;
    bus.insert(0xFED40024, 4, fifo);
    Page page;
    CoalescedMmioRing ring(page.bytes);
    CHECK(ring.drain(bus) == 0);  // empty
    CHECK_FALSE(ring.pending());
    page.push(ring.capacity(), 0xFED40024, {0x80});
    page.push(ring.capacity(), 0xFED40024, {0x01});
    page.push(ring.capacity(), 0xFED40025, {0xAA, 0xBB});
    CHECK(ring.pending());
    struct Seen final : ReplayObserver {
        std::vector<uint64_t> addresses;
        void replayed(uint64_t address) noexcept override { addresses.push_back(address); }
    } seen;
    CHECK(ring.drain(bus, &seen) == 3);
    CHECK_FALSE(ring.pending());
    CHECK(seen.addresses == std::vector<uint64_t>{0xFED40024, 0xFED40024, 0xFED40025});
    REQUIRE(fifo.writes.size() == 3);
    CHECK(fifo.writes[0] == std::pair<uint64_t, std::vector<uint8_t>>{0, {0x80}});
    CHECK(fifo.writes[1] == std::pair<uint64_t, std::vector<uint8_t>>{0, {0x01}});
    CHECK(fifo.writes[2] == std::pair<uint64_t, std::vector<uint8_t>>{1, {0xAA, 0xBB}});
    CHECK(page.first() == page.last());
    CHECK(ring.drain(bus) == 0);  // nothing twice
}

TEST_CASE("the replay wraps around the end of the ring") {
    Bus bus("mmio");
    Recorder fifo;
    bus.insert(0x1000, 4, fifo);
    Page page;
    CoalescedMmioRing ring(page.bytes);
    page.first() = page.last() = ring.capacity() - 2;
    for (uint8_t i = 0; i < 5; ++i) page.push(ring.capacity(), 0x1000, {i});
    CHECK(page.last() == 3);
    CHECK(ring.drain(bus) == 5);
    REQUIRE(fifo.writes.size() == 5);
    for (uint8_t i = 0; i < 5; ++i) CHECK(fifo.writes[i].second == std::vector<uint8_t>{i});
    CHECK(page.first() == 3);
}

TEST_CASE("malformed entries are dropped, bad indices stop the replay, unmapped writes go nowhere") {
    Bus bus("mmio");
    Recorder fifo;
    bus.insert(0x1000, 4, fifo);
    Page page;
    CoalescedMmioRing ring(page.bytes);
    page.push(ring.capacity(), 0x1000, {1}, /*pio=*/1);          // a PIO entry: no zone of ours
    page.push(ring.capacity(), 0x1000, {1, 2, 3, 4, 5, 6, 7, 8}, 0, /*len=*/9);  // longer than data[8]
    page.push(ring.capacity(), 0x1000, {2}, 0, /*len=*/0);
    page.push(ring.capacity(), 0x9000, {3});                     // no device there
    page.push(ring.capacity(), 0x1002, {4});
    CHECK(ring.drain(bus) == 2);  // the unmapped one counts as replayed (the bus ignored it)
    REQUIRE(fifo.writes.size() == 1);
    CHECK(fifo.writes[0] == std::pair<uint64_t, std::vector<uint8_t>>{2, {4}});
    CHECK(page.first() == page.last());

    page.last() = ring.capacity() + 7;  // out of range: nothing is read, first stays
    const uint32_t first = page.first();
    CHECK(ring.drain(bus) == 0);
    CHECK(page.first() == first);

    std::vector<uint8_t> tiny(4);  // a page too small for one entry holds none
    CoalescedMmioRing none(tiny);
    CHECK(none.capacity() == 0);
    CHECK(none.drain(bus) == 0);
}
