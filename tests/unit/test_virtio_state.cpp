// VirtioPci / VirtioBlk snapshots (devices/device_state.hpp): a guest drives the device through its
// registers and queue, the machine saves it (device blobs + guest RAM), a new machine loads them,
// and the restored device answers and serves the next request as the saved one would.
#include <doctest/doctest.h>

#include "tests/unit/virtio_blk_fixture.hpp"

using namespace minivmm;
using namespace minivmm::testing;

namespace {

// What the machine saves: every device blob (functions before the host) and guest RAM.
struct Snapshot {
    std::vector<uint8_t> blk, host, ram;
    explicit Snapshot(Machine& m) : blk(saved_state(m.pci)), host(saved_state(m.host)), ram(m.ram) {}
    void restore(Machine& m) const {
        std::copy(ram.begin(), ram.end(), m.ram.begin());
        REQUIRE(m.pci.load_state(blk));
        REQUIRE(m.host.load_state(host));
    }
};

// Every common-config field of every queue, the ISR-free part of the device as the driver reads it.
std::vector<uint64_t> registers(Machine& m) {
    std::vector<uint64_t> r;
    const uint64_t qsel = m.common(QSEL, 2);
    for (uint32_t off : {DFSEL, GFSEL, MSIXCFG, NUMQ, STATUS, GEN}) r.push_back(m.common(off, off >= NUMQ ? 2 : 4));
    r.push_back(m.device_features());
    for (uint32_t sel : {0u, 1u}) {
        m.set_common(GFSEL, 4, sel);
        r.push_back(m.common(GF, 4));
    }
    m.set_common(GFSEL, 4, r[1]);
    for (uint16_t q = 0; q < 2; ++q) {
        m.set_common(QSEL, 2, q);
        for (uint32_t off : {QSIZE, QMSIX, QENABLE, QNOFF}) r.push_back(m.common(off, 2));
        for (uint32_t off : {QDESC, QAVAIL, QUSED}) r.push_back(m.common(off, 8));
    }
    m.set_common(QSEL, 2, qsel);
    for (unsigned reg = 0; reg < 256; reg += 4) r.push_back(m.cfg_read(reg, 4));
    for (uint64_t off = 0; off < 32; off += 4) r.push_back(m.rd(kBar1 + off, 4));
    r.push_back(m.rd(kBar1 + VirtioPci::kMsixPbaOffset, 8));
    return r;
}

// A stopped I/O thread: hears the notification and does nothing with it.
struct StoppedThread final : QueueNotifier {
    int notified = 0;
    void notify(uint16_t) noexcept override { ++notified; }
    void notify_base_changed(std::optional<uint64_t>) noexcept override {}
};

}  // namespace

TEST_CASE("virtio state: INTx pending, queue indices and registers come back; the next request is served") {
    Machine a;
    REQUIRE(a.init());
    CHECK(a.request(virtio_blk::kTIn, 1, 512, true) == virtio_blk::kSOk);
    CHECK(a.request(virtio_blk::kTGetId, 0, 20, true) == virtio_blk::kSOk);
    a.set_common(DFSEL, 4, 1);
    a.set_common(QSEL, 2, 7);  // no such queue: reads size 0
    REQUIRE(a.irq.level);      // INTA# asserted, ISR not read yet
    REQUIRE(a.pci.idle());
    const Snapshot snap(a);

    Machine b(128 * 512, false, false);
    CHECK_FALSE(b.irq.level);
    snap.restore(b);
    CHECK(b.irq.level);  // load_state drove the line to the saved level
    CHECK(b.irq.raises == 1);
    CHECK(saved_state(b.pci) == snap.blk);
    CHECK(registers(b) == registers(a));
    CHECK(b.pci.queue(0).used_idx() == 2);
    // The ISR reads and clears the same way, dropping the line.
    CHECK(b.read_isr() == a.read_isr());
    CHECK((!b.irq.level && !a.irq.level));
    // The next request: served on both, same used ring, same disk effect.
    b.avail_idx = a.avail_idx;
    for (Machine* m : {&a, &b}) {
        for (int i = 0; i < 512; ++i) m->ram[kData + i] = static_cast<uint8_t>(i * 7);
        CHECK(m->request(virtio_blk::kTOut, 3, 512, false) == virtio_blk::kSOk);
        CHECK((m->used_idx() == 3 && m->last_used_len() == 1 && m->irq.level));
    }
    CHECK(std::equal(b.disk.bytes.begin() + 3 * 512, b.disk.bytes.begin() + 4 * 512, b.ram.begin() + kData));
}

TEST_CASE("virtio state: MSI-X table, vectors and a pending message come back; unmask sends it") {
    Machine a;
    const unsigned cap = a.find_msix();
    a.wr(kBar1 + 16, 4, 0xFEE0'1000);
    a.wr(kBar1 + 16 + 8, 4, 0x4041);
    a.cfg_write(cap + 2, 2, 0x8000);  // MSI-X on
    REQUIRE(a.init());
    a.set_common(MSIXCFG, 2, 0);
    a.set_common(QMSIX, 2, 1);
    a.request(virtio_blk::kTIn, 0, 512, true);  // vector 1 masked: pending
    REQUIRE(a.rd(kBar1 + VirtioPci::kMsixPbaOffset, 8) == 0b10);
    const Snapshot snap(a);

    Machine b(128 * 512, false, false);
    snap.restore(b);
    CHECK(registers(b) == registers(a));
    CHECK((b.msi.messages.empty() && !b.irq.level));
    b.wr(kBar1 + 16 + 12, 4, 0);  // unmask
    REQUIRE(b.msi.messages.size() == 1);
    CHECK(b.msi.messages[0] == std::pair<uint64_t, uint32_t>{0xFEE0'1000, 0x4041});
    b.avail_idx = a.avail_idx;
    b.request(virtio_blk::kTIn, 0, 512, true);
    CHECK((b.msi.messages.size() == 2 && b.used_idx() == 2));
}

TEST_CASE("virtio state: a request posted before the save is served after restore") {
    SUBCASE("notified, but the I/O thread had stopped: resume_queues serves it") {
        Machine a;
        REQUIRE(a.init());
        StoppedThread stopped;
        a.pci.set_queue_notifier(&stopped);
        a.request(virtio_blk::kTIn, 2, 512, true);
        REQUIRE((stopped.notified == 1 && a.used_idx() == 0 && a.pci.idle()));
        const Snapshot snap(a);
        Machine b(128 * 512, false, false);
        snap.restore(b);
        CHECK(b.used_idx() == 0);
        b.pci.resume_queues();
        CHECK((b.used_idx() == 1 && b.ram[kStatus] == virtio_blk::kSOk && b.irq.level));
        CHECK(std::equal(b.ram.begin() + kData, b.ram.begin() + kData + 512, b.disk.bytes.begin() + 2 * 512));
        b.pci.resume_queues();  // nothing more to serve
        CHECK(b.used_idx() == 1);
    }
    SUBCASE("not yet notified: the driver's notify after restore serves it") {
        Machine a;
        REQUIRE(a.init());
        a.header(virtio_blk::kTGetId, 0);
        a.submit({{kHeader, 16, false}, {kData, 20, true}, {kStatus, 1, true}}, false);
        const Snapshot snap(a);
        Machine b(128 * 512, false, false);
        snap.restore(b);
        b.notify();
        CHECK((b.used_idx() == 1 && b.ram[kStatus] == virtio_blk::kSOk));
        CHECK(std::string(reinterpret_cast<const char*>(&b.ram[kData])) == virtio_blk::kSerial);
    }
}

TEST_CASE("virtio state: a save while a request is in service is refused at load; idle() tells it") {
    Machine a;
    REQUIRE(a.init());
    StoppedThread thread;
    a.pci.set_queue_notifier(&thread);
    a.request(virtio_blk::kTIn, 0, 512, true);
    VirtioPci::Request req;
    REQUIRE(a.pci.take(0, req));
    CHECK_FALSE(a.pci.idle());
    const std::vector<uint8_t> busy = saved_state(a.pci);
    a.pci.finish(0, req, a.pci.serve(0, req));
    CHECK_FALSE(a.pci.idle());  // used, its interrupt not yet sent
    const std::vector<uint8_t> owed = saved_state(a.pci);
    a.pci.interrupt_if_used(0);
    CHECK(a.pci.idle());
    Machine b(128 * 512, false, false);
    const std::vector<uint8_t> before = saved_state(b.pci);
    CHECK_FALSE(b.pci.load_state(busy));
    CHECK_FALSE(b.pci.load_state(owed));
    CHECK(saved_state(b.pci) == before);
    CHECK(b.pci.load_state(saved_state(a.pci)));
}
