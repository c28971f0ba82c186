// SwtpmBackend against an in-process scripted swtpm (a listening unix socket served by a
// thread): replies split into single bytes, error-only replies, missing capabilities, a busy
// data channel, malformed and missing TPM responses, a control channel that stops answering,
// and the established-flag cache.
#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/fake_swtpm_server.hpp"
#include "vmm/tpm/swtpm_backend.hpp"
#include "vmm/tpm/swtpm_protocol.hpp"

using namespace minivmm;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {
using minivmm::test::FakeSwtpm;
using minivmm::test::put32;

std::vector<uint8_t> run(SwtpmBackend& tpm, uint8_t locality) {
    const std::vector<uint8_t> cmd = {0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x7b, 0x00, 0x10};
    std::vector<uint8_t> out(tpm.buffer_size());
    out.resize(tpm.execute(locality, cmd, out));
    return out;
}

const std::vector<uint8_t> kFailure = {0x80, 0x01, 0, 0, 0, 0x0a, 0, 0, 0x01, 0x01};
const std::vector<uint8_t> kGood = {0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0, 0, 0xab, 0xcd};

std::string connect_error(const std::string& path) {
    try {
        SwtpmBackend::connect(path, 1000ms);
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return "(no error)";
}

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TEST_CASE("replies split into single bytes are reassembled") {
    FakeSwtpm fake;
    fake.split = true;
    fake.start();
    auto tpm = SwtpmBackend::connect(fake.path, 2000ms);
    CHECK(tpm->version() == TpmVersion::v2_0);
    CHECK(tpm->buffer_size() == 4096);
    CHECK(tpm->power_cycle());
    CHECK(run(*tpm, 0) == kGood);
    CHECK(run(*tpm, 2) == kGood);
    CHECK(fake.locality_sets == 2);
    CHECK(run(*tpm, 2) == kGood);
    CHECK(fake.locality_sets == 2);  // only sent when the locality changes
    CHECK_FALSE(tpm->failed());
}

TEST_CASE("the established flag is cached until reset_established or a power cycle") {
    FakeSwtpm fake;
    fake.start();
    auto tpm = SwtpmBackend::connect(fake.path, 2000ms);
    CHECK(tpm->established());
    CHECK(tpm->established());
    CHECK(fake.established_queries == 1);
    tpm->reset_established(3);
    CHECK_FALSE(tpm->established());
    CHECK(fake.established_queries == 2);
    fake.established = true;
    CHECK_FALSE(tpm->established());  // still cached
    REQUIRE(tpm->power_cycle());
    CHECK(tpm->established());
    CHECK(fake.established_queries == 3);
}

TEST_CASE("an error-only reply to GET_CAPABILITY is reported, not waited on") {
    FakeSwtpm fake;
    fake.caps_result = swtpm::kPtmFail;
    fake.start();
    auto t0 = std::chrono::steady_clock::now();
    std::string msg = connect_error(fake.path);
    CHECK(ms_since(t0) < 500);
    CHECK(msg.find("CMD_GET_CAPABILITY failed: TPM_FAIL (0x9)") != std::string::npos);
    CHECK(msg.find(fake.path) != std::string::npos);
}

TEST_CASE("missing capabilities are named") {
    FakeSwtpm fake;
    fake.caps = 0xffff & ~(swtpm::kCapSetDataFd | swtpm::kCapStop);
    fake.start();
    CHECK(connect_error(fake.path).find("swtpm lacks control commands STOP, SET_DATAFD") != std::string::npos);
}

TEST_CASE("TPM 2.0 additionally needs RESET_TPMESTABLISHED") {
    FakeSwtpm fake;
    fake.caps = 0xffff & ~swtpm::kCapResetTpmEstablished;
    fake.start();
    CHECK(connect_error(fake.path).find("lacks control commands RESET_TPMESTABLISHED") != std::string::npos);
}

TEST_CASE("a data channel already in use is explained") {
    FakeSwtpm fake;
    fake.datafd_result = swtpm::kPtmIoError;
    fake.start();
    CHECK(connect_error(fake.path).find("swtpm already has a data channel") != std::string::npos);
}

TEST_CASE("malformed TPM responses fail the command and the backend") {
    auto check_malformed = [](std::vector<uint8_t> reply) {
        FakeSwtpm fake;
        fake.data_reply = [reply](const std::vector<uint8_t>&) { return reply; };
        fake.start();
        auto tpm = SwtpmBackend::connect(fake.path, 2000ms);
        REQUIRE(tpm->power_cycle());
        auto t0 = std::chrono::steady_clock::now();
        CHECK(run(*tpm, 0) == kFailure);
        CHECK(ms_since(t0) < 1000);
        CHECK(tpm->failed());
        t0 = std::chrono::steady_clock::now();
        CHECK(run(*tpm, 0) == kFailure);
        CHECK(ms_since(t0) < 20);
    };
    SUBCASE("size field 5") { check_malformed({0x80, 0x01, 0, 0, 0, 5, 0, 0, 0, 0}); }
    SUBCASE("size field beyond the buffer") { check_malformed({0x80, 0x01, 0, 0, 0x10, 0x01, 0, 0, 0, 0}); }
    SUBCASE("all ones") { check_malformed(std::vector<uint8_t>(16, 0xff)); }
}

TEST_CASE("a response longer than its size field poisons the stream: detected on the next command") {
    FakeSwtpm fake;
    fake.data_reply = [](const std::vector<uint8_t>&) {
        std::vector<uint8_t> r = kGood;
        r.insert(r.end(), {0xde, 0xad, 0xbe, 0xef});
        return r;
    };
    fake.start();
    auto tpm = SwtpmBackend::connect(fake.path, 2000ms);
    REQUIRE(tpm->power_cycle());
    CHECK(run(*tpm, 0) == kGood);
    std::this_thread::sleep_for(20ms);
    CHECK(run(*tpm, 0) == kFailure);
    CHECK(tpm->failed());
}

TEST_CASE("a TPM that never answers times out once") {
    FakeSwtpm fake;
    fake.data_reply = [](const std::vector<uint8_t>&) { return std::vector<uint8_t>{}; };
    fake.start();
    auto tpm = SwtpmBackend::connect(fake.path, 250ms);
    REQUIRE(tpm->power_cycle());
    auto t0 = std::chrono::steady_clock::now();
    CHECK(run(*tpm, 0) == kFailure);
    double first = ms_since(t0);
    CHECK(first >= 200);
    CHECK(first < 1500);
    t0 = std::chrono::steady_clock::now();
    CHECK(run(*tpm, 0) == kFailure);
    CHECK(ms_since(t0) < 20);
}

TEST_CASE("a control channel that stops answering") {
    FakeSwtpm fake;
    fake.start();
    auto tpm = SwtpmBackend::connect(fake.path, 250ms);
    fake.ctrl_silent = true;
    auto t0 = std::chrono::steady_clock::now();
    CHECK_FALSE(tpm->power_cycle());
    CHECK(ms_since(t0) >= 200);
    CHECK(tpm->failed());
    t0 = std::chrono::steady_clock::now();
    CHECK(run(*tpm, 1) == kFailure);
    CHECK_FALSE(tpm->established());
    tpm->cancel();
    tpm->shutdown();
    CHECK(ms_since(t0) < 20);
}

TEST_CASE("a small response buffer gets nothing; commands over the buffer size are refused locally") {
    FakeSwtpm fake;
    fake.start();
    auto tpm = SwtpmBackend::connect(fake.path, 1000ms);
    REQUIRE(tpm->power_cycle());
    std::array<uint8_t, 9> tiny{};
    const std::vector<uint8_t> cmd = {0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x7b, 0x00, 0x10};
    CHECK(tpm->execute(0, cmd, tiny) == 0);
    std::vector<uint8_t> huge(5000, 0);
    std::vector<uint8_t> out(4096);
    size_t n = tpm->execute(0, huge, out);
    REQUIRE(n == 10);
    CHECK(tpm_code(std::span(out.data(), n)) == kTpm2RcCommandSize);
    CHECK(fake.data_commands == 1);  // only the probe reached the fake
    CHECK_FALSE(tpm->failed());
    CHECK(run(*tpm, 0) == kGood);
}

TEST_CASE("power-on waits for a slow CMD_INIT up to the start limit, not the control limit") {
    FakeSwtpm fake;
    fake.init_delay_ms = 1000;
    fake.start();
    auto tpm = SwtpmBackend::connect(fake.path, SwtpmLimits{5000ms, 250ms, 250ms});
    CHECK(tpm->power_cycle());
    CHECK_FALSE(tpm->failed());
    CHECK(run(*tpm, 0) != kFailure);
}

TEST_CASE("a slow TPM command is waited for; an abandoned one fails without killing the TPM") {
    FakeSwtpm fake;
    std::atomic<int> calls{0};
    fake.data_reply = [&](const std::vector<uint8_t>&) {
        if (calls++ == 1) return std::vector<uint8_t>{};  // the second command never gets an answer
        std::this_thread::sleep_for(600ms);                // the others are slow
        std::vector<uint8_t> r = {0x80, 0x01};
        put32(r, 10);
        put32(r, 0);
        return r;
    };
    fake.start();
    auto tpm = SwtpmBackend::connect(fake.path, SwtpmLimits{5000ms, 1000ms, 60000ms});
    REQUIRE(tpm->power_cycle());
    CHECK(run(*tpm, 0) != kFailure);  // 600 ms: longer than the control limit would allow
    std::thread stopper([&] {
        std::this_thread::sleep_for(300ms);
        tpm->abandon();  // what the TPM worker does at a machine reset
    });
    CHECK(run(*tpm, 0) == kFailure);
    stopper.join();
    CHECK_FALSE(tpm->failed());
    REQUIRE(tpm->power_cycle());  // the next power-on starts clean
    CHECK(run(*tpm, 0) != kFailure);
}
