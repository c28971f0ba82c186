// The disk's I/O thread (vmm/virtio_io_thread.hpp) on a real virtio-blk device and a real thread,
// without KVM: notifications reach it through the device (a write that exits) and through the
// routed eventfd (what KVM_IOEVENTFD signals); requests complete with an interrupt; a flush runs
// while the device lock is free; a driver reset waits for it; stop() finishes it; the route
// follows BAR0. scripts/test --tsan runs this too.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <tuple>
#include <vector>

#include "virtio_blk_fixture.hpp"
#include "vmm/kvm/machine_events.hpp"
#include "vmm/virtio_io_thread.hpp"

using namespace minivmm;
namespace t = minivmm::testing;

namespace {

using Call = std::tuple<uint64_t, uint32_t, bool>;  // gpa, length, assign

// The stand-in for Vm::ioeventfd: records the calls, keeps the routed eventfd.
struct Routes {
    std::mutex mutex;
    std::vector<Call> calls;
    int fd = -1;
    int refuse_any_length = 0;  // the errno for length 0 (a KVM before KVM_CAP_IOEVENTFD_ANY_LENGTH)
    NotifyRoute route() {
        return [this](uint64_t gpa, uint32_t length, int fd_, bool assign) noexcept {
            std::lock_guard g(mutex);
            if (assign && length == 0 && refuse_any_length) return refuse_any_length;
            calls.emplace_back(gpa, length, assign);
            fd = assign ? fd_ : -1;
            return 0;
        };
    }
    std::vector<Call> seen() {
        std::lock_guard g(mutex);
        return calls;
    }
    int routed_fd() {
        std::lock_guard g(mutex);
        return fd;
    }
};

// Waits (up to 10 s) until `done` holds, evaluated under `lock`.
template <typename F>
bool eventually(std::mutex& lock, F done) {
    for (int i = 0; i < 10000; ++i) {
        {
            std::lock_guard g(lock);
            if (done()) return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
}

// A backend operation held until the test lets it go.
struct Gate {
    std::mutex mutex;
    std::condition_variable cv;
    bool entered = false, released = false;
    void pass() {
        std::unique_lock g(mutex);
        entered = true;
        cv.notify_all();
        cv.wait(g, [&] { return released; });
    }
    bool wait_entered() {
        std::unique_lock g(mutex);
        return cv.wait_for(g, std::chrono::seconds(10), [&] { return entered; });
    }
    void release() {
        {
            std::lock_guard g(mutex);
            released = true;
        }
        cv.notify_all();
    }
};

struct Rig {
    t::Machine m;
    std::mutex lock;
    MachineEvents events;
    Routes routes;
    VirtioIoThread io{m.pci, routes.route(), lock, events};
    Rig() {
        io.start();
        REQUIRE(eventually(lock, [&] { return routes.routed_fd() >= 0; }));  // BAR0 was decoded already
        std::lock_guard g(lock);
        REQUIRE(m.init(virtio::kFVersion1 | virtio_blk::kFFlush));
    }
    void flush_request() {  // put a FLUSH on the ring, notified as KVM would
        {
            std::lock_guard g(lock);
            m.header(virtio_blk::kTFlush, 0);
            m.submit({{t::kHeader, 16, false}, {t::kStatus, 1, true}}, false);
        }
        const uint64_t one = 1;
        REQUIRE(::write(routes.routed_fd(), &one, sizeof one) == sizeof one);
    }
};

}  // namespace

TEST_CASE("virtio I/O thread: the notify route follows BAR0, on the thread") {
    for (int refuse : {0, EINVAL}) {
        CAPTURE(refuse);
        t::Machine m;
        std::mutex lock;
        MachineEvents events;
        Routes routes;
        routes.refuse_any_length = refuse;
        VirtioIoThread io(m.pci, routes.route(), lock, events);
        CHECK(routes.seen().empty());  // routes are made by the thread, once it runs
        io.start();
        const uint32_t len = refuse ? 2 : 0;  // any length, or the 16-bit write where KVM refuses 0
        const uint64_t at = t::kBar0 + VirtioPci::kNotifyOffset, moved = 0xFD00'0000 + VirtioPci::kNotifyOffset;
        REQUIRE(eventually(lock, [&] { return routes.seen().size() == 1; }));
        {
            std::lock_guard g(lock);
            m.cfg_write(0x10, 4, 0xFD00'0000);  // moved while decoded
        }
        REQUIRE(eventually(lock, [&] { return routes.seen().size() == 3; }));
        {
            std::lock_guard g(lock);
            m.cfg_write(0x04, 2, pci::kCommandMaster);  // decode off: the route goes
        }
        REQUIRE(eventually(lock, [&] { return routes.seen().size() == 4; }));
        io.stop();
        CHECK(routes.seen() == std::vector<Call>{Call{at, len, true}, Call{at, len, false}, Call{moved, len, true},
                                                 Call{moved, len, false}});
    }
}

TEST_CASE("virtio I/O thread: serves requests, flushes without the device lock") {
    Rig r;
    // A write, notified by a write that reached the device.
    {
        std::lock_guard g(r.lock);
        for (unsigned i = 0; i < 1024; ++i) r.m.ram[t::kData + i] = static_cast<uint8_t>(i * 5 + 3);
        r.m.header(virtio_blk::kTOut, 7);
        r.m.submit({{t::kHeader, 16, false}, {t::kData, 1024, false}, {t::kStatus, 1, true}});
    }
    REQUIRE(eventually(r.lock, [&] { return r.m.used_idx() == 1; }));
    {
        std::lock_guard g(r.lock);
        CHECK(*r.m.mem.read_obj<uint8_t>(t::kStatus) == virtio_blk::kSOk);
        CHECK(std::memcmp(r.m.disk.bytes.data() + 7 * 512, r.m.ram.data() + t::kData, 1024) == 0);
        CHECK(r.m.irq.level);  // INTx, raised by the I/O thread
        CHECK(r.m.read_isr() == virtio::kIsrQueue);
    }
    // A flush held in the backend: meanwhile a vCPU takes the device lock and reads a register.
    Gate gate;
    r.m.disk.on_flush = [&] { gate.pass(); };
    r.flush_request();
    REQUIRE(gate.wait_entered());
    bool lock_was_free = false;
    for (int i = 0; i < 1000 && !lock_was_free; ++i) {
        std::unique_lock g(r.lock, std::try_to_lock);
        if (g.owns_lock()) {
            lock_was_free = true;
            CHECK(r.m.used_idx() == 1);  // the flush is not done yet
            CHECK((r.m.status() & virtio::kStatusDriverOk) != 0);
        } else {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }
    CHECK(lock_was_free);
    gate.release();
    REQUIRE(eventually(r.lock, [&] { return r.m.used_idx() == 2; }));
    {
        std::lock_guard g(r.lock);
        CHECK(*r.m.mem.read_obj<uint8_t>(t::kStatus) == virtio_blk::kSOk);
        CHECK(r.m.disk.flushes == 1);
    }
    r.io.stop();
    r.io.stop();  // idempotent
    CHECK_FALSE(r.events.pending());
}

TEST_CASE("virtio I/O thread: a driver reset waits for the request in service") {
    Rig r;
    Gate gate;
    r.m.disk.on_flush = [&] { gate.pass(); };
    r.flush_request();
    REQUIRE(gate.wait_entered());
    {
        std::lock_guard g(r.lock);
        r.m.set_common(t::STATUS, 1, 0);
        CHECK(r.m.status() != 0);  // not yet: the driver keeps reading until it is 0
    }
    gate.release();
    REQUIRE(eventually(r.lock, [&] { return r.m.status() == 0; }));
    std::lock_guard g(r.lock);
    CHECK(r.m.used_idx() == 0);  // and no completion for it
    CHECK(r.m.disk.flushes == 1);
}

TEST_CASE("virtio I/O thread: stop() finishes the request in hand") {
    Rig r;
    Gate gate;
    r.m.disk.on_flush = [&] { gate.pass(); };
    r.flush_request();
    REQUIRE(gate.wait_entered());
    std::thread stopper([&] { r.io.stop(); });
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    gate.release();
    stopper.join();
    std::lock_guard g(r.lock);
    CHECK(r.m.used_idx() == 1);
    CHECK(*r.m.mem.read_obj<uint8_t>(t::kStatus) == virtio_blk::kSOk);
}
