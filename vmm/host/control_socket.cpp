// Unix stream sockets: unix(7). The socket file's mode comes from the socket inode's mode at
// bind() less the umask (Linux net/unix/af_unix.c, unix_bind), so an fchmod() before bind() makes
// it 0600 with no window where it is wider.
#include "vmm/host/control_socket.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/core.h>

#include "vmm/base/error.hpp"
#include "vmm/base/log.hpp"
#include "vmm/host/control_protocol.hpp"

namespace minivmm {

namespace {

constexpr int kBacklog = 4;
constexpr int kAcceptsPerCall = 16;  // connections taken per on_readable(); poll reports the rest
constexpr int kReadsPerCall = 16;    // reads of kReadChunk per on_readable(): a flood cannot hold the loop
constexpr size_t kReadChunk = 4096;
constexpr int kAcceptFlags = SOCK_CLOEXEC | SOCK_NONBLOCK;

[[noreturn]] void fail(ExitCode code, const std::string& path, const std::string& what) {
    throw SetupError(code, fmt::format("control socket {}: {}", path, what));
}

sockaddr_un address_of(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);  // the caller checked the length
    return addr;
}

// Something is at `path`: a stale socket (connect refused: nobody listens) is removed, anything
// else is refused.
void replace_stale(int dir_fd, const std::string& name, const std::string& path) {
    struct stat st {};
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) return;
        fail(kExitFile, path, std::strerror(errno));
    }
    if (!S_ISSOCK(st.st_mode)) fail(kExitFile, path, "exists and is not a socket (not replaced)");
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!probe.valid()) fail(kExitFile, path, fmt::format("socket: {}", std::strerror(errno)));
    const sockaddr_un addr = address_of(path);
    if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0 || errno == EAGAIN ||
        errno == EINPROGRESS)
        fail(kExitFile, path, "another process listens on it");
    if (errno != ECONNREFUSED) fail(kExitFile, path, fmt::format("probing the existing socket: {}", std::strerror(errno)));
    if (::unlinkat(dir_fd, name.c_str(), 0) != 0 && errno != ENOENT)
        fail(kExitFile, path, fmt::format("removing the stale socket: {}", std::strerror(errno)));
    log::info("control socket {}: replaced a stale socket nobody listened on", path);
}

// Writes all of `data` or nothing useful: false if the socket would block or is gone.
bool write_all_now(int fd, std::string_view data) noexcept {
    ssize_t n;
    do n = ::write(fd, data.data(), data.size()); while (n < 0 && errno == EINTR);
    return n == static_cast<ssize_t>(data.size());
}

}  // namespace

ControlSocket ControlSocket::listen(const std::string& path) {
    if (path.empty()) fail(kExitUsage, "''", "the path is empty");
    if (path.find('\0') != std::string::npos) fail(kExitUsage, path, "the path contains a NUL byte");
    if (path.size() >= sizeof(sockaddr_un::sun_path))
        fail(kExitUsage, path, fmt::format("the path is longer than a Unix socket's limit of {} bytes",
                                           sizeof(sockaddr_un::sun_path) - 1));
    ControlSocket s;
    s.path_ = path;
    const size_t slash = path.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    s.name_ = slash == std::string::npos ? path : path.substr(slash + 1);
    if (s.name_.empty() || s.name_ == "." || s.name_ == "..") fail(kExitUsage, path, "the path does not name a file");

    s.dir_ = UniqueFd(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!s.dir_.valid()) fail(kExitFile, path, fmt::format("directory {}: {}", dir, std::strerror(errno)));
    replace_stale(s.dir_.get(), s.name_, path);

    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd.valid()) fail(kExitFile, path, fmt::format("socket: {}", std::strerror(errno)));
    if (::fchmod(fd.get(), S_IRUSR | S_IWUSR) != 0) fail(kExitFile, path, fmt::format("fchmod: {}", std::strerror(errno)));
    const sockaddr_un addr = address_of(path);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
        fail(kExitFile, path, fmt::format("bind: {}", std::strerror(errno)));
    // From here on the destructor removes the file.
    s.listen_ = std::move(fd);
    if (::listen(s.listen_.get(), kBacklog) != 0) fail(kExitFile, path, fmt::format("listen: {}", std::strerror(errno)));
    log::debug("control socket {}: listening", path);
    return s;
}

ControlSocket& ControlSocket::operator=(ControlSocket&& o) noexcept {
    if (this != &o) {
        remove_file();
        path_ = std::move(o.path_);
        name_ = std::move(o.name_);
        dir_ = std::move(o.dir_);
        listen_ = std::move(o.listen_);
        client_ = std::move(o.client_);
        input_ = std::move(o.input_);
        unanswered_ = o.unanswered_;
        draining_ = o.draining_;
        final_error_ = std::move(o.final_error_);
    }
    return *this;
}

ControlSocket::~ControlSocket() { remove_file(); }

void ControlSocket::remove_file() noexcept {
    // Only a socket that was bound (listen_) has a file of ours; a moved-from one has no fds.
    if (dir_.valid() && listen_.valid() && ::unlinkat(dir_.get(), name_.c_str(), 0) != 0)
        log::debug("control socket {}: cannot remove it: {}", path_, std::strerror(errno));
    client_.reset();
    listen_.reset();
    dir_.reset();
}

std::array<int, 2> ControlSocket::poll_fds() const noexcept {
    return {listen_.get(), client_.valid() && !draining_ ? client_.get() : -1};
}

std::vector<std::string> ControlSocket::on_readable() {
    std::vector<std::string> lines;
    if (!client_.valid()) unanswered_ = 0;  // answers to a client that is gone go nowhere
    if (client_.valid() && !draining_) read_client(lines);
    // A client is closed here only once all its answers are out (drain_done), so none of them
    // can reach the next one.
    const bool had_client = client_.valid();
    accept_clients();
    if (!had_client && client_.valid()) read_client(lines);  // what it sent with its connect
    return lines;
}

void ControlSocket::accept_clients() {
    for (int i = 0; i < kAcceptsPerCall; ++i) {
        UniqueFd fd(::accept4(listen_.get(), nullptr, nullptr, kAcceptFlags));
        if (!fd.valid()) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                log::debug("control socket {}: accept: {}", path_, std::strerror(errno));
            if (errno == EAGAIN) return;
            continue;
        }
        if (client_.valid()) {
            log::debug("control socket {}: refused a second client", path_);
            write_all_now(fd.get(), format_control_error("another client is connected") + "\n");
            continue;  // closed by fd's destructor
        }
        log::debug("control socket {}: client connected", path_);
        client_ = std::move(fd);
        input_.clear();
        unanswered_ = 0;
        draining_ = false;
        final_error_.clear();
    }
}

void ControlSocket::read_client(std::vector<std::string>& lines) {
    char buf[kReadChunk];
    for (int i = 0; i < kReadsPerCall && !draining_; ++i) {
        const ssize_t n = ::read(client_.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) break;
        if (n <= 0) {  // end of its requests (or a reset connection): answer what came, then close
            if (!input_.empty()) log::debug("control socket {}: client left in the middle of a line", path_);
            if (n < 0) log::debug("control socket {}: read: {}", path_, std::strerror(errno));
            input_.clear();
            draining_ = true;
            break;
        }
        input_.append(buf, static_cast<size_t>(n));
        size_t start = 0;
        for (size_t nl; (nl = input_.find('\n', start)) != std::string::npos; start = nl + 1) {
            if (nl - start > kMaxRequestLine) break;
            lines.emplace_back(input_, start, nl - start);
            ++unanswered_;
        }
        input_.erase(0, start);
        if (input_.size() > kMaxRequestLine) {
            log::debug("control socket {}: request line over {} bytes, closing the client", path_, kMaxRequestLine);
            final_error_ = format_control_error(fmt::format("request line longer than {} bytes", kMaxRequestLine));
            input_.clear();
            draining_ = true;
        }
    }
    drain_done();
}

bool ControlSocket::reply(std::string_view line) {
    if (unanswered_ > 0) --unanswered_;
    if (!client_.valid()) return false;
    std::string out(line);
    out += '\n';
    if (!write_all_now(client_.get(), out)) {
        close_client("it does not read its answers, or left");
        return false;
    }
    drain_done();
    return true;
}

void ControlSocket::drain_done() {
    if (!client_.valid() || !draining_ || unanswered_ > 0) return;
    if (!final_error_.empty()) write_all_now(client_.get(), final_error_ + "\n");
    close_client("its requests are answered");
}

void ControlSocket::close_client(const char* why) noexcept {
    log::debug("control socket {}: closing the client: {}", path_, why);
    client_.reset();
    input_.clear();
    draining_ = false;
    final_error_.clear();
}

}  // namespace minivmm
