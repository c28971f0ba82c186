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
#include "vmm/tpm/tpm_state_blob.hpp"

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

// CMD_GET_STATEBLOB replies (vmm/tpm/swtpm_stateblob.hpp): several parts, TPM_RETRY for a blob
// that does not exist, and malformed ones: each save fails with one log line and never hangs.
namespace {
std::vector<uint8_t> getstate_reply(uint32_t res, uint32_t total, uint32_t length, uint8_t first = 0) {
    std::vector<uint8_t> r;
    put32(r, res);
    if (res != 0 && !(res & 0x800)) return r;  // an error: ptm_res only
    put32(r, 0);
    put32(r, total);
    put32(r, length);
    for (uint32_t i = 0; i < length; ++i) r.push_back(static_cast<uint8_t>(first + i));
    return r;
}
}  // namespace

TEST_CASE("state blobs: a blob in several replies, TPM_RETRY for none; malformed replies fail the save") {
    FakeSwtpm fake;
    fake.stateblob_reply = [](uint32_t type, uint32_t offset) {
        if (type != 1) return getstate_reply(0x800, 0, 0);  // no volatile or savestate blob
        const uint32_t len = std::min<uint32_t>(4, 10 - offset);  // 4 + 4 + 2 bytes, CUSE style
        return getstate_reply(0, 10, len, static_cast<uint8_t>(offset));
    };
    fake.start();
    auto tpm = SwtpmBackend::connect(fake.path, 2000ms);
    std::vector<uint8_t> blob;
    REQUIRE(tpm->save_state(blob));
    TpmStateBlob parts;
    REQUIRE(parse_tpm_state_blob(blob, parts));
    CHECK(parts.permanent.data == std::vector<uint8_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    CHECK(parts.volatile_state.data.empty());

    // An error result: the save fails, the backend stays usable.
    fake.stateblob_reply = [](uint32_t, uint32_t) { return getstate_reply(0x09, 0, 0); };
    CHECK_FALSE(tpm->save_state(blob));
    CHECK_FALSE(tpm->failed());
    CHECK(run(*tpm, 0) == kGood);
    // A reply longer than the blob it announces: the stream cannot be trusted any more.
    fake.stateblob_reply = [](uint32_t, uint32_t) { return getstate_reply(0, 4, 8); };
    CHECK_FALSE(tpm->save_state(blob));
    CHECK(tpm->failed());
}

TEST_CASE("state blobs: a blob over the limit, a continuation that stops, missing capabilities") {
    for (int variant = 0; variant < 3; ++variant) {
        CAPTURE(variant);
        FakeSwtpm fake;
        if (variant == 2) fake.caps = 0xffff & ~(1u << 8);  // no GET_STATEBLOB
        fake.stateblob_reply = [variant](uint32_t, uint32_t offset) {
            if (variant == 0) return getstate_reply(0, 1u << 30, 0);
            return offset == 0 ? getstate_reply(0, 10, 4) : getstate_reply(0, 6, 0);  // no progress
        };
        fake.start();
        auto tpm = SwtpmBackend::connect(fake.path, 2000ms);
        std::vector<uint8_t> blob;
        CHECK_FALSE(tpm->save_state(blob));
        CHECK_FALSE(tpm->restore_state(blob));
        CHECK(tpm->failed() == (variant != 2));
    }
}
