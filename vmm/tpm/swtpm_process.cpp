#include "vmm/tpm/swtpm_process.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include <fmt/core.h>

namespace minivmm {

namespace {

int pidfd_open(pid_t pid) noexcept { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

int pidfd_send_signal(int pidfd, int sig) noexcept {
    return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

// In the child, between fork and exec: only async-signal-safe calls (fork(2) in a threaded
// process). Everything it needs was prepared by the parent.
[[noreturn]] void exec_child(pid_t parent, const std::vector<char*>& argv, const std::vector<char*>& envp,
                             const std::optional<ChildIds>& ids, int keep_fd, int output_fd) noexcept {
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) ::_exit(127);  // parent already gone
    if (keep_fd >= 0 && keep_fd != 3) {
        if (::dup2(keep_fd, 3) != 3) ::_exit(127);
    } else if (keep_fd == 3) {
        ::fcntl(3, F_SETFD, 0);  // the one descriptor swtpm inherits: CLOEXEC off on this end only
    }
    int out = output_fd >= 0 ? output_fd : ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (out < 0 || in < 0 || ::dup2(in, 0) != 0 || ::dup2(out, 1) != 1 || ::dup2(out, 2) != 2) ::_exit(127);
    ::close_range(keep_fd >= 0 ? 4 : 3, ~0U, 0);
    if (ids && (::setgroups(0, nullptr) != 0 || ::setgid(ids->gid) != 0 || ::setuid(ids->uid) != 0)) ::_exit(126);
    // minivmm blocks its termination signals and ignores SIGPIPE; a child starts with neither.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
}

std::string describe_status(const siginfo_t& info) {
    if (info.si_code == CLD_EXITED) return fmt::format("exit status {}", info.si_status);
    return fmt::format("killed by signal {}", info.si_status);
}

}  // namespace

std::string find_in_path(const std::string& name) {
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "/usr/bin:/bin";
    size_t start = 0;
    while (start <= dirs.size()) {
        size_t end = dirs.find(':', start);
        if (end == std::string::npos) end = dirs.size();
        std::string dir = dirs.substr(start, end - start);
        start = end + 1;
        if (dir.empty() || dir.front() != '/') continue;  // relative entries are not trusted
        std::string candidate = dir + "/" + name;
        struct stat st {};
        if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(candidate.c_str(), X_OK) == 0)
            return candidate;
    }
    return {};
}

ChildProcess ChildProcess::spawn(const std::vector<std::string>& args, const std::optional<ChildIds>& ids,
                                 int keep_fd, int output_fd) {
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const char* path = std::getenv("PATH");
    std::vector<std::string> env{fmt::format("PATH={}", path ? path : "/usr/bin:/bin")};
    // HOME and XDG_CONFIG_HOME choose swtpm_setup's configuration, and with it the local CA
    // (swtpm_setup(8) --config); a child of another user (-runas) gets neither.
    if (!ids)
        for (const char* name : {"HOME", "XDG_CONFIG_HOME"})
            if (const char* value = std::getenv(name)) env.push_back(fmt::format("{}={}", name, value));
    std::vector<char*> envp;
    for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);

    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error(fmt::format("cannot start {}: fork: {}", args[0], std::strerror(errno)));
    if (pid == 0) exec_child(parent, argv, envp, ids, keep_fd, output_fd);
    UniqueFd pidfd(pidfd_open(pid));
    if (!pidfd.valid()) {  // cannot happen for our own unreaped child short of EMFILE
        const int err = errno;
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        throw std::runtime_error(fmt::format("cannot start {}: pidfd_open: {}", args[0], std::strerror(err)));
    }
    return ChildProcess(pid, std::move(pidfd));
}

ChildProcess::ChildProcess(ChildProcess&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)), pidfd_(std::move(o.pidfd_)), reaped_(std::exchange(o.reaped_, true)),
      status_(std::move(o.status_)) {}

bool ChildProcess::reap(bool block) noexcept {
    if (reaped_ || !pidfd_.valid()) return true;
    siginfo_t info{};
    for (;;) {
        int r = ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd_.get()), &info,
                         WEXITED | (block ? 0 : WNOHANG));
        if (r == 0) break;
        if (errno == EINTR) continue;
        reaped_ = true;  // ECHILD: someone else reaped it; nothing left to wait for
        return true;
    }
    if (info.si_pid == 0) return false;  // WNOHANG, still running
    reaped_ = true;
    status_ = describe_status(info);
    return true;
}

bool ChildProcess::exited() noexcept { return reap(false); }

bool ChildProcess::wait_for_exit(std::chrono::milliseconds timeout) noexcept {
    if (reaped_ || !pidfd_.valid()) return true;
    pollfd p{pidfd_.get(), POLLIN, 0};  // a pidfd polls readable once the process has exited
    int r;
    do r = ::poll(&p, 1, static_cast<int>(timeout.count()));
    while (r < 0 && errno == EINTR);
    return r > 0 ? reap(true) : reap(false);
}

void ChildProcess::stop(std::chrono::milliseconds grace) noexcept {
    if (reaped_ || !pidfd_.valid()) return;
    if (wait_for_exit(grace)) return;
    pidfd_send_signal(pidfd_.get(), SIGTERM);
    if (wait_for_exit(std::chrono::seconds(1))) return;
    pidfd_send_signal(pidfd_.get(), SIGKILL);
    reap(true);
}

SwtpmProcess::SwtpmProcess(const std::string& swtpm, const std::string& state_dir, TpmVersion version,
                           const std::optional<ChildIds>& ids)
    : child_([&] {
          int fds[2];
          if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
              throw std::runtime_error(fmt::format("cannot start swtpm: socketpair: {}", std::strerror(errno)));
          control_.reset(fds[0]);
          UniqueFd theirs(fds[1]);
          ::fcntl(control_.get(), F_SETFL, ::fcntl(control_.get(), F_GETFL) | O_NONBLOCK);
          std::vector<std::string> argv{swtpm, "socket", "--tpmstate", fmt::format("dir={},mode=0600", state_dir),
                                        "--ctrl", "type=unixio,clientfd=3", "--terminate"};
          if (version == TpmVersion::v2_0) argv.emplace_back("--tpm2");
          // swtpm's own messages (a failure to lock or read its state) go to minivmm's stderr.
          return ChildProcess::spawn(argv, ids, theirs.get(), STDERR_FILENO);
      }()) {}

void run_swtpm_setup(const std::string& swtpm_setup, const std::string& swtpm, const std::string& state_dir,
                     TpmVersion version, std::chrono::milliseconds timeout) {
    // swtpm_setup splits --tpm at spaces: the executable, then its mode ("/usr/bin/swtpm" alone is
    // refused: "does not support TPM 2"). A path with a space is refused before (SwtpmStateDir).
    std::vector<std::string> argv{swtpm_setup, "--tpm", swtpm + " socket", "--tpmstate", state_dir, "--createek",
                                  "--create-ek-cert", "--create-platform-cert", "--lock-nvram", "--not-overwrite"};
    if (version == TpmVersion::v2_0) argv.emplace_back("--tpm2");
    // Not root: the local CA cannot live in /var/lib/swtpm-localca; swtpm_setup then makes the
    // user's configuration once (~/.config/swtpm_setup.conf, a CA under ~/.config/var/lib), as
    // swtpm_setup(8) --create-config-files describes. It keeps an existing one (skip-if-exist).
    if (::geteuid() != 0) {
        ChildProcess config = ChildProcess::spawn({swtpm_setup, "--create-config-files", "skip-if-exist"}, std::nullopt);
        config.wait_for_exit(timeout);
    }
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
        throw std::runtime_error(fmt::format("cannot run swtpm_setup: pipe: {}", std::strerror(errno)));
    UniqueFd ours(fds[0]), theirs(fds[1]);
    ChildProcess child = ChildProcess::spawn(argv, std::nullopt, -1, theirs.get());
    theirs.reset();
    // Its output (a few hundred bytes: what it created) is kept for the error message.
    std::string output;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd p{ours.get(), POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) == 0) {
            child.stop(std::chrono::milliseconds(0));
            throw std::runtime_error(fmt::format("swtpm_setup did not finish manufacturing the TPM in {} within {} s",
                                                 state_dir, timeout.count() / 1000));
        }
        char buf[4096];
        ssize_t n = ::read(ours.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (output.size() < (64u << 10)) output.append(buf, static_cast<size_t>(n));
    }
    child.wait_for_exit(timeout);
    if (child.exit_status() == "exit status 0") return;
    while (!output.empty() && output.back() == '\n') output.pop_back();
    const size_t nl = output.rfind('\n');
    const std::string last = nl == std::string::npos ? output : output.substr(nl + 1);
    throw std::runtime_error(fmt::format("swtpm_setup could not manufacture the TPM in {} ({}){}{}", state_dir,
                                         child.exit_status().empty() ? "no exit status" : child.exit_status(),
                                         last.empty() ? "" : ": ", last));
}

}  // namespace minivmm
