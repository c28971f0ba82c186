// virtio-pci queues served by another thread (devices/virtio_pci.hpp QueueNotifier, take / serve /
// finish; the VMM's thread is vmm/virtio_io_thread.hpp): where notifications go, where the notify
// address is reported as BAR0 moves, and completions of requests taken before a driver reset.
#include <doctest/doctest.h>

#include <cstring>
#include <optional>
#include <vector>

#include "virtio_blk_fixture.hpp"

using namespace minivmm;
using namespace minivmm::testing;

namespace {

struct RecordingNotifier final : QueueNotifier {
    std::vector<uint16_t> kicks;
    std::vector<std::optional<uint64_t>> bases;
    void notify(uint16_t queue) noexcept override { kicks.push_back(queue); }
    void notify_base_changed(std::optional<uint64_t> base) noexcept override { bases.push_back(base); }
};

// The server's steps, as vmm/virtio_io_thread.cpp runs them (here on one thread).
unsigned serve_all(VirtioPci& pci, VirtioPci::Request& request) {
    unsigned n = 0;
    while (pci.take(0, request)) {
        pci.finish(0, request, pci.serve(0, request));
        ++n;
    }
    pci.interrupt_if_used(0);
    return n;
}

}  // namespace

TEST_CASE("virtio-pci: a served-elsewhere queue's notify only wakes the server") {
    RecordingNotifier notifier;
    Machine m;
    m.pci.set_queue_notifier(&notifier);
    REQUIRE(m.init(virtio::kFVersion1 | virtio_blk::kFFlush));
    for (unsigned i = 0; i < 512; ++i) m.ram[kData + i] = static_cast<uint8_t>(i * 3 + 1);
    m.header(virtio_blk::kTOut, 5);
    m.submit({{kHeader, 16, false}, {kData, 512, false}, {kStatus, 1, true}});
    CHECK(notifier.kicks == std::vector<uint16_t>{0});
    CHECK(m.used_idx() == 0);  // nothing served in the notify write
    CHECK(m.disk.bytes[5 * 512] != m.ram[kData]);
    CHECK_FALSE(m.irq.level);

    VirtioPci::Request request;
    CHECK(serve_all(m.pci, request) == 1);
    CHECK(m.used_idx() == 1);
    CHECK(*m.mem.read_obj<uint8_t>(kStatus) == virtio_blk::kSOk);
    CHECK(std::memcmp(m.disk.bytes.data() + 5 * 512, m.ram.data() + kData, 512) == 0);
    CHECK(m.irq.level);  // INTx: the server's interrupt_if_used raised it
    CHECK(m.read_isr() == virtio::kIsrQueue);
    m.pci.interrupt_if_used(0);  // nothing new used: no second interrupt
    CHECK_FALSE(m.irq.level);

    // A queue that does not exist is not handed on.
    m.wr(kBar0 + VirtioPci::kNotifyOffset + 4, 2, 1);
    CHECK(notifier.kicks.size() == 1);
    m.pci.set_queue_notifier(nullptr);
}

TEST_CASE("virtio-pci: the notify address follows BAR0") {
    RecordingNotifier notifier;
    Machine m;  // BAR0 is already at kBar0 with memory decode on
    m.pci.set_queue_notifier(&notifier);  // hears where it is at once
    m.cfg_write(0x04, 2, pci::kCommandMaster);  // decode off
    m.cfg_write(0x10, 4, 0xFD00'0000);
    m.cfg_write(0x04, 2, pci::kCommandMemory | pci::kCommandMaster);
    m.cfg_write(0x14, 4, 0xFD00'4000);  // BAR1 moving is not reported
    m.cfg_write(0x10, 4, 0xFD10'0000);  // moved while decoded
    using B = std::optional<uint64_t>;
    CHECK(notifier.bases == std::vector<B>{B{kBar0 + VirtioPci::kNotifyOffset}, std::nullopt,
                                           B{0xFD00'0000 + VirtioPci::kNotifyOffset},
                                           B{0xFD10'0000 + VirtioPci::kNotifyOffset}});
    m.pci.set_queue_notifier(nullptr);
}

TEST_CASE("virtio-pci: a driver reset waits for the requests in service") {
    RecordingNotifier notifier;
    Machine m;
    m.pci.set_queue_notifier(&notifier);
    REQUIRE(m.init());
    m.header(virtio_blk::kTIn, 0);
    m.submit({{kHeader, 16, false}, {kData, 512, true}, {kStatus, 1, true}});
    VirtioPci::Request request;
    REQUIRE(m.pci.take(0, request));
    // The driver resets while the I/O runs (§4.1.4.3.2: it then waits for device_status to read 0).
    m.set_common(STATUS, 1, 0);
    CHECK(m.pci.reset_waiting());
    CHECK(m.status() != 0);
    CHECK(m.common(QENABLE, 2) == 1);
    m.set_common(STATUS, 1, virtio::kStatusAcknowledge);  // too early: ignored
    CHECK(m.status() != virtio::kStatusAcknowledge);
    VirtioPci::Request other;
    CHECK_FALSE(m.pci.take(0, other));  // nothing new is taken meanwhile
    const uint32_t written = m.pci.serve(0, request);  // the I/O, outside the device lock
    CHECK(written == 513);
    m.pci.finish(0, request, written);  // the last one: the reset happens now
    CHECK_FALSE(m.pci.reset_waiting());
    CHECK(m.status() == 0);
    CHECK(m.common(QENABLE, 2) == 0);
    m.pci.interrupt_if_used(0);
    CHECK(m.used_idx() == 0);  // no completion for the request the driver gave up
    CHECK(m.pci.queue(0).used_idx() == 0);
    CHECK_FALSE(m.irq.level);
    REQUIRE(m.init());  // and the driver can set the device up again

    // Not live (before DRIVER_OK): nothing to take.
    REQUIRE(m.init(virtio::kFVersion1, false));
    m.header(virtio_blk::kTIn, 0);
    m.submit({{kHeader, 16, false}, {kData, 512, true}, {kStatus, 1, true}});
    CHECK_FALSE(m.pci.take(0, request));
    m.pci.set_queue_notifier(nullptr);
}

TEST_CASE("virtio-pci: a malformed chain is served as length 0") {
    RecordingNotifier notifier;
    Machine m;
    m.pci.set_queue_notifier(&notifier);
    REQUIRE(m.init());
    m.submit({{0x7FFF'FFFF'0000, 16, false}, {kStatus, 1, true}});  // a buffer outside guest RAM
    VirtioPci::Request request;
    REQUIRE(m.pci.take(0, request));
    CHECK(request.chain.error != Virtqueue::ChainError::none);
    CHECK(m.pci.serve(0, request) == 0);
    m.pci.finish(0, request, 0);
    CHECK(m.used_idx() == 1);
    CHECK(m.last_used_len() == 0);
    m.pci.set_queue_notifier(nullptr);
}
