// A scripted swtpm for the unit tests: a listening unix socket served by a thread, which answers
// the control and data channels as told (split replies, error-only replies, silence, malformed
// responses). Used by test_swtpm_fake.cpp.
#pragma once

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

#include "vmm/tpm/swtpm_protocol.hpp"
#include "vmm/base/bytes.hpp"

namespace minivmm::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

inline void put32(std::vector<uint8_t>& v, uint32_t x) { append_be(v, x, 4); }

inline bool read_exact(int fd, uint8_t* p, size_t n) {
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
    // The whole reply to CMD_GET_STATEBLOB(type, offset); unset: an empty blob.
    std::function<std::vector<uint8_t>(uint32_t, uint32_t)> stateblob_reply;

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
        uint8_t getstate[12] = {};
        if (cmd == 0x0c) REQUIRE(read_exact(ctrl_fd_, getstate, 12));
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
        case 0x0c:
            if (stateblob_reply) {
                r = stateblob_reply(load_be32(std::span<const uint8_t>(getstate), 4), load_be32(std::span<const uint8_t>(getstate), 8));
            } else {
                for (int i = 0; i < 4; ++i) put32(r, 0);
            }
            break;
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
        uint32_t size = tpm_size(cmd);
        if (size > 10 && size <= 4096) {
            cmd.resize(size);
            REQUIRE(read_exact(data_fd_, cmd.data() + 10, size - 10));
        }
        if (data_commands++ == 0) {  // the version probe: answer as an uninitialised TPM 2.0
            auto r = tpm_failure_response(TpmVersion::v2_0);
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

}  // namespace minivmm::test
