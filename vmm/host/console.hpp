// The host side of the guest's character devices (not a device model): where UART and
// debugcon output goes (FdSink), the terminal mode while the guest owns the console
// (TerminalRawMode), and the thread that carries keystrokes into the UART (StdinReader).
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "devices/device.hpp"
#include "vmm/base/unique_fd.hpp"

namespace minivmm {

// Writes every byte to a file descriptor: retries on EINTR and partial writes, waits briefly
// (poll) if the fd is non-blocking and full, and drops output only when the fd is broken
// (logged at debug level). Never throws. SIGPIPE must be ignored by the process (main) if the fd
// can be a pipe whose reader may go away.
class FdSink final : public ByteSink {
public:
    // Takes ownership of `fd` (closes it in the destructor) only if `owns_fd`.
    FdSink(int fd, bool owns_fd) noexcept : fd_(fd), owned_(owns_fd ? fd : -1) {}
    FdSink(const FdSink&) = delete;
    FdSink& operator=(const FdSink&) = delete;

    void write(std::span<const uint8_t> bytes) noexcept override;
    int fd() const noexcept { return fd_; }

private:
    int fd_;
    UniqueFd owned_;  // fd_ when this sink owns it (a file), else empty (stdout)
};

// A file by identity (device and inode), for "an output must never be the disk image".
struct FileIdentity {
    dev_t dev = 0;
    ino_t ino = 0;
    std::string what;  // "the disk image", for messages
};
// The identity of the file `path` names (following links), or nullopt if it cannot be stat()ed.
std::optional<FileIdentity> identify_file(const std::string& path, std::string what);
// The entry of `files` that `st` is, or nullptr.
const FileIdentity* find_identity(const struct stat& st, std::span<const FileIdentity> files) noexcept;

// Opens `path` for writing (created with mode 0600, O_NOFOLLOW, O_CLOEXEC) and truncates a
// regular file only once it is known not to be one of `never`. Throws std::runtime_error
// "cannot open 'PATH' for writing: REASON" (a symbolic link, one of `never`, an errno).
std::unique_ptr<FdSink> open_file_sink(const std::string& path, std::span<const FileIdentity> never = {});

// Parses a character-backend spec as -serial/-debugcon take it: "stdio" (stdout, not owned),
// "file:PATH" (open_file_sink), "none" or "null" (nullptr: output discarded). Throws
// std::invalid_argument for anything else and std::runtime_error if the file cannot be opened.
std::unique_ptr<FdSink> make_byte_sink(std::string_view spec);

// While alive, puts the terminal on `fd` (stdin) into raw mode like QEMU -nographic: no echo,
// no line editing, no ISIG (Ctrl-C goes to the guest), 8-bit input; output post-processing stays
// on. Does nothing if `fd` is not a TTY or another TerminalRawMode is already active.
class TerminalRawMode {
public:
    explicit TerminalRawMode(int fd = STDIN_FILENO) noexcept;
    ~TerminalRawMode();
    TerminalRawMode(const TerminalRawMode&) = delete;
    TerminalRawMode& operator=(const TerminalRawMode&) = delete;

    bool active() const noexcept { return active_; }
    // Puts the saved terminal settings back if raw mode is active. Async-signal-safe (only
    // tcsetattr and lock-free atomics), so signal handlers and fatal paths may call it; calling
    // it more than once is harmless.
    static void restore() noexcept;

private:
    bool active_ = false;
};

// A thread that reads the console input fd (stdin by default, not owned) and hands the bytes to
// `deliver`, which returns how many it accepted (Uart16550::receive). Bytes not accepted are
// offered again about every millisecond, in order, and no further input is read meanwhile, so
// nothing is dropped and memory stays bounded. QEMU's escape: Ctrl-A x calls `on_quit`,
// Ctrl-A Ctrl-A sends one 0x01, Ctrl-A h prints help to stderr; Ctrl-A followed by anything
// else sends both bytes. The thread ends on EOF (after delivering what it holds), on a read
// error, or on stop().
class StdinReader {
public:
    using Deliver = std::function<size_t(std::span<const uint8_t>)>;
    static constexpr uint8_t kEscape = 0x01;  // Ctrl-A

    // Starts the thread. Throws std::runtime_error if the stop eventfd or the thread cannot be
    // created.
    StdinReader(Deliver deliver, std::function<void()> on_quit, int fd = STDIN_FILENO);
    ~StdinReader();  // stop() + join
    StdinReader(const StdinReader&) = delete;
    StdinReader& operator=(const StdinReader&) = delete;

    // Swaps the consumer (nullptr: hold input until one is set). When this returns, the old
    // callback is not running and will never be called again, so its target may be destroyed
    // (the machine is rebuilt on guest reset). Must not be called from inside `deliver`.
    void set_deliver(Deliver deliver);
    // Ends the thread and joins it (just signals it when called from `on_quit` on the thread).
    void stop() noexcept;
    // True once the thread has ended (EOF, error or stop).
    bool finished() const noexcept { return finished_.load(); }

private:
    void run() noexcept;
    // Appends input bytes to pending_ after escape processing; may call on_quit_.
    void process_input(std::span<const uint8_t> bytes);
    // Offers pending_ to the consumer and drops what it accepted.
    void offer_pending();

    int fd_;
    UniqueFd stop_fd_;  // eventfd
    std::mutex deliver_mutex_;  // held while deliver_ runs
    std::mutex join_mutex_;
    Deliver deliver_;
    std::function<void()> on_quit_;
    std::vector<uint8_t> pending_;  // only touched by the thread
    bool escape_seen_ = false;      // only touched by the thread
    std::atomic<bool> finished_{false};
    std::thread thread_;
};

}  // namespace minivmm
