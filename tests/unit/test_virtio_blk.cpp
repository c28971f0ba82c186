#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "virtio_blk_fixture.hpp"

using namespace minivmm;
using namespace minivmm::testing;

TEST_CASE("virtio-blk PCI identity and capabilities") {
    Machine m;
    CHECK(m.cfg_read(0x00, 2) == 0x1AF4);
    CHECK(m.cfg_read(0x02, 2) == 0x1042);
    CHECK(m.cfg_read(0x08, 1) == 1);                    // revision 1: modern only
    CHECK((m.cfg_read(0x08, 4) >> 8) == 0x010000);      // mass storage
    CHECK(m.cfg_read(0x2C, 2) == 0x1AF4);
    CHECK(m.cfg_read(0x2E, 2) == 0x0002);
    CHECK(m.cfg_read(0x3D, 1) == 1);                    // INTA#
    // BARs: 32-bit non-prefetchable memory (SeaBIOS keeps these below 4 GiB -> plain MMIO mode).
    m.cfg_write(0x10, 4, 0xFFFF'FFFF);
    CHECK(m.cfg_read(0x10, 4) == static_cast<uint32_t>(~(VirtioPci::kConfigBarSize - 1)));
    m.cfg_write(0x10, 4, kBar0);
    m.cfg_write(0x14, 4, 0xFFFF'FFFF);
    CHECK(m.cfg_read(0x14, 4) == static_cast<uint32_t>(~(VirtioPci::kMsixBarSize - 1)));
    m.cfg_write(0x14, 4, kBar1);

    struct Expect {
        uint8_t type;
        uint32_t offset;
        uint32_t length;
    };
    for (const Expect& e : {Expect{1, 0x0000, 0x38}, Expect{2, 0x3000, 4}, Expect{3, 0x1000, 1},
                            Expect{4, 0x2000, virtio_blk::kConfigSize}, Expect{5, 0, 0}}) {
        CAPTURE(int{e.type});
        const unsigned cap = m.find_cap(e.type);
        REQUIRE(cap != 0);
        CHECK(m.cfg_read(cap + 4, 1) == 0);  // BAR0
        CHECK(m.cfg_read(cap + 8, 4) == e.offset);
        CHECK(m.cfg_read(cap + 12, 4) == e.length);
    }
    CHECK(m.cfg_read(m.find_cap(2) + 16, 4) == VirtioPci::kNotifyMultiplier);
    CHECK(m.cfg_read(m.find_cap(2) + 2, 1) == 20);
    const unsigned msix = m.find_msix();
    REQUIRE(msix != 0);
    CHECK(m.cfg_read(msix + 2, 2) == 1);  // table size 2 (config + 1 queue), disabled
    CHECK(m.cfg_read(msix + 4, 4) == (VirtioPci::kMsixTableOffset | 1));
    CHECK(m.cfg_read(msix + 8, 4) == (VirtioPci::kMsixPbaOffset | 1));
    // Capability bodies are read-only except the cfg-access window and MSI-X control.
    m.cfg_write(m.find_cap(1) + 8, 4, 0x1234);
    CHECK(m.cfg_read(m.find_cap(1) + 8, 4) == 0);
    m.cfg_write(msix + 2, 2, 0xFFFF);
    CHECK(m.cfg_read(msix + 2, 2) == 0xC001);
}

TEST_CASE("virtio-blk feature negotiation and device config") {
    Machine m;
    const uint64_t f = m.device_features();
    CHECK((f & virtio::kFVersion1));
    CHECK((f & virtio_blk::kFFlush));
    CHECK((f & virtio_blk::kFSegMax));
    CHECK((f & virtio_blk::kFBlkSize));
    CHECK_FALSE((f & virtio_blk::kFRo));
    m.set_common(DFSEL, 4, 7);
    CHECK(m.common(DF, 4) == 0);
    CHECK(m.common(NUMQ, 2) == 1);

    SUBCASE("FEATURES_OK refused without VERSION_1") { CHECK_FALSE(m.init(virtio_blk::kFFlush)); }
    SUBCASE("FEATURES_OK refused with a feature never offered") {
        CHECK_FALSE(m.init(virtio::kFVersion1 | uint64_t{1} << 40));
    }
    SUBCASE("accepted, then features are locked") {
        REQUIRE(m.init(virtio::kFVersion1 | virtio_blk::kFFlush));
        CHECK(m.pci.driver_features() == (virtio::kFVersion1 | virtio_blk::kFFlush));
        m.set_driver_features(0);
        CHECK(m.pci.driver_features() == (virtio::kFVersion1 | virtio_blk::kFFlush));
    }
    // Device config, read the ways SeaBIOS (8 bytes as 2x4) and Linux read it.
    const uint64_t cfg = kBar0 + VirtioPci::kDeviceOffset;
    CHECK(m.rd(cfg + 0, 4) == 128);  // capacity in sectors
    CHECK(m.rd(cfg + 4, 4) == 0);
    CHECK(m.rd(cfg + 0, 8) == 128);
    CHECK(m.rd(cfg + 12, 4) == virtio_blk::kQueueSize - 2);  // seg_max
    CHECK(m.rd(cfg + 20, 4) == 512);                          // blk_size
    CHECK(m.rd(cfg + 16, 2) == 0);                            // geometry (not offered)
    CHECK(m.rd(cfg + 34, 2) == 0);
    CHECK(m.rd(cfg + 36, 4) == 0);  // past the structure
    m.wr(cfg, 4, 0xFFFF);
    CHECK(m.rd(cfg, 4) == 128);  // read-only
}

TEST_CASE("virtio-blk queue configuration") {
    Machine m;
    m.set_common(QSEL, 2, 0);
    CHECK(m.common(QSIZE, 2) == virtio_blk::kQueueSize);
    CHECK(m.common(QENABLE, 2) == 0);
    CHECK(m.common(QNOFF, 2) == 0);
    CHECK(m.common(QMSIX, 2) == virtio::kNoVector);
    m.set_common(QSIZE, 2, 100);  // not a power of two: ignored
    CHECK(m.common(QSIZE, 2) == virtio_blk::kQueueSize);
    m.set_common(QSIZE, 2, 128);  // a driver may shrink the queue (SeaBIOS does if > MAX_QUEUE_NUM)
    CHECK(m.common(QSIZE, 2) == 128);
    m.set_common(QSEL, 2, 1);  // no such queue
    CHECK(m.common(QSIZE, 2) == 0);
    m.set_common(QENABLE, 2, 1);
    CHECK(m.common(QENABLE, 2) == 0);
    REQUIRE(m.init());
    CHECK(m.common(QENABLE, 2) == 1);
    CHECK(m.common(QDESC, 8) == kDesc);
    CHECK(m.common(QAVAIL, 4) == kAvail);
    CHECK(m.common(QUSED, 8) == kUsed);
    m.set_common(QDESC, 8, 0x9000);  // frozen while enabled
    CHECK(m.common(QDESC, 8) == kDesc);
    CHECK(m.status() == 0x0F);
}

TEST_CASE("virtio-blk requests end to end") {
    Machine m;
    REQUIRE(m.init(virtio::kFVersion1 | virtio_blk::kFFlush));

    // OUT: two sectors at sector 3.
    for (unsigned i = 0; i < 1024; ++i) m.ram[kData + i] = static_cast<uint8_t>(i * 7 + 1);
    CHECK(m.request(virtio_blk::kTOut, 3, 1024, false) == virtio_blk::kSOk);
    CHECK(std::memcmp(m.disk.bytes.data() + 3 * 512, m.ram.data() + kData, 1024) == 0);
    CHECK(m.used_idx() == 1);
    CHECK(m.last_used_len() == 1);

    // IN: read them back into a cleared buffer.
    std::memset(m.ram.data() + kData, 0, 1024);
    CHECK(m.request(virtio_blk::kTIn, 3, 1024, true) == virtio_blk::kSOk);
    CHECK(std::memcmp(m.disk.bytes.data() + 3 * 512, m.ram.data() + kData, 1024) == 0);
    CHECK(m.last_used_len() == 1025);

    // Last sector is fine, one past the end is not.
    CHECK(m.request(virtio_blk::kTIn, 127, 512, true) == virtio_blk::kSOk);
    CHECK(m.request(virtio_blk::kTIn, 127, 1024, true) == virtio_blk::kSIoErr);
    CHECK(m.request(virtio_blk::kTIn, 128, 512, true) == virtio_blk::kSIoErr);
    CHECK(m.request(virtio_blk::kTOut, ~uint64_t{0} / 512 + 5, 512, false) == virtio_blk::kSIoErr);  // sector*512 wraps
    CHECK(m.request(virtio_blk::kTIn, uint64_t{1} << 63, 512, true) == virtio_blk::kSIoErr);
    CHECK(m.request(virtio_blk::kTIn, 0, 100, true) == virtio_blk::kSIoErr);  // not whole sectors
    CHECK(m.request(virtio_blk::kTIn, 0, 0, true) == virtio_blk::kSOk);     // empty read is harmless

    // FLUSH, GET_ID, unknown type.
    CHECK(m.request(virtio_blk::kTFlush, 0, 0, true) == virtio_blk::kSOk);
    CHECK(m.disk.flushes == 1);
    std::memset(m.ram.data() + kData, 0xAA, 32);
    CHECK(m.request(virtio_blk::kTGetId, 0, 20, true) == virtio_blk::kSOk);
    CHECK(std::string(reinterpret_cast<const char*>(m.ram.data() + kData)) == "minivmm");
    CHECK(m.ram[kData + 19] == 0);
    CHECK(m.ram[kData + 20] == 0xAA);  // nothing beyond the buffer
    CHECK(m.last_used_len() == 21);
    CHECK(m.request(99, 0, 0, true) == virtio_blk::kSUnsupp);

    // Backend failure.
    m.disk.fail = true;
    CHECK(m.request(virtio_blk::kTIn, 0, 512, true) == virtio_blk::kSIoErr);
    CHECK(m.request(virtio_blk::kTFlush, 0, 0, true) == virtio_blk::kSIoErr);
}

TEST_CASE("virtio-blk odd but legal layouts and hostile chains") {
    Machine m;
    REQUIRE(m.init());
    SUBCASE("header split over two descriptors, data in several") {
        m.header(virtio_blk::kTIn, 1);
        m.submit({{kHeader, 5, false}, {kHeader + 5, 11, false}, {kData, 300, true}, {kData + 0x1000, 212, true},
                  {kStatus, 1, true}});
        CHECK(*m.mem.read_obj<uint8_t>(kStatus) == virtio_blk::kSOk);
        CHECK(std::memcmp(m.ram.data() + kData, m.disk.bytes.data() + 512, 300) == 0);
        CHECK(std::memcmp(m.ram.data() + kData + 0x1000, m.disk.bytes.data() + 812, 212) == 0);
    }
    SUBCASE("status shares the data descriptor") {
        m.header(virtio_blk::kTIn, 2);
        m.mem.write_obj<uint8_t>(kData + 512, 0xEE);
        m.submit({{kHeader, 16, false}, {kData, 513, true}});
        CHECK(*m.mem.read_obj<uint8_t>(kData + 512) == virtio_blk::kSOk);
        CHECK(std::memcmp(m.ram.data() + kData, m.disk.bytes.data() + 1024, 512) == 0);
    }
    SUBCASE("short header gets IOERR") {
        m.submit({{kHeader, 8, false}, {kStatus, 1, true}});
        CHECK(*m.mem.read_obj<uint8_t>(kStatus) == virtio_blk::kSIoErr);
    }
    SUBCASE("no writable byte: nothing to report, used len 0") {
        m.header(virtio_blk::kTOut, 0);
        m.submit({{kHeader, 16, false}, {kData, 512, false}});
        CHECK(m.used_idx() == 1);
        CHECK(m.last_used_len() == 0);
    }
    SUBCASE("buffer outside RAM: chain consumed with len 0, device untouched") {
        const auto before = m.disk.bytes;
        m.header(virtio_blk::kTIn, 0);
        m.submit({{kHeader, 16, false}, {0x1F'FF00, 512, true}, {kStatus, 1, true}});
        CHECK(m.used_idx() == 1);
        CHECK(m.last_used_len() == 0);
        CHECK(*m.mem.read_obj<uint8_t>(kStatus) == 0xEE);
        CHECK(m.disk.bytes == before);
        CHECK((m.status() & virtio::kStatusNeedsReset) == 0);
        CHECK(m.request(virtio_blk::kTIn, 0, 512, true) == virtio_blk::kSOk);  // queue still fine
    }
    SUBCASE("descriptor loop: consumed, len 0") {
        m.header(virtio_blk::kTIn, 0);
        m.mem.write_obj(kDesc, kHeader);
        m.mem.write_obj<uint32_t>(kDesc + 8, 16);
        m.mem.write_obj<uint16_t>(kDesc + 12, F_NEXT);
        m.mem.write_obj<uint16_t>(kDesc + 14, 0);
        m.mem.write_obj<uint16_t>(kAvail + 4, 0);
        m.mem.write_obj<uint16_t>(kAvail + 2, 1);
        m.notify();
        CHECK(m.used_idx() == 1);
        CHECK(m.last_used_len() == 0);
    }
    SUBCASE("avail idx jump: DEVICE_NEEDS_RESET and a config interrupt") {
        m.mem.write_obj<uint16_t>(kAvail + 2, 1000);
        m.notify();
        CHECK((m.status() & virtio::kStatusNeedsReset) != 0);
        CHECK(m.used_idx() == 0);
        CHECK(m.irq.level);
        CHECK(m.read_isr() == virtio::kIsrConfig);
        CHECK_FALSE(m.irq.level);
        // Nothing is processed until reset; reset clears NEEDS_RESET.
        m.notify();
        CHECK(m.used_idx() == 0);
        REQUIRE(m.init());
        CHECK((m.status() & virtio::kStatusNeedsReset) == 0);
        CHECK(m.request(virtio_blk::kTIn, 0, 512, true) == virtio_blk::kSOk);
    }
}

TEST_CASE("virtio-blk read-only backend") {
    Machine m(64 * 512, /*ro*/ true);
    CHECK((m.device_features() & virtio_blk::kFRo));
    REQUIRE(m.init(virtio::kFVersion1 | virtio_blk::kFRo));
    const auto before = m.disk.bytes;
    CHECK(m.request(virtio_blk::kTOut, 0, 512, false) == virtio_blk::kSIoErr);
    CHECK(m.disk.bytes == before);
    CHECK(m.request(virtio_blk::kTIn, 0, 512, true) == virtio_blk::kSOk);
}

TEST_CASE("virtio-blk does nothing before DRIVER_OK") {
    Machine m;
    REQUIRE(m.init(virtio::kFVersion1, /*driver_ok*/ false));
    m.header(virtio_blk::kTIn, 0);
    m.submit({{kHeader, 16, false}, {kData, 512, true}, {kStatus, 1, true}});
    CHECK(m.used_idx() == 0);
    CHECK(m.irq.raises == 0);
}
