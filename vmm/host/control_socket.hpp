// The control socket's server (protocol: vmm/host/control_protocol.hpp): a Unix stream socket,
// one client at a time, driven by the main thread's poll loop and never blocking it.
//
//   ControlSocket control = ControlSocket::listen(path);          // at set-up
//   sandbox policy: control_listen_fd = control.listen_fd(), control_dir_fd = control.dir_fd()
//   loop: poll(control.poll_fds() for POLLIN, ...); on any event on them:
//         for (std::string& line : control.on_readable()) control.reply(answer to line);
//
// A client may send several requests in one write or one request over several writes, and may
// shut down its sending side after its last request (socat, nc -N): it gets every answer, then
// the server closes the connection. A second client while one is connected gets one error line
// and is closed. A line over kMaxRequestLine bytes gets an error answer after the answers to the
// lines before it, and the client is closed. A client that does not read its answers (the socket
// buffer is full) is closed rather than waited for: a client must read answers as they come, since
// each unread answer holds a socket buffer of its own and a few hundred of them fill the socket's
// send buffer. All of this is logged at debug level.
//
// Answers are written with write(2) (the sandbox allows it; sendto it does not), so the process
// must ignore SIGPIPE, as minivmm's main() does.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/base/unique_fd.hpp"

namespace minivmm {

class ControlSocket {
public:
    // Binds and listens on `path` (mode 0600, whatever the umask). Throws SetupError: kExitUsage
    // if the path is empty, ends in '/' or does not fit sockaddr_un's sun_path; kExitFile if
    // something else is there (a file of another type, or a socket someone listens on: a socket
    // whose connect is refused is stale and is replaced) or the socket cannot be made.
    static ControlSocket listen(const std::string& path);

    ControlSocket(ControlSocket&&) noexcept = default;
    ControlSocket& operator=(ControlSocket&&) noexcept;
    ControlSocket(const ControlSocket&) = delete;
    ControlSocket& operator=(const ControlSocket&) = delete;
    // Closes the client and the listening socket, and removes the socket file (unlinkat relative
    // to the directory's fd, which the sandbox allows on that fd only).
    ~ControlSocket();

    // The fds to poll for POLLIN: the listening socket and the client, -1 (which poll skips)
    // while there is none or while the client has stopped sending and awaits its answers.
    std::array<int, 2> poll_fds() const noexcept;
    // Accepts and reads whatever is ready, never blocking: the complete request lines received
    // (without '\n'), each of which is to get one reply(), in order. Call it after poll reports
    // any event on poll_fds().
    std::vector<std::string> on_readable();
    // Sends one answer line (a '\n' is appended) to the client, without blocking. False if there
    // is no client or it was closed for not reading its answers.
    bool reply(std::string_view line);

    bool connected() const noexcept { return client_.valid(); }
    const std::string& path() const noexcept { return path_; }
    int listen_fd() const noexcept { return listen_.get(); }  // for sandbox::Policy::control_listen_fd
    int dir_fd() const noexcept { return dir_.get(); }        // for sandbox::Policy::control_dir_fd

private:
    ControlSocket() = default;
    void accept_clients();
    void read_client(std::vector<std::string>& lines);
    void drain_done();  // closes a draining client once every answer is out
    void close_client(const char* why) noexcept;
    void remove_file() noexcept;

    std::string path_;
    std::string name_;  // the last component of path_, relative to dir_
    UniqueFd dir_;      // O_PATH of the socket's directory
    UniqueFd listen_;
    UniqueFd client_;
    std::string input_;        // an incomplete line received from the client
    size_t unanswered_ = 0;    // lines returned by on_readable() still waiting for reply()
    bool draining_ = false;    // the client sends no more: close it once unanswered_ is 0
    std::string final_error_;  // while draining: the error line to send last (an over-long line)
};

}  // namespace minivmm
