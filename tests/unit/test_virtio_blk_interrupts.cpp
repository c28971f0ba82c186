// virtio-blk interrupts (INTx, MSI-X), the PCI config access capability, reset and random input.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "virtio_blk_fixture.hpp"

using namespace minivmm;
using namespace minivmm::testing;

TEST_CASE("virtio-blk INTx interrupts") {
    Machine m;
    REQUIRE(m.init());
    CHECK_FALSE(m.irq.level);
    m.request(virtio_blk::kTIn, 0, 512, true);
    CHECK(m.irq.level);
    CHECK(m.irq.raises == 1);
    CHECK((m.cfg_read(0x06, 2) & pci::kStatusInterrupt) != 0);
    CHECK(m.pci.isr() == virtio::kIsrQueue);
    CHECK(m.read_isr() == virtio::kIsrQueue);  // read-and-clear
    CHECK_FALSE(m.irq.level);
    CHECK(m.read_isr() == 0);
    CHECK((m.cfg_read(0x06, 2) & pci::kStatusInterrupt) == 0);

    // VIRTQ_AVAIL_F_NO_INTERRUPT: used ring updated, no interrupt.
    m.mem.write_obj<uint16_t>(kAvail, 1);
    m.request(virtio_blk::kTIn, 0, 512, true);
    CHECK(m.used_idx() == 2);
    CHECK_FALSE(m.irq.level);
    m.mem.write_obj<uint16_t>(kAvail, 0);

    // COMMAND.INTX_DISABLE masks the line but not the ISR.
    m.cfg_write(0x04, 2, pci::kCommandMemory | pci::kCommandIntxDisable);
    m.request(virtio_blk::kTIn, 0, 512, true);
    CHECK_FALSE(m.irq.level);
    CHECK((m.cfg_read(0x06, 2) & pci::kStatusInterrupt) != 0);
    m.cfg_write(0x04, 2, pci::kCommandMemory);
    CHECK(m.irq.level);

    // Device reset deasserts.
    m.set_common(STATUS, 1, 0);
    CHECK_FALSE(m.irq.level);
    CHECK(m.status() == 0);
    CHECK(m.pci.isr() == 0);
    m.set_common(QSEL, 2, 0);
    CHECK(m.common(QENABLE, 2) == 0);
    CHECK(m.common(QSIZE, 2) == virtio_blk::kQueueSize);
    CHECK(m.common(QDESC, 8) == 0);
}

TEST_CASE("virtio-blk MSI-X delivery and masking") {
    Machine m;
    const unsigned cap = m.find_msix();
    // Table entry 1: address/data; entries start masked.
    m.wr(kBar1 + 16 + 0, 4, 0xFEE0'1000);
    m.wr(kBar1 + 16 + 4, 4, 0);
    m.wr(kBar1 + 16 + 8, 4, 0x4041);
    CHECK(m.rd(kBar1 + 16 + 12, 4) == 1);
    m.cfg_write(cap + 2, 2, 0x8000);  // enable
    REQUIRE(m.init());
    m.set_common(MSIXCFG, 2, 0);
    CHECK(m.common(MSIXCFG, 2) == 0);
    m.set_common(QSEL, 2, 0);
    m.set_common(QMSIX, 2, 5);  // no such vector: reads back NO_VECTOR
    CHECK(m.common(QMSIX, 2) == virtio::kNoVector);
    m.set_common(QMSIX, 2, 1);
    CHECK(m.common(QMSIX, 2) == 1);

    // Masked: pending bit instead of a message.
    m.request(virtio_blk::kTIn, 0, 512, true);
    CHECK(m.msi.messages.empty());
    CHECK(m.rd(kBar1 + VirtioPci::kMsixPbaOffset, 8) == 0b10);
    CHECK_FALSE(m.irq.level);  // never INTx while MSI-X is on
    CHECK(m.pci.isr() == 0);
    // Unmask: the pending message is delivered.
    m.wr(kBar1 + 16 + 12, 4, 0);
    REQUIRE(m.msi.messages.size() == 1);
    CHECK(m.msi.messages[0] == std::pair<uint64_t, uint32_t>{0xFEE0'1000, 0x4041});
    CHECK(m.rd(kBar1 + VirtioPci::kMsixPbaOffset, 8) == 0);
    m.request(virtio_blk::kTIn, 0, 512, true);
    CHECK(m.msi.messages.size() == 2);

    // Function mask holds messages back until cleared.
    m.cfg_write(cap + 2, 2, 0xC000);
    m.request(virtio_blk::kTIn, 0, 512, true);
    CHECK(m.msi.messages.size() == 2);
    CHECK(m.rd(kBar1 + VirtioPci::kMsixPbaOffset, 1) == 0b10);
    m.cfg_write(cap + 2, 2, 0x8000);
    CHECK(m.msi.messages.size() == 3);

    // NO_VECTOR: no interrupt at all.
    m.set_common(QMSIX, 2, virtio::kNoVector);
    m.request(virtio_blk::kTIn, 0, 512, true);
    CHECK(m.msi.messages.size() == 3);
    CHECK_FALSE(m.irq.level);

    // Disabling MSI-X falls back to INTx.
    m.cfg_write(cap + 2, 2, 0);
    m.request(virtio_blk::kTIn, 0, 512, true);
    CHECK(m.irq.level);
    CHECK(m.msi.messages.size() == 3);
}

TEST_CASE("virtio-blk through the PCI configuration access capability (SeaBIOS pcicfg mode)") {
    Machine m;
    const unsigned cap = m.find_cap(5);
    REQUIRE(cap != 0);
    auto window = [&](uint32_t off, uint32_t len) {
        m.cfg_write(cap + 4, 1, 0);  // BAR0
        m.cfg_write(cap + 8, 4, off);
        m.cfg_write(cap + 12, 4, len);
    };
    auto cfg_rd = [&](uint32_t off, uint32_t len) {
        window(off, len);
        return m.cfg_read(cap + 16, len);
    };
    auto cfg_wr = [&](uint32_t off, uint32_t len, uint32_t v) {
        window(off, len);
        m.cfg_write(cap + 16, len, v);
    };
    // Turn MMIO decode off: everything below goes through config space only.
    m.cfg_write(0x04, 2, 0);
    CHECK(m.mmio.find(kBar0, 4).device == nullptr);

    cfg_wr(DFSEL, 4, 1);
    CHECK((cfg_rd(DF, 4) & 1) == 1);  // VERSION_1 is bit 32
    cfg_wr(STATUS, 1, 0);
    cfg_wr(STATUS, 1, virtio::kStatusAcknowledge | virtio::kStatusDriver);
    cfg_wr(GFSEL, 4, 0);
    cfg_wr(GF, 4, 0);
    cfg_wr(GFSEL, 4, 1);
    cfg_wr(GF, 4, 1);
    cfg_wr(STATUS, 1, 0x0B);
    CHECK(cfg_rd(STATUS, 1) == 0x0B);
    cfg_wr(QSEL, 2, 0);
    cfg_wr(QSIZE, 2, m.qsize);
    cfg_wr(QDESC, 4, kDesc);
    cfg_wr(QAVAIL, 4, kAvail);
    cfg_wr(QUSED, 4, kUsed);
    cfg_wr(QENABLE, 2, 1);
    cfg_wr(STATUS, 1, 0x0F);
    CHECK(cfg_rd(VirtioPci::kDeviceOffset, 4) == 128);  // capacity low

    m.header(virtio_blk::kTIn, 5);
    m.submit({{kHeader, 16, false}, {kData, 512, true}, {kStatus, 1, true}}, /*kick*/ false);
    cfg_wr(VirtioPci::kNotifyOffset, 2, 0);  // vp_notify() in pcicfg mode
    CHECK(*m.mem.read_obj<uint8_t>(kStatus) == virtio_blk::kSOk);
    CHECK(std::memcmp(m.ram.data() + kData, m.disk.bytes.data() + 5 * 512, 512) == 0);
    CHECK(cfg_rd(VirtioPci::kIsrOffset, 1) == virtio::kIsrQueue);
    CHECK(cfg_rd(VirtioPci::kIsrOffset, 1) == 0);

    // Invalid windows are ignored: bad length, unaligned, past the BAR, missing BAR.
    window(STATUS, 3);
    m.cfg_write(cap + 16, 1, 0);
    CHECK(m.pci.device_status() == 0x0F);
    window(STATUS + 1, 2);
    m.cfg_write(cap + 16, 2, 0);
    CHECK(m.pci.device_status() == 0x0F);
    window(static_cast<uint32_t>(VirtioPci::kConfigBarSize - 2), 4);
    m.cfg_write(cap + 16, 4, 0);
    m.cfg_write(cap + 4, 1, 5);
    m.cfg_write(cap + 8, 4, 0);
    m.cfg_write(cap + 12, 4, 4);
    m.cfg_write(cap + 16, 4, 0);
    CHECK(m.pci.device_status() == 0x0F);
}

TEST_CASE("virtio-blk survives random guest input") {
    // Deterministic pseudo-random register writes, ring scribbles and notifications: nothing may
    // crash or touch memory outside guest RAM (run this under ASan/UBSan too), and afterwards a
    // reset brings the device back to a working state.
    Machine m;
    REQUIRE(m.init(virtio::kFVersion1 | virtio::kFRingIndirect));
    uint64_t state = 0x9E3779B97F4A7C15ull;
    auto next = [&] {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        return state;
    };
    const size_t sizes[] = {1, 2, 4, 8};
    for (int i = 0; i < 20000; ++i) {
        const uint64_t r = next();
        const size_t size = sizes[r % 4];
        switch ((r >> 8) % 8) {
        case 0: m.wr(kBar0 + ((r >> 16) % VirtioPci::kConfigBarSize & ~(size - 1)), size, next()); break;
        case 1: m.wr(kBar1 + ((r >> 16) % VirtioPci::kMsixBarSize & ~(size - 1)), size, next()); break;
        case 2: m.cfg_write((r >> 16) % 256 & ~(std::min<size_t>(size, 4) - 1), std::min<size_t>(size, 4), static_cast<uint32_t>(next())); break;
        case 3: m.rd(kBar0 + ((r >> 16) % VirtioPci::kConfigBarSize & ~(size - 1)), size); break;
        case 4: m.mem.write_obj<uint64_t>(kDesc + ((r >> 16) % 0x3000 & ~7ull), next()); break;
        case 5:
            m.mem.write_obj<uint16_t>(kAvail + 2, static_cast<uint16_t>(m.avail_idx + (r >> 16) % 3));
            m.notify();
            break;
        case 6: m.cfg_read((r >> 16) % 256 & ~3u, 4); break;
        default:
            if ((r >> 16) % 64 == 0) {
                m.cfg_write(0x04, 2, pci::kCommandMemory | pci::kCommandMaster);
                m.cfg_write(0x10, 4, kBar0);
                m.cfg_write(0x14, 4, kBar1);
                m.init(virtio::kFVersion1 | virtio::kFRingIndirect);
            }
            break;
        }
    }
    // Restore a sane state and check the device still works.
    m.cfg_write(0x10, 4, kBar0);
    m.cfg_write(0x14, 4, kBar1);
    m.cfg_write(0x04, 2, pci::kCommandMemory | pci::kCommandMaster);
    const unsigned cap = m.find_msix();
    m.cfg_write(cap + 2, 2, 0);
    std::memset(m.ram.data() + kDesc, 0, 0x3000);
    REQUIRE(m.init());
    CHECK(m.request(virtio_blk::kTIn, 1, 512, true) == virtio_blk::kSOk);
    CHECK(std::memcmp(m.ram.data() + kData, m.disk.bytes.data() + 512, 512) == 0);
}
