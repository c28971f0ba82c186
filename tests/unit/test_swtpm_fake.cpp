// SwtpmBackend against an in-process scripted swtpm (a listening unix socket served by a
// thread): replies split into single bytes, error-only replies, missing capabilities, a busy
// data channel, malformed and missing TPM responses, a control channel that stops answering,
// and the established-flag cache.
#include <doctest/doctest.h>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "vmm/swtpm_backend.hpp"
#include "vmm/swtpm_protocol.hpp"

using namespace minivmm;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

void put32(std::vector<uint8_t>& v, uint32_t x) {
    for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<uint8_t>(x >> s));
}

bool read_exact(int fd, uint8_t* p, size_t n) {
    while (n > 0) {
        ssize_t r = ::read(fd, p, n);
        if (r <= 0) return false;
        p += r;
        n -= static_cast<size_t>(r);
    }
    return true;
}

class FakeSwtpm {
public:
    uint32_t caps = 0xffff;
    uint32_t caps_result = 0;
    uint32_t datafd_result = 0;
    bool split = false;                   // send every reply byte by byte
    std::atomic<bool> ctrl_silent{false};  // stop answering the control channel
    std::atomic<bool> established{true};
    // Reply to each TPM command after the version probe; empty = no reply.
    std::function<std::vector<uint8_t>(const std::vector<uint8_t>&)> data_reply = [](const std::vector<uint8_t>&) {
        std::vector<uint8_t> r = {0x80, 0x01};
        put32(r, 12);
        put32(r, 0);
        r.push_back(0xab);
        r.push_back(0xcd);
        return r;
    };
    std::atomic<int> established_queries{0};
    std::atomic<int> locality_sets{0};
    std::atomic<int> data_commands{0};
    int init_delay_ms = 0;  // CMD_INIT answers this late (a loaded host, a large state)

    FakeSwtpm() {
        char tmpl[] = "/tmp/minivmm-fakeswtpm-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        dir_ = tmpl;
        path = (dir_ / "sock").string();
        listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strcpy(addr.sun_path, path.c_str());
        REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
        REQUIRE(::listen(listen_fd_, 4) == 0);
    }
    void start() {
        thread_ = std::thread([this] { serve(); });
    }
    ~FakeSwtpm() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
        for (int fd : {listen_fd_, ctrl_fd_, data_fd_})
            if (fd >= 0) ::close(fd);
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }

    std::string path;

private:
    void send(int fd, const std::vector<uint8_t>& bytes) {
        if (!split) {
            (void)::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            return;
        }
        for (uint8_t b : bytes) {
            (void)::send(fd, &b, 1, MSG_NOSIGNAL);
            std::this_thread::sleep_for(1ms);
        }
    }

    void handle_ctrl() {
        uint8_t word[4];
        iovec iov{word, 4};
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof(control);
        ssize_t n = ::recvmsg(ctrl_fd_, &msg, MSG_WAITALL);
        if (n != 4) {
            ::close(ctrl_fd_);
            ctrl_fd_ = -1;
            return;
        }
        uint32_t cmd = (uint32_t{word[0]} << 24) | (uint32_t{word[1]} << 16) | (uint32_t{word[2]} << 8) | word[3];
        uint8_t arg[4] = {};
        if (cmd == 0x02 || cmd == 0x05 || cmd == 0x0b || cmd == 0x11) REQUIRE(read_exact(ctrl_fd_, arg, 4));
        if (cmsghdr* c = CMSG_FIRSTHDR(&msg); c && c->cmsg_type == SCM_RIGHTS) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c), sizeof(int));
            if (datafd_result == 0) data_fd_ = fd;
            else ::close(fd);
        }
        if (ctrl_silent) return;
        std::vector<uint8_t> r;
        switch (cmd) {
        case 0x01:
            put32(r, caps_result);
            if (caps_result == 0) put32(r, caps);
            break;
        case 0x10: put32(r, datafd_result); break;
        case 0x04:
            ++established_queries;
            put32(r, 0);
            r.insert(r.end(), {static_cast<uint8_t>(established ? 1 : 0), 0, 0, 0});
            break;
        case 0x05: ++locality_sets; put32(r, 0); break;
        case 0x0b: established = false; put32(r, 0); break;
        case 0x11:
            put32(r, 0);
            put32(r, 4096);
            put32(r, 128);
            put32(r, 4096);
            break;
        case 0x02:
            std::this_thread::sleep_for(std::chrono::milliseconds(init_delay_ms));
            put32(r, 0);
            break;
        default: put32(r, 0); break;
        }
        send(ctrl_fd_, r);
    }

    void handle_data() {
        std::vector<uint8_t> cmd(10);
        if (!read_exact(data_fd_, cmd.data(), 10)) {
            ::close(data_fd_);
            data_fd_ = -1;
            return;
        }
        uint32_t size = swtpm::tpm_size(cmd);
        if (size > 10 && size <= 4096) {
            cmd.resize(size);
            REQUIRE(read_exact(data_fd_, cmd.data() + 10, size - 10));
        }
        if (data_commands++ == 0) {  // the version probe: answer as an uninitialised TPM 2.0
            auto r = swtpm::tpm_failure_response(TpmVersion::v2_0);
            send(data_fd_, std::vector<uint8_t>(r.begin(), r.end()));
            return;
        }
        std::vector<uint8_t> reply = data_reply(cmd);
        if (!reply.empty()) send(data_fd_, reply);
    }

    void serve() {
        while (!stop_) {
            pollfd fds[3] = {{listen_fd_, POLLIN, 0}, {ctrl_fd_, POLLIN, 0}, {data_fd_, POLLIN, 0}};
            if (ctrl_fd_ >= 0) fds[0].fd = -1;  // one control client at a time, like swtpm
            if (::poll(fds, 3, 20) <= 0) continue;
            if (fds[0].revents & POLLIN) ctrl_fd_ = ::accept(listen_fd_, nullptr, nullptr);
            if (fds[1].revents & (POLLIN | POLLHUP)) handle_ctrl();
            if (fds[2].revents & (POLLIN | POLLHUP)) handle_data();
        }
    }

    fs::path dir_;
    int listen_fd_ = -1;
    int ctrl_fd_ = -1;
    int data_fd_ = -1;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

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
    CHECK(swtpm::tpm_code(std::span(out.data(), n)) == swtpm::kTpm2RcCommandSize);
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
