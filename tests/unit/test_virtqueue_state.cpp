// Virtqueue snapshots (devices/device_state.hpp): a restored queue goes on from the saved ring
// indices over the same guest RAM; a blob no queue could have written changes nothing.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "devices/virtqueue.hpp"

using namespace minivmm;

namespace {

constexpr uint16_t F_WRITE = 2;
constexpr uint64_t kDesc = 0x1000, kAvail = 0x2000, kUsed = 0x3000, kBuf = 0x8000;
constexpr uint16_t kSize = 8;

struct Ram {
    std::vector<uint8_t> bytes = std::vector<uint8_t>(0x10000);
    GuestMemory mem{{{0, bytes.size(), bytes.data()}}};
    uint16_t avail_idx = 0;
    // One single-descriptor chain per call, head = descriptor `i`.
    void post(uint16_t i) {
        mem.write_obj(kDesc + 16ull * i, kBuf + 0x100ull * i);
        mem.write_obj<uint32_t>(kDesc + 16ull * i + 8, 0x10);
        mem.write_obj<uint16_t>(kDesc + 16ull * i + 12, F_WRITE);
        mem.write_obj<uint16_t>(kAvail + 4 + 2ull * (avail_idx % kSize), i);
        mem.write_obj<uint16_t>(kAvail + 2, ++avail_idx);
    }
    uint16_t used_idx() { return *mem.read_obj<uint16_t>(kUsed + 2); }
    uint32_t used_id(uint16_t slot) { return *mem.read_obj<uint32_t>(kUsed + 4 + 8ull * (slot % kSize)); }
};

void program(Virtqueue& vq) {
    REQUIRE(vq.set_size(kSize));
    vq.set_desc_addr(kDesc);
    vq.set_avail_addr(kAvail);
    vq.set_used_addr(kUsed);
    vq.set_indirect_allowed(true);
    vq.enable();
}

}  // namespace

TEST_CASE("virtqueue state: a restored queue pops the next chain and pushes where the saved one would") {
    Ram ram;
    Virtqueue vq(ram.mem, 16);
    program(vq);
    Virtqueue::Chain c;
    for (uint16_t i = 0; i < 3; ++i) ram.post(i);
    REQUIRE(vq.pop(c) == Virtqueue::PopStatus::chain);
    REQUIRE(vq.push(c.head, 0x10));
    REQUIRE(vq.pop(c) == Virtqueue::PopStatus::chain);  // head 1 in flight
    const std::vector<uint8_t> blob = saved_state(vq);

    Virtqueue restored(ram.mem, 16);
    REQUIRE(restored.load_state(blob));
    CHECK(saved_state(restored) == blob);
    CHECK((restored.size() == kSize && restored.enabled() && !restored.broken()));
    CHECK((restored.desc_addr() == kDesc && restored.avail_addr() == kAvail && restored.used_addr() == kUsed));
    CHECK((restored.used_idx() == 1 && restored.last_avail_idx() == 2));
    REQUIRE(restored.push(1, 0x10));  // the chain in flight completes on the restored queue
    REQUIRE(restored.pop(c) == Virtqueue::PopStatus::chain);
    CHECK(c.head == 2);
    REQUIRE(restored.push(c.head, 0x10));
    CHECK(restored.pop(c) == Virtqueue::PopStatus::empty);
    CHECK(ram.used_idx() == 3);
    CHECK((ram.used_id(1) == 1 && ram.used_id(2) == 2));
    // Indirect descriptors stay allowed: enabled state, not only addresses, came back.
    CHECK(saved_state(restored)[1 + 2 + 24 + 1] == 1);
}

TEST_CASE("virtqueue state: rings outside RAM load as a broken queue, as enable() makes them") {
    Ram ram;
    Virtqueue vq(ram.mem);
    vq.set_used_addr(0xFFFF'0000);
    vq.enable();
    CHECK(vq.broken());
    Virtqueue restored(ram.mem);
    REQUIRE(restored.load_state(saved_state(vq)));
    CHECK(restored.broken());
    Virtqueue::Chain c;
    CHECK(restored.pop(c) == Virtqueue::PopStatus::broken);
}

TEST_CASE("virtqueue state: blobs a queue could not have written are refused and change nothing") {
    Ram ram;
    Virtqueue vq(ram.mem, 16);
    program(vq);
    ram.post(0);
    Virtqueue::Chain c;
    REQUIRE(vq.pop(c) == Virtqueue::PopStatus::chain);
    REQUIRE(vq.push(c.head, 1));
    const std::vector<uint8_t> good = saved_state(vq);

    Virtqueue target(ram.mem, 16);
    REQUIRE(target.set_size(4));
    target.set_desc_addr(0x5000);
    const std::vector<uint8_t> before = saved_state(target);
    auto refused = [&](const std::vector<uint8_t>& blob) {
        CHECK_FALSE(target.load_state(blob));
        CHECK(saved_state(target) == before);
    };
    for (size_t n = 0; n < good.size(); ++n) refused({good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n)});
    auto with = [&](size_t at, uint8_t v) {
        auto blob = good;
        blob.at(at) = v;
        return blob;
    };
    // Layout: version@0, size@1, desc@3, avail@11, used@19, enabled@27, indirect@28, broken@29,
    // last_avail@30, next_used@32.
    refused(with(0, 2));
    auto trailing = good;
    trailing.push_back(0);
    refused(trailing);
    refused(with(1, 0));         // size 0
    refused(with(1, 3));         // not a power of two
    refused(with(1, 32));        // above this queue's maximum of 16
    refused(with(27, 2));        // not a boolean
    auto disabled = with(27, 0);  // a disabled queue never moved its indices
    refused(disabled);
    disabled[30] = disabled[32] = 0;
    disabled[29] = 1;  // ... nor broke
    refused(disabled);
    disabled[29] = 0;
    CHECK(target.load_state(disabled));
    CHECK((!target.enabled() && target.size() == kSize && target.desc_addr() == kDesc));
}
