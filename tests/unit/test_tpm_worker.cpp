// TpmWorker (vmm/tpm/tpm_worker.hpp) with a scripted TpmBackend: ordering, non-blocking submit,
// cancel forwarding and destruction while a command runs.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "vmm/tpm/tpm_worker.hpp"

using namespace minivmm;
using namespace std::chrono_literals;

namespace {

// Answers each command with its own bytes; execute() can be held at a gate.
class FakeBackend final : public TpmBackend {
public:
    TpmVersion version() const noexcept override { return TpmVersion::v2_0; }
    size_t buffer_size() const noexcept override { return 64; }
    void limit_buffer_size(size_t) noexcept override {}
    bool power_cycle() noexcept override { return true; }
    size_t execute(uint8_t locality, std::span<const uint8_t> command, std::span<uint8_t> response) noexcept override {
        std::unique_lock lock(m);
        ++started;
        localities.push_back(locality);
        changed.notify_all();
        changed.wait(lock, [this] { return gate_open; });
        size_t n = std::min(command.size(), response.size());
        std::copy_n(command.begin(), n, response.begin());
        ++finished;
        changed.notify_all();
        return n;
    }
    void cancel() noexcept override { ++cancels; }
    bool established() noexcept override { return est; }
    void reset_established(uint8_t locality) noexcept override {
        reset_thread = std::this_thread::get_id();
        reset_locality = locality;
    }
    void shutdown() noexcept override {}

    void close_gate() {
        std::lock_guard lock(m);
        gate_open = false;
    }
    void open_gate() {
        std::lock_guard lock(m);
        gate_open = true;
        changed.notify_all();
    }
    void wait_started(int n) {
        std::unique_lock lock(m);
        REQUIRE(changed.wait_for(lock, 5s, [&] { return started >= n; }));
    }

    std::mutex m;
    std::condition_variable changed;
    bool gate_open = true;
    int started = 0;
    int finished = 0;
    std::vector<uint8_t> localities;
    std::atomic<int> cancels{0};
    std::atomic<bool> est{true};
    std::atomic<int> reset_locality{-1};
    std::thread::id reset_thread;
};

struct Collector {
    std::mutex m;
    std::condition_variable cv;
    std::vector<std::vector<uint8_t>> responses;
    void operator()(std::span<const uint8_t> r) {
        std::lock_guard lock(m);
        responses.emplace_back(r.begin(), r.end());
        cv.notify_all();
    }
    bool wait_for(size_t n) {
        std::unique_lock lock(m);
        return cv.wait_for(lock, 5s, [&] { return responses.size() >= n; });
    }
    size_t count() {
        std::lock_guard lock(m);
        return responses.size();
    }
};

}  // namespace

TEST_CASE("worker delivers responses in submission order") {
    FakeBackend backend;
    Collector got;
    TpmWorker worker(backend, [&](std::span<const uint8_t> r) { got(r); });
    CHECK(worker.version() == TpmVersion::v2_0);
    CHECK(worker.buffer_size() == 64);
    for (uint8_t i = 0; i < 5; ++i) {
        const uint8_t cmd[] = {0x80, 0x01, 0, 0, 0, 11, 0, 0, 0, 0, i};
        worker.submit(i % 3, cmd);
    }
    REQUIRE(got.wait_for(5));
    for (uint8_t i = 0; i < 5; ++i) {
        REQUIRE(got.responses[i].size() == 11);
        CHECK(got.responses[i][10] == i);
    }
    std::lock_guard lock(backend.m);
    CHECK(backend.localities == std::vector<uint8_t>{0, 1, 2, 0, 1});
}

TEST_CASE("submit copies the command and does not wait for the backend") {
    FakeBackend backend;
    backend.close_gate();
    Collector got;
    TpmWorker worker(backend, [&](std::span<const uint8_t> r) { got(r); });
    std::vector<uint8_t> cmd = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    auto t0 = std::chrono::steady_clock::now();
    worker.submit(0, cmd);
    CHECK(std::chrono::steady_clock::now() - t0 < 100ms);
    std::fill(cmd.begin(), cmd.end(), 0xee);  // the worker has its own copy
    backend.wait_started(1);
    CHECK(worker.outstanding() == 1);
    CHECK(got.count() == 0);
    backend.open_gate();
    REQUIRE(got.wait_for(1));
    CHECK(got.responses[0] == std::vector<uint8_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
}

TEST_CASE("cancel reaches the backend only while a command executes") {
    FakeBackend backend;
    Collector got;
    TpmWorker worker(backend, [&](std::span<const uint8_t> r) { got(r); });
    worker.cancel();
    CHECK(backend.cancels == 0);
    backend.close_gate();
    const uint8_t cmd[10] = {};
    worker.submit(0, cmd);
    backend.wait_started(1);
    worker.cancel();
    CHECK(backend.cancels == 1);
    backend.open_gate();
    REQUIRE(got.wait_for(1));
}

TEST_CASE("established is cached by the worker, and reset_established is forwarded") {
    FakeBackend backend;
    TpmWorker worker(backend, [](std::span<const uint8_t>) {});
    CHECK(worker.established());  // read once when the worker starts
    backend.est = false;
    CHECK(worker.established());  // the caller (a vCPU) never asks the backend (swtpm: a socket round trip)
    worker.reset_established(3);
    // Run by the worker thread (not the caller, a vCPU), in order after queued commands.
    for (int i = 0; i < 500 && backend.reset_locality.load() != 3; ++i) std::this_thread::sleep_for(1ms);
    CHECK(backend.reset_locality == 3);
    CHECK(backend.reset_thread != std::this_thread::get_id());
    REQUIRE(worker.wait_idle(std::chrono::seconds(5)));
    CHECK_FALSE(worker.established());  // the worker read it again after the job
    backend.est = true;
    const uint8_t cmd[10] = {0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x44};
    worker.submit(0, cmd);
    REQUIRE(worker.wait_idle(std::chrono::seconds(5)));
    CHECK(worker.established());  // and after each command
}

TEST_CASE("reset_established waits behind a running command, never blocks the caller") {
    FakeBackend backend;
    backend.close_gate();
    TpmWorker worker(backend, [](std::span<const uint8_t>) {});
    const uint8_t cmd[10] = {};
    worker.submit(0, cmd);
    backend.wait_started(1);
    const auto start = std::chrono::steady_clock::now();
    worker.reset_established(4);  // the worker is busy: queued, not run here
    CHECK(std::chrono::steady_clock::now() - start < 1s);
    CHECK(backend.reset_locality == -1);
    backend.open_gate();
    for (int i = 0; i < 500 && backend.reset_locality.load() != 4; ++i) std::this_thread::sleep_for(1ms);
    CHECK(backend.reset_locality == 4);
}

TEST_CASE("destructor waits for the command in flight and drops its completion") {
    FakeBackend backend;
    backend.close_gate();
    std::atomic<int> calls{0};
    auto worker = std::make_unique<TpmWorker>(backend, [&](std::span<const uint8_t>) { ++calls; });
    const uint8_t cmd[10] = {};
    worker->submit(0, cmd);
    worker->submit(1, cmd);  // queued behind the first: dropped
    backend.wait_started(1);
    std::thread opener([&] {
        std::this_thread::sleep_for(100ms);
        backend.open_gate();
    });
    auto t0 = std::chrono::steady_clock::now();
    worker.reset();
    auto waited = std::chrono::steady_clock::now() - t0;
    opener.join();
    CHECK(waited >= 80ms);  // it really waited for execute() to return
    {
        std::lock_guard lock(backend.m);
        CHECK(backend.finished == 1);
        CHECK(backend.started == 1);
    }
    std::this_thread::sleep_for(50ms);
    CHECK(calls == 0);
}

TEST_CASE("destructor waits for a completion callback that is running") {
    FakeBackend backend;
    std::atomic<bool> in_callback{false};
    std::atomic<bool> callback_done{false};
    auto worker = std::make_unique<TpmWorker>(backend, [&](std::span<const uint8_t>) {
        in_callback = true;
        std::this_thread::sleep_for(100ms);
        callback_done = true;
    });
    const uint8_t cmd[10] = {};
    worker->submit(0, cmd);
    for (int i = 0; i < 500 && !in_callback; ++i) std::this_thread::sleep_for(1ms);
    REQUIRE(in_callback);
    worker.reset();
    CHECK(callback_done);
}

TEST_CASE("a flood of submissions is bounded") {
    FakeBackend backend;
    backend.close_gate();
    Collector got;
    TpmWorker worker(backend, [&](std::span<const uint8_t> r) { got(r); });
    const uint8_t cmd[10] = {};
    worker.submit(0, cmd);
    backend.wait_started(1);
    for (int i = 0; i < 100; ++i) worker.submit(0, cmd);
    CHECK(worker.outstanding() == 1 + TpmWorker::kMaxQueued);
    backend.open_gate();
    REQUIRE(got.wait_for(1 + TpmWorker::kMaxQueued));
    std::this_thread::sleep_for(20ms);
    CHECK(got.count() == 1 + TpmWorker::kMaxQueued);
}

TEST_CASE("wait_idle returns once the completion was delivered, or false at its limit") {
    FakeBackend backend;
    Collector got;
    TpmWorker worker(backend, [&](std::span<const uint8_t> r) { got(r); });
    CHECK(worker.wait_idle(0us));  // nothing submitted: idle at once
    backend.close_gate();
    const uint8_t cmd[] = {0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0};
    worker.submit(0, cmd);
    backend.wait_started(1);
    const auto t0 = std::chrono::steady_clock::now();
    CHECK_FALSE(worker.wait_idle(20ms));  // the command is held: the wait ends at its bound
    CHECK(std::chrono::steady_clock::now() - t0 >= 20ms);
    CHECK(got.count() == 0);
    std::thread opener([&] {
        std::this_thread::sleep_for(10ms);
        backend.open_gate();
    });
    CHECK(worker.wait_idle(5s));  // woken by the end of the command, long before the bound
    CHECK(got.count() == 1);      // and its response is already delivered
    opener.join();
}
