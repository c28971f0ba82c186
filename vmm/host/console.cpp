#include "vmm/host/console.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/eventfd.h>
#include <termios.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include <fmt/core.h>

#include "vmm/base/log.hpp"
#include "vmm/base/unique_fd.hpp"

namespace minivmm {

namespace {

constexpr int kFullOutputWaitMs = 500;  // how long a non-blocking output fd may stay full
constexpr int kRetryIntervalMs = 1;     // re-offer period for input the consumer refused
constexpr size_t kReadChunk = 4096;

std::string errno_text(int error) { return std::system_category().message(error); }

}  // namespace

// --- FdSink --------------------------------------------------------------------------------

void FdSink::write(std::span<const uint8_t> bytes) noexcept {
    if (fd_ < 0) return;
    size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
        if (n > 0) {
            done += static_cast<size_t>(n);
            continue;
        }
        const int error = n < 0 ? errno : EIO;
        if (error == EINTR) continue;
        if (error == EAGAIN || error == EWOULDBLOCK) {
            pollfd p{fd_, POLLOUT, 0};
            const int r = ::poll(&p, 1, kFullOutputWaitMs);
            if (r > 0 || (r < 0 && errno == EINTR)) continue;
        }
        log::debug("console: output to fd {} failed ({}), {} bytes dropped", fd_,
                   error == EAGAIN || error == EWOULDBLOCK ? "stayed full" : std::strerror(error),
                   bytes.size() - done);
        return;
    }
}

std::optional<FileIdentity> identify_file(const std::string& path, std::string what) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return std::nullopt;
    return FileIdentity{st.st_dev, st.st_ino, std::move(what)};
}

const FileIdentity* find_identity(const struct stat& st, std::span<const FileIdentity> files) noexcept {
    for (const FileIdentity& f : files)
        if (f.dev == st.st_dev && f.ino == st.st_ino) return &f;
    return nullptr;
}

std::unique_ptr<FdSink> open_file_sink(const std::string& path, std::span<const FileIdentity> never) {
    auto fail = [&](const std::string& why) {
        throw std::runtime_error(fmt::format("cannot open '{}' for writing: {}", path, why));
    };
    // No O_TRUNC yet: what the path names is checked first. O_NOFOLLOW: a symbolic link (to
    // the disk, to someone's file) is refused rather than written through.
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd.valid()) fail(errno == ELOOP ? "it is a symbolic link; give the file itself" : errno_text(errno));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) fail(errno_text(errno));
    if (const FileIdentity* f = find_identity(st, never)) fail(fmt::format("it is {}", f->what));
    if (S_ISREG(st.st_mode) && ::ftruncate(fd.get(), 0) != 0) fail(errno_text(errno));
    auto sink = std::make_unique<FdSink>(fd.get(), true);
    (void)fd.release();  // the sink owns it now
    return sink;
}

std::unique_ptr<FdSink> make_byte_sink(std::string_view spec) {
    if (spec == "stdio") return std::make_unique<FdSink>(STDOUT_FILENO, false);
    if (spec == "none" || spec == "null") return nullptr;
    constexpr std::string_view kFilePrefix = "file:";
    if (spec.substr(0, kFilePrefix.size()) == kFilePrefix) {
        const std::string path(spec.substr(kFilePrefix.size()));
        if (path.empty()) throw std::invalid_argument("character device 'file:' needs a path (file:PATH)");
        return open_file_sink(path);
    }
    throw std::invalid_argument(
        fmt::format("unknown character device '{}' (expected stdio, file:PATH or none)", spec));
}

// --- TerminalRawMode -----------------------------------------------------------------------

namespace {

// Process-wide: there is one controlling terminal, and restore() must work from a signal
// handler, so the saved settings live in static storage. g_claimed serialises instances;
// g_raw_fd is published only after g_saved is complete, and restore() takes it with exchange so
// the settings are written back once.
termios g_saved{};
std::atomic<bool> g_claimed{false};
std::atomic<int> g_raw_fd{-1};
static_assert(std::atomic<int>::is_always_lock_free, "restore() must be async-signal-safe");

}  // namespace

TerminalRawMode::TerminalRawMode(int fd) noexcept {
    if (fd < 0 || !::isatty(fd)) return;
    bool expected = false;
    if (!g_claimed.compare_exchange_strong(expected, true)) return;
    termios raw{};
    if (::tcgetattr(fd, &g_saved) != 0) {
        g_claimed.store(false);
        return;
    }
    raw = g_saved;
    // Input: no break-to-signal, no parity marking, no stripping, no CR/NL translation, no
    // XON/XOFF, so every key (including Ctrl-S/Ctrl-Q) reaches the guest unchanged.
    raw.c_iflag &= ~static_cast<tcflag_t>(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    // Local: no echo, no canonical line editing, no INTR/QUIT/SUSP signals, no extended keys.
    raw.c_lflag &= ~static_cast<tcflag_t>(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    raw.c_cflag &= ~static_cast<tcflag_t>(CSIZE | PARENB);
    raw.c_cflag |= CS8;
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    // c_oflag is left alone: the guest's "\n" still becomes "\r\n" on the host terminal.
    if (::tcsetattr(fd, TCSANOW, &raw) != 0) {
        g_claimed.store(false);
        return;
    }
    g_raw_fd.store(fd);
    active_ = true;
}

TerminalRawMode::~TerminalRawMode() {
    if (!active_) return;
    restore();
    g_claimed.store(false);
}

void TerminalRawMode::restore() noexcept {
    const int saved_errno = errno;
    const int fd = g_raw_fd.exchange(-1);
    if (fd >= 0) ::tcsetattr(fd, TCSANOW, &g_saved);
    errno = saved_errno;
}

// --- StdinReader ---------------------------------------------------------------------------

StdinReader::StdinReader(Deliver deliver, std::function<void()> on_quit, int fd)
    : fd_(fd), deliver_(std::move(deliver)), on_quit_(std::move(on_quit)) {
    stop_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!stop_fd_.valid()) throw std::runtime_error(fmt::format("console: eventfd failed: {}", errno_text(errno)));
    try {
        thread_ = std::thread([this] { run(); });
    } catch (const std::system_error& e) {
        throw std::runtime_error(fmt::format("console: cannot start the input thread: {}", e.what()));
    }
}

StdinReader::~StdinReader() {
    stop();
}

void StdinReader::set_deliver(Deliver deliver) {
    // Taking the mutex waits for a delivery in progress; the old callback is destroyed here,
    // outside the reader thread.
    Deliver old;
    {
        std::lock_guard lock(deliver_mutex_);
        old = std::exchange(deliver_, std::move(deliver));
    }
}

void StdinReader::stop() noexcept {
    const uint64_t one = 1;
    ssize_t ignored = ::write(stop_fd_.get(), &one, sizeof one);  // eventfd: never blocks or fails short
    (void)ignored;
    std::lock_guard lock(join_mutex_);
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void StdinReader::process_input(std::span<const uint8_t> bytes) {
    for (const uint8_t byte : bytes) {
        if (!escape_seen_) {
            if (byte == kEscape)
                escape_seen_ = true;
            else
                pending_.push_back(byte);
            continue;
        }
        escape_seen_ = false;
        if (byte == 'x') {
            log::debug("console: Ctrl-A x, quitting");
            if (on_quit_) on_quit_();
        } else if (byte == kEscape) {
            pending_.push_back(kEscape);
        } else if (byte == 'h' || byte == '?') {
            static constexpr std::string_view kHelp =
                "\nC-a x    quit minivmm\nC-a C-a  send C-a to the guest\nC-a h    this help\n";
            ssize_t ignored = ::write(STDERR_FILENO, kHelp.data(), kHelp.size());
            (void)ignored;
        } else {
            // Not an escape command: pass both bytes on rather than swallowing a keystroke.
            pending_.push_back(kEscape);
            pending_.push_back(byte);
        }
    }
}

void StdinReader::offer_pending() {
    size_t accepted = 0;
    {
        std::lock_guard lock(deliver_mutex_);
        // Keep offering while the consumer makes progress (a UART takes what fits in its FIFO).
        while (deliver_ && accepted < pending_.size()) {
            const size_t n = deliver_(std::span<const uint8_t>(pending_).subspan(accepted));
            if (n == 0) break;
            accepted += std::min(n, pending_.size() - accepted);
        }
    }
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(accepted));
}

void StdinReader::run() noexcept {
    try {
        std::array<uint8_t, kReadChunk> buffer{};
        bool input_done = fd_ < 0;  // poll() would ignore a negative fd forever
        for (;;) {
            if (!pending_.empty()) offer_pending();
            if (input_done && pending_.empty()) break;
            // While input is held back, read nothing new (bounded memory, order kept) and retry
            // after kRetryIntervalMs; otherwise sleep until input or stop.
            const bool holding = !pending_.empty();
            std::array<pollfd, 2> fds{{{stop_fd_.get(), POLLIN, 0}, {fd_, POLLIN, 0}}};
            const nfds_t count = holding || input_done ? 1 : 2;
            const int r = ::poll(fds.data(), count, holding ? kRetryIntervalMs : -1);
            if (r < 0) {
                if (errno == EINTR) continue;
                log::warn("console: poll failed: {}", errno_text(errno));
                break;
            }
            if (fds[0].revents != 0) break;  // stop()
            if (count < 2 || fds[1].revents == 0) continue;
            const ssize_t n = ::read(fd_, buffer.data(), buffer.size());
            if (n > 0) {
                process_input(std::span<const uint8_t>(buffer.data(), static_cast<size_t>(n)));
            } else if (n == 0) {
                input_done = true;  // EOF: deliver what is held, then end
            } else if (errno != EINTR && errno != EAGAIN) {
                log::debug("console: reading input fd {} failed: {}", fd_, errno_text(errno));
                input_done = true;
            }
        }
    } catch (const std::exception& e) {
        log::warn("console: input thread ended: {}", e.what());
    } catch (...) {
        log::warn("console: input thread ended by an unknown exception");
    }
    finished_.store(true);
}

}  // namespace minivmm
