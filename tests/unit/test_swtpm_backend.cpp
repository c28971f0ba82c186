// SwtpmBackend (vmm/tpm/swtpm_backend.hpp) against a REAL swtpm process started by the test
// (TPM 2.0 and 1.2), plus connect() errors. Skips the swtpm cases only if no swtpm binary is
// installed (CI installs it).
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "vmm/tpm/swtpm_backend.hpp"
#include "vmm/tpm/swtpm_protocol.hpp"
#include "swtpm_process.hpp"

using namespace minivmm;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

using testing::SwtpmProcess;
using testing::TempDir;

bool swtpm_available() { return testing::swtpm_available("test_swtpm_backend"); }

const std::vector<uint8_t> kTpm2Startup = {0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x44, 0x00, 0x00};
const std::vector<uint8_t> kTpm2GetRandom = {0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x7b, 0x00, 0x10};
const std::vector<uint8_t> kTpm12Startup = {0x00, 0xc1, 0, 0, 0, 0x0c, 0, 0, 0x00, 0x99, 0x00, 0x01};
const std::vector<uint8_t> kTpm12GetRandom = {0x00, 0xc1, 0, 0, 0, 0x0e, 0, 0, 0x00, 0x46, 0, 0, 0, 0x10};

struct Result {
    std::vector<uint8_t> bytes;
    uint16_t tag() const { return tpm_tag(bytes); }
    uint32_t rc() const { return tpm_code(bytes); }
};

Result run(SwtpmBackend& tpm, uint8_t locality, const std::vector<uint8_t>& cmd) {
    std::vector<uint8_t> out(tpm.buffer_size());
    size_t n = tpm.execute(locality, cmd, out);
    out.resize(n);
    return {out};
}

std::string connect_error(const std::string& path, std::chrono::milliseconds timeout = 1000ms) {
    try {
        SwtpmBackend::connect(path, timeout);
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return "(no error)";
}

double ms(std::chrono::steady_clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

}  // namespace

TEST_CASE("swtpm TPM 2.0: version, start-up, commands, localities, power cycles, shutdown") {
    if (!swtpm_available()) return;
    SwtpmProcess proc(true);
    auto tpm = SwtpmBackend::connect(proc.sock, 5000ms);
    CHECK(tpm->version() == TpmVersion::v2_0);
    CHECK(tpm->buffer_size() == 4096);
    CHECK((tpm->capabilities() & swtpm::required_caps(TpmVersion::v2_0)) == swtpm::required_caps(TpmVersion::v2_0));
    CHECK(tpm->socket_path() == proc.sock);

    // Before the first power_cycle the TPM is not initialised: swtpm's own fatal response.
    Result early = run(*tpm, 0, kTpm2Startup);
    CHECK(early.tag() == 0x8001);
    CHECK(early.rc() == kTpm2RcFailure);
    CHECK_FALSE(tpm->failed());

    REQUIRE(tpm->power_cycle());
    Result startup = run(*tpm, 0, kTpm2Startup);
    CHECK(startup.bytes.size() == 10);
    CHECK(startup.rc() == 0);
    // A second TPM2_Startup without a power cycle: TPM_RC_INITIALIZE.
    CHECK(run(*tpm, 0, kTpm2Startup).rc() == 0x100);

    Result r1 = run(*tpm, 0, kTpm2GetRandom);
    Result r2 = run(*tpm, 3, kTpm2GetRandom);  // locality change goes through CMD_SET_LOCALITY
    Result r3 = run(*tpm, 4, kTpm2GetRandom);
    Result r4 = run(*tpm, 0, kTpm2GetRandom);
    for (const Result* r : {&r1, &r2, &r3, &r4}) {
        REQUIRE(r->bytes.size() == 28);
        CHECK(r->tag() == 0x8001);
        CHECK(r->rc() == 0);
        CHECK(r->bytes[10] == 0);
        CHECK(r->bytes[11] == 16);
    }
    CHECK(r1.bytes != r2.bytes);

    CHECK_FALSE(tpm->established());
    tpm->reset_established(3);
    CHECK_FALSE(tpm->established());
    tpm->cancel();  // while idle: harmless
    CHECK(run(*tpm, 0, kTpm2GetRandom).rc() == 0);

    // Power cycles really restart the TPM: TPM2_Startup is accepted again each time.
    for (int i = 0; i < 2; ++i) {
        REQUIRE(tpm->power_cycle());
        CHECK(run(*tpm, 0, kTpm2GetRandom).rc() == 0x100);  // TPM_RC_INITIALIZE: not started
        CHECK(run(*tpm, 0, kTpm2Startup).rc() == 0);
        CHECK(run(*tpm, 2, kTpm2GetRandom).rc() == 0);
    }

    // Malformed commands from the guest never reach swtpm (it would wait for 10 bytes).
    const std::vector<uint8_t> too_short = {0x80, 0x01, 0, 0};
    Result short_r = run(*tpm, 0, too_short);
    CHECK(short_r.rc() == kTpm2RcCommandSize);
    CHECK_FALSE(tpm->failed());
    CHECK(run(*tpm, 0, kTpm2GetRandom).rc() == 0);

    tpm->shutdown();
    CHECK(proc.exits(3000ms));
    CHECK(tpm->failed());
    auto t0 = std::chrono::steady_clock::now();
    Result after = run(*tpm, 0, kTpm2GetRandom);
    CHECK(ms(std::chrono::steady_clock::now() - t0) < 50);
    CHECK(after.rc() == kTpm2RcFailure);
    CHECK_FALSE(tpm->power_cycle());
    CHECK_FALSE(tpm->established());
}

TEST_CASE("swtpm TPM 1.2: version detection and commands") {
    if (!swtpm_available()) return;
    SwtpmProcess proc(false);
    auto tpm = SwtpmBackend::connect(proc.sock, 5000ms);
    CHECK(tpm->version() == TpmVersion::v1_2);
    REQUIRE(tpm->power_cycle());
    Result startup = run(*tpm, 0, kTpm12Startup);
    CHECK(startup.tag() == 0x00c4);
    CHECK(startup.rc() == 0);
    Result rnd = run(*tpm, 0, kTpm12GetRandom);
    CHECK(rnd.rc() == 0);
    CHECK(rnd.bytes.size() == 30);
    CHECK(run(*tpm, 1, kTpm12GetRandom).rc() == 0);
    CHECK_FALSE(tpm->established());

    proc.kill_and_reap();
    Result dead = run(*tpm, 0, kTpm12GetRandom);
    CHECK(dead.bytes == std::vector<uint8_t>{0x00, 0xc4, 0, 0, 0, 0x0a, 0, 0, 0, 0x09});
    CHECK(tpm->failed());
}

TEST_CASE("swtpm killed mid-run: failure responses, fast afterwards") {
    if (!swtpm_available()) return;
    SwtpmProcess proc(true);
    auto tpm = SwtpmBackend::connect(proc.sock, 5000ms);
    REQUIRE(tpm->power_cycle());
    REQUIRE(run(*tpm, 0, kTpm2Startup).rc() == 0);
    REQUIRE(run(*tpm, 0, kTpm2GetRandom).rc() == 0);
    proc.kill_and_reap();

    auto t0 = std::chrono::steady_clock::now();
    Result r = run(*tpm, 0, kTpm2GetRandom);
    CHECK(ms(std::chrono::steady_clock::now() - t0) < 1000);  // EOF/EPIPE, not a timeout
    CHECK(r.bytes == std::vector<uint8_t>{0x80, 0x01, 0, 0, 0, 0x0a, 0, 0, 0x01, 0x01});
    CHECK(tpm->failed());
    t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 100; ++i) CHECK(run(*tpm, i % 2 ? 0 : 3, kTpm2GetRandom).rc() == kTpm2RcFailure);
    CHECK(ms(std::chrono::steady_clock::now() - t0) < 50);
    tpm->cancel();
    tpm->reset_established(3);
    CHECK_FALSE(tpm->power_cycle());
    tpm->shutdown();
}

TEST_CASE("swtpm that hangs (SIGSTOP): one timeout, then fast failures") {
    if (!swtpm_available()) return;
    SwtpmProcess proc(true);
    auto tpm = SwtpmBackend::connect(proc.sock, 300ms);
    REQUIRE(tpm->power_cycle());
    REQUIRE(run(*tpm, 0, kTpm2Startup).rc() == 0);
    proc.signal(SIGSTOP);
    auto t0 = std::chrono::steady_clock::now();
    Result r = run(*tpm, 0, kTpm2GetRandom);
    double first = ms(std::chrono::steady_clock::now() - t0);
    CHECK(first >= 250);
    CHECK(first < 2000);
    CHECK(r.rc() == kTpm2RcFailure);
    CHECK(tpm->failed());
    t0 = std::chrono::steady_clock::now();
    CHECK(run(*tpm, 1, kTpm2GetRandom).rc() == kTpm2RcFailure);
    CHECK_FALSE(tpm->power_cycle());
    CHECK(ms(std::chrono::steady_clock::now() - t0) < 50);
}

TEST_CASE("swtpm hung while a command runs and another thread cancels: both bounded by the timeout") {
    if (!swtpm_available()) return;
    SwtpmProcess proc(true);
    auto tpm = SwtpmBackend::connect(proc.sock, 400ms);
    REQUIRE(tpm->power_cycle());
    REQUIRE(run(*tpm, 0, kTpm2Startup).rc() == 0);
    proc.signal(SIGSTOP);
    auto t0 = std::chrono::steady_clock::now();
    std::thread canceller([&] {
        std::this_thread::sleep_for(50ms);
        tpm->cancel();  // the control channel hangs too: bounded, marks the backend failed
    });
    Result r = run(*tpm, 0, kTpm2GetRandom);
    canceller.join();
    CHECK(r.rc() == kTpm2RcFailure);
    CHECK(ms(std::chrono::steady_clock::now() - t0) < 1500);
    CHECK(tpm->failed());
}

TEST_CASE("a second client gets a clear error while the first holds the control channel") {
    if (!swtpm_available()) return;
    SwtpmProcess proc(true);
    auto first = SwtpmBackend::connect(proc.sock, 5000ms);
    std::string msg = connect_error(proc.sock, 300ms);
    CHECK(msg.find("cannot use swtpm control socket " + proc.sock) != std::string::npos);
    CHECK(msg.find("no answer to CMD_GET_CAPABILITY within 300 ms") != std::string::npos);
    CHECK(msg.find("swtpm socket --tpmstate dir=") != std::string::npos);
    CHECK(msg.find('\n') == std::string::npos);
    REQUIRE(first->power_cycle());
    CHECK(run(*first, 0, kTpm2Startup).rc() == 0);
}

TEST_CASE("connect errors name the socket and how to start swtpm") {
    TempDir dir;
    std::string missing = (dir.path / "swtpm-sock").string();
    std::string msg = connect_error(missing);
    CHECK(msg == "cannot connect to swtpm control socket " + missing +
                     ": No such file or directory; start it with: swtpm socket --tpmstate dir=DIR --ctrl "
                     "type=unixio,path=" + missing + " --tpm2");

    std::string file = (dir.path / "file").string();
    std::ofstream(file) << "x";
    CHECK(connect_error(file).find(file + ": not a socket;") != std::string::npos);

    // The same checks without connecting (minivmm makes them before opening /dev/kvm).
    auto check_error = [](const std::string& path) {
        try {
            SwtpmBackend::check_socket(path);
        } catch (const std::runtime_error& e) {
            return std::string(e.what());
        }
        return std::string();
    };
    CHECK(check_error(missing) == msg);
    CHECK(check_error(file) == connect_error(file));
    CHECK(check_error("/tmp/" + std::string(200, 'x')) == connect_error("/tmp/" + std::string(200, 'x')));

    // A socket file nobody listens on (swtpm died without removing it).
    std::string stale = (dir.path / "stale").string();
    {
        int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        REQUIRE(fd >= 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strcpy(addr.sun_path, stale.c_str());
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
        ::close(fd);
    }
    CHECK(connect_error(stale).find("Connection refused") != std::string::npos);

    // Listening but never answering.
    std::string silent = (dir.path / "silent").string();
    int lfd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    REQUIRE(lfd >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, silent.c_str());
    REQUIRE(::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    REQUIRE(::listen(lfd, 4) == 0);
    auto t0 = std::chrono::steady_clock::now();
    msg = connect_error(silent, 200ms);
    CHECK(ms(std::chrono::steady_clock::now() - t0) < 1000);
    CHECK(msg.find("no answer to CMD_GET_CAPABILITY within 200 ms") != std::string::npos);
    CHECK(msg.find("start it with: swtpm socket") != std::string::npos);
    ::close(lfd);

    std::string too_long = "/tmp/" + std::string(200, 'x');
    CHECK(connect_error(too_long) == "cannot connect to swtpm control socket: path empty or too long for a unix "
                                     "socket (at most 107 bytes)");  // the path is not repeated in a hint
    CHECK(connect_error("").find("too long") != std::string::npos);
}
