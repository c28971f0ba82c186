// FwCfg snapshots (devices/device_state.hpp): the selector, data offset, latched DMA address and
// the guest-written files come back on a fresh device of the same machine; anything else is refused.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "devices/fw_cfg.hpp"
#include "tests/unit/fw_cfg_test_helpers.hpp"

using namespace minivmm;
using namespace minivmm::test;

namespace {

constexpr size_t kDesc = 0x100, kBuf = 0x1000;
constexpr uint64_t kBase = 0x1'0000'0000;  // RAM above 4 GiB: the DMA high half matters

// The same machine: same items in the same order.
struct Machine {
    Ram ram{64 * 1024, kBase};
    FwCfg fw{ram.memory};
    uint16_t ro = fw.add_file("etc/ro", {1, 2, 3, 4, 5, 6, 7, 8});
    uint16_t rw = fw.add_writable_file("etc/minivmm/tpm-log-address", 8);
    Machine() { fw.add_item(fw_cfg::kNbCpus, {2, 0}); }
};

// Drives `m` as SeaBIOS would: writes the log address, then reads part of etc/ro, then latches a
// DMA high half.
void drive(Machine& m) {
    for (size_t i = 0; i < 8; ++i) m.ram.bytes[kBuf + i] = static_cast<uint8_t>(0xA0 + i);
    put_descriptor(m.ram.bytes, kDesc, (uint32_t{m.rw} << 16) | fw_cfg::kDmaSelect | fw_cfg::kDmaWrite, 8, kBase + kBuf);
    kick(m.fw, kBase + kDesc);
    REQUIRE(control_at(m.ram, kDesc) == 0);
    select(m.fw, m.ro);
    CHECK(port_read(m.fw, 3) == std::vector<uint8_t>{1, 2, 3});
    const uint8_t hi[4] = {0, 0, 0, 1};  // kBase >> 32, big-endian
    m.fw.write(fw_cfg::kDmaOffset, hi);
}

}  // namespace

TEST_CASE("fw_cfg state: selector, offset, DMA high half and written files survive a round trip") {
    Machine a;
    drive(a);
    const std::vector<uint8_t> blob = saved_state(a.fw);

    Machine b;
    CHECK(b.fw.contents(b.rw) == std::vector<uint8_t>(8, 0));
    REQUIRE(b.fw.load_state(blob));
    CHECK(saved_state(b.fw) == blob);
    CHECK(b.fw.contents(b.rw) == std::vector<uint8_t>{0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7});
    // The data register goes on where it was, on both.
    CHECK(port_read(a.fw, 6) == std::vector<uint8_t>{4, 5, 6, 7, 8, 0});
    CHECK(port_read(b.fw, 6) == std::vector<uint8_t>{4, 5, 6, 7, 8, 0});
    // A DMA read of the written file through a low-half write works the same way.
    for (Machine* m : {&a, &b}) {
        put_descriptor(m->ram.bytes, kDesc, (uint32_t{m->rw} << 16) | fw_cfg::kDmaSelect | fw_cfg::kDmaRead, 8, kBase + kBuf + 0x100);
        const uint8_t lo[4] = {0, 0, 0x01, 0x00};  // kDesc: the transfer starts at kBase + kDesc
        m->fw.write(fw_cfg::kDmaLowOffset, lo);
        CHECK(control_at(m->ram, kDesc) == 0);
        CHECK(std::vector<uint8_t>(m->ram.bytes.begin() + kBuf + 0x100, m->ram.bytes.begin() + kBuf + 0x108) ==
              b.fw.contents(b.rw));
    }
    // A selected key that does not exist reads zeros after restore too.
    select(a.fw, 0x1234);
    Machine c;
    REQUIRE(c.fw.load_state(saved_state(a.fw)));
    CHECK(port_read(c.fw, 2) == std::vector<uint8_t>{0, 0});
}

TEST_CASE("fw_cfg state: truncated, versioned, trailing and out-of-range blobs are refused, device unchanged") {
    Machine a;
    drive(a);
    const std::vector<uint8_t> good = saved_state(a.fw);
    Machine b;
    select(b.fw, fw_cfg::kNbCpus);
    port_read(b.fw, 1);
    const std::vector<uint8_t> before = saved_state(b.fw);
    auto refused = [&](std::vector<uint8_t> blob) {
        CHECK_FALSE(b.fw.load_state(blob));
        CHECK(saved_state(b.fw) == before);
    };
    for (size_t n = 0; n < good.size(); ++n) refused({good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n)});
    auto with = [&](size_t at, uint8_t v) {
        auto blob = good;
        blob.at(at) = v;
        return blob;
    };
    // Layout: version@0, key@1, offset@3, dma@11, count@19, key@21, length@23, contents@27.
    refused(with(0, 2));
    auto trailing = good;
    trailing.push_back(0);
    refused(trailing);
    refused(with(2, 0x40));                   // kWriteChannel is never stored
    refused(with(3, 9));                      // offset past etc/ro's 8 bytes
    refused(with(11, 1));                     // a DMA address with a low half
    refused(with(19, 2));                     // two writable files: this device has one
    refused(with(21, static_cast<uint8_t>(a.ro)));  // names the read-only file
    refused(with(23, 7));                     // a different size
    // A machine without the writable file refuses it.
    Ram ram(4096, kBase);
    FwCfg plain(ram.memory);
    plain.add_file("etc/ro", {1, 2, 3, 4, 5, 6, 7, 8});
    CHECK_FALSE(plain.load_state(good));
    CHECK(b.fw.load_state(good));
}
