// TpmWorker's per-boot statistics (what TpmSlot::check_boot reads at the end of a boot: PCR extends, TPM
// failure answers, commands the guest gave up on) and the abandoning of a stalled command when
// the worker is destroyed (machine reset and exit never wait for a stalled external TPM).
#include <doctest/doctest.h>

#include <atomic>
#include <functional>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "vmm/tpm/tpm_worker.hpp"

using namespace minivmm;
using namespace std::chrono_literals;

namespace {

std::vector<uint8_t> header(uint16_t tag, uint32_t code) {
    std::vector<uint8_t> h = {static_cast<uint8_t>(tag >> 8), static_cast<uint8_t>(tag), 0, 0, 0, 10};
    for (int s = 24; s >= 0; s -= 8) h.push_back(static_cast<uint8_t>(code >> s));
    return h;
}

// Answers with the response code `rc_for(ordinal)`; a command with ordinal `stall` waits until
// abandon() or release().
class ScriptedBackend final : public TpmBackend {
public:
    explicit ScriptedBackend(TpmVersion v) : v_(v) {}
    TpmVersion version() const noexcept override { return v_; }
    size_t buffer_size() const noexcept override { return 64; }
    void limit_buffer_size(size_t) noexcept override {}
    bool power_cycle() noexcept override { return true; }
    size_t execute(uint8_t, std::span<const uint8_t> command, std::span<uint8_t> response) noexcept override {
        uint32_t ordinal = uint32_t{command[6]} << 24 | uint32_t{command[7]} << 16 | uint32_t{command[8]} << 8 | command[9];
        if (ordinal == stall) {
            std::unique_lock lock(m);
            stalled = true;
            cv.notify_all();
            cv.wait(lock, [this] { return abandoned || released; });
        }
        auto r = header(v_ == TpmVersion::v2_0 ? 0x8001 : 0x00c4, rc_for(ordinal));
        std::copy(r.begin(), r.end(), response.begin());
        return r.size();
    }
    void cancel() noexcept override {}
    bool established() noexcept override { return false; }
    void reset_established(uint8_t) noexcept override {}
    void abandon() noexcept override {
        std::lock_guard lock(m);
        abandoned = true;
        cv.notify_all();
    }
    void shutdown() noexcept override {}
    void release() {
        std::lock_guard lock(m);
        released = true;
        cv.notify_all();
    }
    bool wait_stalled() {
        std::unique_lock lock(m);
        return cv.wait_for(lock, 5s, [this] { return stalled; });
    }

    std::function<uint32_t(uint32_t)> rc_for = [](uint32_t) { return 0u; };
    uint32_t stall = 0xffffffff;
    std::mutex m;
    std::condition_variable cv;
    bool stalled = false, abandoned = false, released = false;

private:
    TpmVersion v_;
};

struct Counter {
    std::mutex m;
    std::condition_variable cv;
    size_t n = 0;
    void operator()(std::span<const uint8_t>) {
        std::lock_guard lock(m);
        ++n;
        cv.notify_all();
    }
    bool wait_for(size_t want) {
        std::unique_lock lock(m);
        return cv.wait_for(lock, 5s, [&] { return n >= want; });
    }
};

}  // namespace

TEST_CASE("TPM 2.0: successful PCR_Extend and PCR_Event count as measurements, TPM_RC_FAILURE as failures") {
    ScriptedBackend tpm(TpmVersion::v2_0);
    tpm.rc_for = [](uint32_t cc) { return cc == 0x17B /* GetRandom */ ? 0x101u : cc == 0x13C ? 0x98eu : 0u; };
    Counter done;
    TpmWorker worker(tpm, std::ref(done));
    worker.submit(0, header(0x8002, 0x182));  // PCR_Extend, success
    worker.submit(0, header(0x8002, 0x182));
    worker.submit(0, header(0x8002, 0x13C));  // PCR_Event answered with an error: not a measurement
    worker.submit(0, header(0x8001, 0x17B));  // GetRandom answered TPM_RC_FAILURE
    worker.submit(0, header(0x8001, 0x144));  // Startup
    REQUIRE(done.wait_for(5));
    auto s = worker.stats();
    CHECK(s.commands == 5);
    CHECK(s.extends == 2);
    CHECK(s.failures == 1);
    CHECK(s.cancelled == 0);
}

TEST_CASE("TPM 1.2: TPM_Extend and SHA1CompleteExtend count, TPM_FAIL is a failure") {
    ScriptedBackend tpm(TpmVersion::v1_2);
    tpm.rc_for = [](uint32_t ord) { return ord == 0x46 /* GetRandom */ ? 0x09u : 0u; };
    Counter done;
    TpmWorker worker(tpm, std::ref(done));
    worker.submit(0, header(0x00c1, 0x14));
    worker.submit(0, header(0x00c1, 0xA3));
    worker.submit(0, header(0x00c1, 0x46));
    worker.submit(0, header(0x00c1, 0x182));  // a TPM 2.0 ordinal means nothing to a 1.2 TPM
    REQUIRE(done.wait_for(4));
    auto s = worker.stats();
    CHECK(s.extends == 2);
    CHECK(s.failures == 1);
}

TEST_CASE("a command the guest cancels while it executes is counted; a cancel while idle is not") {
    ScriptedBackend tpm(TpmVersion::v2_0);
    tpm.stall = 0x182;
    Counter done;
    TpmWorker worker(tpm, std::ref(done));
    worker.cancel();
    worker.submit(0, header(0x8001, 0x17B));  // GetRandom, answered at once
    worker.submit(0, header(0x8002, 0x182));
    REQUIRE(tpm.wait_stalled());
    std::this_thread::sleep_for(50ms);
    worker.cancel();
    tpm.release();
    REQUIRE(done.wait_for(2));
    auto s = worker.stats();
    CHECK(s.cancelled == 1);
    CHECK(s.extends == 1);
    // the warning names the command that held the TPM longest
    CHECK(s.slowest_ordinal == 0x182);
    CHECK(s.slowest_ms >= 50);
}

TEST_CASE("destroying the worker abandons a stalled command instead of waiting for it") {
    ScriptedBackend tpm(TpmVersion::v2_0);
    tpm.stall = 0x17B;
    Counter done;
    {
        TpmWorker worker(tpm, std::ref(done));
        worker.submit(0, header(0x8001, 0x17B));
        REQUIRE(tpm.wait_stalled());
    }  // would hang forever without abandon()
    CHECK(tpm.abandoned);
    CHECK(done.n == 0);  // the abandoned command's response is not delivered
}
