// The sandbox's control socket rules (vmm/host/sandbox.hpp Policy::control_listen_fd,
// control_dir_fd; snapshot_saves: the save's unnamed file and its link), as tests/unit/test_sandbox.cpp does it: each case forks a child that sets up
// as minivmm does (the socket made and a client connected before the filters), installs the real
// filters, serves the client and removes the socket file, then does one thing it must not.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "tests/unit/control_client.hpp"
#include "tests/unit/temp_dir.hpp"
#include "vmm/base/error.hpp"
#include "vmm/host/control_socket.hpp"
#include "vmm/host/sandbox.hpp"

using namespace minivmm;
using namespace minivmm::testing;

namespace {

struct Child {
    int status = -1;  // exit status, or 128 + signal
    std::string err;  // what it wrote to stderr
};

// In a forked child: `setup` (unconfined, returns the policy; kvm_fd is filled in), the filters,
// then `body`; the child exits 0 if `body` returns.
Child sandboxed(const std::function<sandbox::Policy()>& setup, const std::function<void()>& body) {
    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    std::fflush(nullptr);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::dup2(pipe_fds[1], STDERR_FILENO);
        ::close(pipe_fds[0]);
        try {
            sandbox::Policy policy = setup();
            policy.kvm_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);  // stands in for /dev/kvm
            sandbox::install(policy);
        } catch (const std::exception& e) {
            ::write(STDERR_FILENO, e.what(), std::strlen(e.what()));
            ::_exit(100);
        }
        body();
        ::_exit(0);
    }
    ::close(pipe_fds[1]);
    Child c;
    char buf[512];
    ssize_t n;
    while ((n = ::read(pipe_fds[0], buf, sizeof buf)) > 0) c.err.append(buf, static_cast<size_t>(n));
    ::close(pipe_fds[0]);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    c.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return c;
}

std::string message(const char* call, int nr, const char* thread) {
    return std::string("minivmm: error: sandbox: forbidden system call ") + call + " (" + std::to_string(nr) +
           ") in " + thread + "; run with -sandbox off to debug\n";
}

// What the child holds; filled in the child only (the parent's copies stay empty).
struct Served {
    std::optional<ControlSocket> server;
    std::optional<ControlClient> client;

    sandbox::Policy set_up(const std::string& path, sandbox::TpmIo tpm = sandbox::TpmIo::none, bool tell = true) {
        server.emplace(ControlSocket::listen(path));
        client.emplace(path);  // connect: before the filters, like everything minivmm opens
        sandbox::Policy policy;
        policy.tpm = tpm;
        if (tell) {
            policy.control_listen_fd = server->listen_fd();
            policy.control_dir_fd = server->dir_fd();
        }
        return policy;
    }
    // A request served end to end under the filters, then the file removed.
    void serve_and_close() {
        client->send("{\"cmd\":\"status\"}\n");
        if (server->on_readable().size() != 1 || !server->reply("answer")) ::_exit(60);
        if (client->line() != "answer") ::_exit(61);
        server.reset();
    }
};

}  // namespace

TEST_CASE("control socket: accept4, read, write and the file's removal pass the filters") {
    for (sandbox::TpmIo tpm : {sandbox::TpmIo::none, sandbox::TpmIo::swtpm, sandbox::TpmIo::libtpms}) {
        TempDir dir;
        const std::string path = dir.sub("ctl");
        Served s;
        Child c = sandboxed([&] { return s.set_up(path, tpm); }, [&] { s.serve_and_close(); });
        CHECK(c.status == 0);
        CHECK(c.err.empty());
        CHECK_FALSE(std::filesystem::exists(std::filesystem::symlink_status(path)));
    }
}

TEST_CASE("control socket: accept4 on that fd with those flags only") {
    TempDir dir;
    Served s;
    int other = -1;
    Child other_fd = sandboxed([&] {
        other = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        return s.set_up(dir.sub("ctl"));
    }, [&] { ::accept4(other, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK); });
    CHECK(other_fd.status == kExitSandbox);
    CHECK(other_fd.err == message("accept4", 288, "the main thread"));
    Child blocking = sandboxed([&] { return s.set_up(dir.sub("ctl2")); },
                               [&] { ::accept4(s.server->listen_fd(), nullptr, nullptr, SOCK_CLOEXEC); });
    CHECK(blocking.status == kExitSandbox);
    CHECK(blocking.err == message("accept4", 288, "the main thread"));
    Child plain_accept = sandboxed([&] { return s.set_up(dir.sub("ctl3")); },
                                   [&] { ::accept(s.server->listen_fd(), nullptr, nullptr); });
    CHECK(plain_accept.status == kExitSandbox);
    CHECK(plain_accept.err == message("accept", 43, "the main thread"));
    Child untold = sandboxed([&] { return s.set_up(dir.sub("ctl4"), sandbox::TpmIo::none, false); },
                             [&] { s.server->on_readable(); });
    CHECK(untold.status == kExitSandbox);
    CHECK(untold.err == message("accept4", 288, "the main thread"));
    Child vcpu = sandboxed([&] { return s.set_up(dir.sub("ctl5")); }, [&] {
        std::thread t([&] {
            if (sandbox::enter_vcpu_thread(0) != 0) ::_exit(81);
            s.server->on_readable();
            ::_exit(82);
        });
        t.join();
    });
    CHECK(vcpu.status == kExitSandbox);
    CHECK(vcpu.err == message("accept4", 288, "vCPU 0"));
}

TEST_CASE("control socket: unlinkat relative to its directory's fd, without flags, only") {
    TempDir dir;
    Served s;
    const std::string victim = dir.sub("victim");
    spit(victim, {'v'});
    Child cwd = sandboxed([&] { return s.set_up(dir.sub("ctl")); },
                          [&] { ::unlinkat(AT_FDCWD, victim.c_str(), 0); });
    CHECK(cwd.status == kExitSandbox);
    CHECK(cwd.err == message("unlinkat", 263, "the main thread"));
    REQUIRE(::mkdir(dir.sub("sub").c_str(), 0700) == 0);
    Child rmdir = sandboxed([&] { return s.set_up(dir.sub("ctl2")); },
                            [&] { ::unlinkat(s.server->dir_fd(), "sub", AT_REMOVEDIR); });
    CHECK(rmdir.status == kExitSandbox);
    CHECK(rmdir.err == message("unlinkat", 263, "the main thread"));
    Child untold = sandboxed([&] { return s.set_up(dir.sub("ctl3"), sandbox::TpmIo::none, false); },
                             [&] { s.server.reset(); });
    CHECK(untold.status == kExitSandbox);
    CHECK(untold.err == message("unlinkat", 263, "the main thread"));
    Child socket = sandboxed([&] { return s.set_up(dir.sub("ctl4")); },
                             [&] { ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0); });  // no new sockets
    CHECK(socket.status == kExitSandbox);
    CHECK(socket.err == message("socket", 41, "the main thread"));
    CHECK(slurp(victim) == std::vector<uint8_t>{'v'});
    CHECK(std::filesystem::is_directory(dir.sub("sub")));
}

TEST_CASE("snapshot saves: an unnamed file written and linked, nothing else opened or replaced") {
    TempDir dir;
    const std::string victim = dir.sub("victim"), target = dir.sub("saved.snap");
    spit(victim, {'v'});
    auto saves = [&] {
        sandbox::Policy policy;
        policy.snapshot_saves = true;
        return policy;
    };
    // What MachineControl::save does (vmm/machine_control.cpp).
    Child save = sandboxed(saves, [&] {
        if (::access(target.c_str(), F_OK) == 0 || errno != ENOENT) ::_exit(70);
        const int fd = ::open(dir.path.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
        if (fd < 0) ::_exit(71);
        if (::pwrite(fd, "snap", 4, 8192) != 4 || ::ftruncate(fd, 16384) != 0 || ::fdatasync(fd) != 0) ::_exit(72);
        const std::string link = "/proc/self/fd/" + std::to_string(fd);
        if (::linkat(AT_FDCWD, link.c_str(), AT_FDCWD, target.c_str(), AT_SYMLINK_FOLLOW) != 0) ::_exit(73);
        // linkat never replaces: an existing name is EEXIST, the file unchanged.
        if (::linkat(AT_FDCWD, link.c_str(), AT_FDCWD, victim.c_str(), AT_SYMLINK_FOLLOW) == 0 || errno != EEXIST)
            ::_exit(74);
    });
    CHECK(save.status == 0);
    CHECK(save.err.empty());
    CHECK(std::filesystem::file_size(target) == 16384);
    CHECK(slurp(victim) == std::vector<uint8_t>{'v'});
    for (int flags : {O_WRONLY | O_CLOEXEC, O_RDONLY | O_CLOEXEC, O_RDWR | O_TMPFILE | O_CLOEXEC}) {
        Child open = sandboxed(saves, [&] { ::open(victim.c_str(), flags); });  // an existing file: never
        CAPTURE(flags);
        CHECK(open.status == kExitSandbox);
        CHECK(open.err == message("openat", 257, "the main thread"));
    }
    Child hard = sandboxed(saves, [&] { ::linkat(AT_FDCWD, victim.c_str(), AT_FDCWD, dir.sub("x").c_str(), 0); });
    CHECK(hard.status == kExitSandbox);
    CHECK(hard.err == message("linkat", 265, "the main thread"));
    Child without = sandboxed([] { return sandbox::Policy{}; }, [&] { ::access(target.c_str(), F_OK); });
    CHECK(without.status == kExitSandbox);
    CHECK(without.err == message("access", 21, "the main thread"));
    CHECK(slurp(victim) == std::vector<uint8_t>{'v'});
}
