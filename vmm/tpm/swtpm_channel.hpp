// Deadline-bounded I/O on the two swtpm sockets (control: unix stream socket; data: one end of a
// socketpair whose other end swtpm received through CMD_SET_DATAFD). Our ends are non-blocking
// and every wait is a poll() with a deadline, so a hung or dead swtpm costs at most one timeout.
// Nothing here throws except make_data_socketpair().
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>

#include "vmm/base/unique_fd.hpp"
#include "vmm/tpm/swtpm_protocol.hpp"

namespace minivmm::swtpm {

using Clock = std::chrono::steady_clock;

enum class IoStatus { ok, timeout, closed, error, aborted };

struct IoResult {
    IoStatus status = IoStatus::ok;
    int err = 0;  // errno for IoStatus::error
    bool ok() const noexcept { return status == IoStatus::ok; }
    // "timed out", "connection closed by peer", "Broken pipe", ...
    std::string describe() const;
};

// Connects a non-blocking, close-on-exec stream socket to the unix socket at `path` (a unix
// connect does not wait for accept()). Returns 0 or an errno value; ENAMETOOLONG for a path
// that does not fit sockaddr_un, ENOTSOCK if `path` exists but is not a socket.
int connect_unix(const std::string& path, UniqueFd& out) noexcept;

// socketpair(AF_UNIX, SOCK_STREAM): first = our end (non-blocking), second = swtpm's end
// (blocking, as swtpm expects). Throws std::runtime_error if the host is out of descriptors.
std::pair<UniqueFd, UniqueFd> make_data_socketpair();

// Sends all of `bytes` (MSG_NOSIGNAL), in one sendmsg when the socket buffer allows; with
// `pass_fd` >= 0 the descriptor travels as SCM_RIGHTS with the first byte.
IoResult send_all(int fd, std::span<const uint8_t> bytes, Clock::time_point deadline, int pass_fd = -1) noexcept;

// Reads one control reply into `reply` (4-byte ptm_res, then the rest only on success).
IoResult recv_ctrl_reply(int fd, CtrlReply& reply, Clock::time_point deadline) noexcept;

// Reads exactly `into.size()` bytes (a state blob after its CMD_GET_STATEBLOB header).
IoResult recv_exact(int fd, std::span<uint8_t> into, Clock::time_point deadline) noexcept;

// Reads one TPM response into `reader` until it is complete or malformed. `abort`, if given, is
// checked every 100 ms: when it becomes true the read stops with IoStatus::aborted.
IoResult recv_tpm_response(int fd, TpmResponseReader& reader, Clock::time_point deadline,
                           const std::atomic<bool>* abort = nullptr) noexcept;

// Waits until `fd` has something to read (or reports a hang-up), the deadline passes
// (IoStatus::timeout) or `abort` becomes true (IoStatus::aborted).
IoResult wait_readable(int fd, Clock::time_point deadline, const std::atomic<bool>* abort = nullptr) noexcept;

// Discards bytes already queued on `fd` (without waiting); returns how many there were.
size_t drain_pending(int fd) noexcept;

}  // namespace minivmm::swtpm
