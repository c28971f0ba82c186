// A control socket client for the unit tests: a real Unix stream connection to the server's path,
// raw writes (so a test can split or join requests as it likes) and reads with a time limit.
#pragma once

#include <doctest/doctest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/base/unique_fd.hpp"
#include "vmm/host/control_socket.hpp"

namespace minivmm::testing {

class ControlClient {
public:
    explicit ControlClient(const std::string& path) : fd_(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        REQUIRE(fd_.valid());
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        REQUIRE(path.size() < sizeof addr.sun_path);
        std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
        REQUIRE(::connect(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    }
    void send(std::string_view bytes) const {
        REQUIRE(::write(fd_.get(), bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
    }
    void shutdown_sending() const { REQUIRE(::shutdown(fd_.get(), SHUT_WR) == 0); }
    void close() { fd_.reset(); }
    int fd() const { return fd_.get(); }

    // The next line from the server (without '\n'); "<EOF>" if it closed first, "<timeout>" if
    // nothing came within two seconds.
    std::string line() {
        for (;;) {
            if (size_t nl = buffer_.find('\n'); nl != std::string::npos) {
                std::string l = buffer_.substr(0, nl);
                buffer_.erase(0, nl + 1);
                return l;
            }
            pollfd p{fd_.get(), POLLIN, 0};
            if (::poll(&p, 1, 2000) != 1) return "<timeout>";
            char buf[8192];
            const ssize_t n = ::read(fd_.get(), buf, sizeof buf);
            if (n <= 0) return buffer_.empty() ? "<EOF>" : "<EOF in a line>";
            buffer_.append(buf, static_cast<size_t>(n));
        }
    }

private:
    UniqueFd fd_;
    std::string buffer_;
};

// What the VMM's poll loop does: waits (at most two seconds) for an event on the server's fds,
// then takes what is ready. SIGPIPE is ignored first, as minivmm's main() does, for the answers
// written to clients that left.
inline void ignore_sigpipe() { ::signal(SIGPIPE, SIG_IGN); }
inline std::vector<std::string> serve(ControlSocket& server) {
    ignore_sigpipe();
    const auto fds = server.poll_fds();
    pollfd p[2] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
    REQUIRE(::poll(p, 2, 2000) >= 1);
    return server.on_readable();
}

}  // namespace minivmm::testing
