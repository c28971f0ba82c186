// MachineEvents (vmm/kvm/machine_events.hpp): the first event of a run wins, whichever thread posts
// it, and its eventfd becomes readable exactly once. Also run under ThreadSanitizer
// (scripts/test --tsan), where the many-threads cases check the locking, not just the outcome.
#include <doctest/doctest.h>

#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "vmm/kvm/machine_events.hpp"

using namespace minivmm;

namespace {

// True if fd polls readable within `ms` milliseconds.
bool readable(int fd, int ms) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

// Reads the eventfd counter; -1 if nothing is pending (EFD_NONBLOCK).
int64_t drain(int fd) {
    uint64_t v = 0;
    return ::read(fd, &v, sizeof v) == static_cast<ssize_t>(sizeof v) ? static_cast<int64_t>(v) : -1;
}

using Kind = MachineEvents::Kind;

}  // namespace

TEST_CASE("MachineEvents: nothing pending at first, fd not readable") {
    MachineEvents ev;
    CHECK_FALSE(ev.pending());
    CHECK(ev.kind() == Kind::none);
    CHECK(ev.message().empty());
    REQUIRE(ev.fd() >= 0);
    CHECK_FALSE(readable(ev.fd(), 0));
    CHECK(drain(ev.fd()) == -1);
}

TEST_CASE("MachineEvents: the first event wins, later ones are ignored, the fd fires once") {
    MachineEvents ev;
    SUBCASE("SystemControl: power-off, then reset") {
        SystemControl& sc = ev;
        sc.request_poweroff();
        sc.request_reset();
        ev.post(Kind::fatal, "too late");
        CHECK(ev.kind() == Kind::poweroff);
        CHECK(ev.message() == "guest powered off");
    }
    SUBCASE("SystemControl: reset, then power-off") {
        ev.request_reset();
        ev.request_poweroff();
        CHECK(ev.kind() == Kind::reset);
        CHECK(ev.message() == "guest requested a reset");
    }
    SUBCASE("a fatal error keeps its message") {
        ev.post(Kind::fatal, "vCPU 1: KVM_EXIT_INTERNAL_ERROR");
        ev.post(Kind::quit, "user pressed Ctrl-A x");
        CHECK(ev.kind() == Kind::fatal);
        CHECK(ev.message() == "vCPU 1: KVM_EXIT_INTERNAL_ERROR");
    }
    CHECK(ev.pending());
    CHECK(readable(ev.fd(), 0));
    CHECK(drain(ev.fd()) == 1);  // one write, however many posts
    CHECK_FALSE(readable(ev.fd(), 0));
    CHECK(ev.pending());         // draining the fd does not clear the event
}

TEST_CASE("MachineEvents: many threads post at once, exactly one wins, message matches kind") {
    constexpr int kThreads = 8;
    constexpr int kPostsPerThread = 200;
    for (int round = 0; round < 20; ++round) {
        MachineEvents ev;
        std::atomic<int> ready{0};
        std::atomic<bool> go{false};
        std::vector<std::thread> threads;
        // A thread that waits on the fd the way the main loop does, concurrently with the posts.
        std::atomic<bool> woke{false};
        std::thread waiter([&] { woke = readable(ev.fd(), 10000); });
        // Readers poll pending()/kind()/message() while the posts race (the vCPU loops do this).
        std::atomic<bool> inconsistent{false};
        std::thread reader([&] {
            while (!go.load()) std::this_thread::yield();
            for (int i = 0; i < 2000; ++i) {
                if (ev.pending() && ev.kind() == Kind::none) inconsistent = true;
                (void)ev.message();
            }
        });
        for (int t = 0; t < kThreads; ++t) {
            threads.emplace_back([&, t] {
                const Kind kind = t % 4 == 0 ? Kind::reset : t % 4 == 1 ? Kind::poweroff : t % 4 == 2 ? Kind::fatal : Kind::quit;
                ++ready;
                while (!go.load()) std::this_thread::yield();
                for (int i = 0; i < kPostsPerThread; ++i) ev.post(kind, "thread " + std::to_string(t));
            });
        }
        while (ready.load() < kThreads) std::this_thread::yield();
        go = true;
        for (auto& th : threads) th.join();
        reader.join();
        waiter.join();
        CHECK(woke.load());
        CHECK_FALSE(inconsistent.load());
        REQUIRE(ev.pending());
        const std::string msg = ev.message();
        REQUIRE(msg.rfind("thread ", 0) == 0);
        const int winner = std::stoi(msg.substr(7));
        REQUIRE(winner >= 0);
        REQUIRE(winner < kThreads);
        const Kind expect = winner % 4 == 0 ? Kind::reset : winner % 4 == 1 ? Kind::poweroff
                          : winner % 4 == 2 ? Kind::fatal : Kind::quit;
        CHECK(ev.kind() == expect);
        CHECK(drain(ev.fd()) == 1);  // the eventfd was written once, by the winner only
        CHECK_FALSE(readable(ev.fd(), 0));
    }
}
