#include "vmm/tpm/swtpm_channel.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/core.h>

namespace minivmm::swtpm {

namespace {

constexpr auto kAbortCheckInterval = std::chrono::milliseconds(100);

// Waits until `fd` is ready for `events`, the deadline passes or `abort` becomes true.
IoResult wait_ready(int fd, short events, Clock::time_point deadline, const std::atomic<bool>* abort) noexcept {
    for (;;) {
        if (abort && abort->load(std::memory_order_acquire)) return {IoStatus::aborted};
        auto now = Clock::now();
        if (now >= deadline) return {IoStatus::timeout};
        auto slice = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now) + std::chrono::milliseconds(1);
        if (abort) slice = std::min<std::chrono::milliseconds>(slice, kAbortCheckInterval);
        pollfd p{fd, events, 0};
        int r = ::poll(&p, 1, static_cast<int>(slice.count()));
        if (r < 0) {
            if (errno == EINTR) continue;
            return {IoStatus::error, errno};
        }
        if (r == 0) continue;
        // POLLHUP/POLLERR: let the following recv/send report the exact condition.
        return {};
    }
}

// One recv of at most `into.size()` bytes, waiting for data first; 0 bytes = peer closed.
IoResult recv_some(int fd, std::span<uint8_t> into, size_t& got, Clock::time_point deadline,
                   const std::atomic<bool>* abort) noexcept {
    got = 0;
    for (;;) {
        ssize_t n = ::recv(fd, into.data(), into.size(), MSG_DONTWAIT);
        if (n > 0) {
            got = static_cast<size_t>(n);
            return {};
        }
        if (n == 0) return {IoStatus::closed};
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return {IoStatus::error, errno};
        IoResult w = wait_ready(fd, POLLIN, deadline, abort);
        if (!w.ok()) return w;
    }
}

}  // namespace

std::string IoResult::describe() const {
    switch (status) {
    case IoStatus::ok: return "ok";
    case IoStatus::timeout: return "timed out";
    case IoStatus::closed: return "connection closed by peer";
    case IoStatus::aborted: return "aborted";
    case IoStatus::error: return std::strerror(err);
    }
    return "?";
}

int connect_unix(const std::string& path, UniqueFd& out) noexcept {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(addr.sun_path)) return ENAMETOOLONG;
    std::memcpy(addr.sun_path, path.data(), path.size());
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) return errno;
    if (!S_ISSOCK(st.st_mode)) return ENOTSOCK;
    UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!s.valid()) return errno;
    for (;;) {
        if (::connect(s.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) break;
        if (errno == EINTR) continue;
        return errno;
    }
    out = std::move(s);
    return 0;
}

std::pair<UniqueFd, UniqueFd> make_data_socketpair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
        throw std::runtime_error(fmt::format("cannot create the swtpm data socketpair: {}", std::strerror(errno)));
    UniqueFd ours(fds[0]);
    UniqueFd theirs(fds[1]);
    int flags = ::fcntl(ours.get(), F_GETFL);
    if (flags < 0 || ::fcntl(ours.get(), F_SETFL, flags | O_NONBLOCK) != 0)
        throw std::runtime_error(fmt::format("cannot make the swtpm data socket non-blocking: {}", std::strerror(errno)));
    return {std::move(ours), std::move(theirs)};
}

IoResult wait_readable(int fd, Clock::time_point deadline, const std::atomic<bool>* abort) noexcept {
    return wait_ready(fd, POLLIN, deadline, abort);
}

IoResult send_all(int fd, std::span<const uint8_t> bytes, Clock::time_point deadline, int pass_fd) noexcept {
    size_t sent = 0;
    while (sent < bytes.size()) {
        iovec iov{const_cast<uint8_t*>(bytes.data() + sent), bytes.size() - sent};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
        if (pass_fd >= 0 && sent == 0) {
            msg.msg_control = control;
            msg.msg_controllen = sizeof(control);
            cmsghdr* c = CMSG_FIRSTHDR(&msg);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            std::memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
        }
        ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            sent += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            if (errno == EPIPE || errno == ECONNRESET) return {IoStatus::closed};
            return {IoStatus::error, errno};
        }
        IoResult w = wait_ready(fd, POLLOUT, deadline, nullptr);
        if (!w.ok()) return w;
    }
    return {};
}

IoResult recv_ctrl_reply(int fd, CtrlReply& reply, Clock::time_point deadline) noexcept {
    while (!reply.complete()) {
        uint8_t buf[16];
        size_t got = 0;
        IoResult r = recv_some(fd, std::span<uint8_t>(buf, std::min(sizeof(buf), reply.wanted())), got, deadline, nullptr);
        if (!r.ok()) {
            if (r.status == IoStatus::error && r.err == ECONNRESET) return {IoStatus::closed};
            return r;
        }
        reply.feed(std::span<const uint8_t>(buf, got));
    }
    return {};
}

IoResult recv_exact(int fd, std::span<uint8_t> into, Clock::time_point deadline) noexcept {
    size_t have = 0;
    while (have < into.size()) {
        size_t got = 0;
        IoResult r = recv_some(fd, into.subspan(have), got, deadline, nullptr);
        if (!r.ok()) {
            if (r.status == IoStatus::error && r.err == ECONNRESET) return {IoStatus::closed};
            return r;
        }
        have += got;
    }
    return {};
}

IoResult recv_tpm_response(int fd, TpmResponseReader& reader, Clock::time_point deadline,
                           const std::atomic<bool>* abort) noexcept {
    while (reader.state() == TpmResponseReader::State::need_more) {
        size_t got = 0;
        IoResult r = recv_some(fd, reader.next_space(), got, deadline, abort);
        if (!r.ok()) {
            if (r.status == IoStatus::error && r.err == ECONNRESET) return {IoStatus::closed};
            return r;
        }
        reader.received(got);
    }
    return {};
}

size_t drain_pending(int fd) noexcept {
    size_t total = 0;
    uint8_t buf[256];
    for (;;) {
        ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            total += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        return total;
    }
}

}  // namespace minivmm::swtpm
