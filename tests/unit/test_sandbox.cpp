// The seccomp sandbox without KVM: each case forks a child that installs the real filters, does
// what minivmm's threads do, then one thing they must not; the child's stderr and exit status
// are what the SIGSYS handler made of it.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "vmm/base/error.hpp"
#include "vmm/host/sandbox.hpp"

using namespace minivmm;

namespace {

struct Child {
    int status = -1;  // exit status, or 128 + signal
    std::string err;  // what it wrote to stderr
};

// Runs `body` in a forked child under the sandbox (the child exits 0 if `body` returns).
Child sandboxed(sandbox::TpmIo tpm, const std::function<void(int kvm_fd)>& body, int kernel_cache_fd = -1) {
    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    std::fflush(nullptr);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::dup2(pipe_fds[1], STDERR_FILENO);
        ::close(pipe_fds[0]);
        int kvm_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);  // stands in for /dev/kvm
        try {
            sandbox::Policy policy;
            policy.kvm_fd = kvm_fd;
            policy.tpm = tpm;
            policy.kernel_cache_fd = kernel_cache_fd;
            sandbox::install(policy);
        } catch (const std::exception& e) {
            ::write(STDERR_FILENO, e.what(), std::strlen(e.what()));
            ::_exit(100);
        }
        body(kvm_fd);
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

// What minivmm's threads do all the time: allocate, start and join threads, write, poll, read.
void everyday_work() {
    std::vector<std::vector<char>> blocks;
    for (int i = 0; i < 64; ++i) blocks.emplace_back(static_cast<size_t>(1) << (i % 22), 'x');  // up to 2 MiB: mmap
    blocks.clear();
    std::thread t([] {
        void* p = ::mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) ::_exit(50);
        ::munmap(p, 1 << 20);
    });
    t.join();
}

}  // namespace

TEST_CASE("the violation line names the call, its number and the thread") {
    char buf[160];
    size_t n = sandbox::format_violation(buf, 41, "socket", "vCPU 0");
    CHECK(std::string(buf, n) == "minivmm: error: sandbox: forbidden system call socket (41) in vCPU 0; run with "
                                 "-sandbox off to debug");
    n = sandbox::format_violation(buf, 999, nullptr, "thread 12");
    CHECK(std::string(buf, n).find("forbidden system call unknown (999) in thread 12;") != std::string::npos);
    char tiny[10];
    CHECK(sandbox::format_violation(tiny, 0, "read", "main") == sizeof tiny);  // truncated, never overflows
}

TEST_CASE("allowed work runs; a forbidden call ends the process with status 7 and one line") {
    Child c = sandboxed(sandbox::TpmIo::none, [](int) {
        void* p = std::malloc(100 << 20);  // large: mmap
        std::free(p);
        std::thread t([] { std::vector<int> v(1000, 1); });  // clone3 -> ENOSYS -> clone(CLONE_THREAD)
        t.join();
        ::write(STDERR_FILENO, "ok\n", 3);
        ::socket(AF_INET, SOCK_STREAM, 0);
        ::_exit(0);
    });
    CHECK(c.status == kExitSandbox);
    CHECK(c.err == "ok\n" + message("socket", 41, "the main thread"));
}

TEST_CASE("threads only: fork is refused") {
    Child c = sandboxed(sandbox::TpmIo::none, [](int) { ::fork(); });
    CHECK(c.status == kExitSandbox);
    CHECK(c.err == message("clone", 56, "the main thread"));
}

TEST_CASE("no executable memory") {
    Child c = sandboxed(sandbox::TpmIo::none, [](int) {
        ::mmap(nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    });
    CHECK(c.status == kExitSandbox);
    CHECK(c.err == message("mmap", 9, "the main thread"));
}

TEST_CASE("KVM system ioctls only on the /dev/kvm fd; unknown ioctls nowhere") {
    // On the kvm fd the call passes the filter (and fails in /dev/null's driver).
    Child ok = sandboxed(sandbox::TpmIo::none, [](int kvm_fd) {
        if (::ioctl(kvm_fd, KVM_CHECK_EXTENSION, 0) == 0) ::_exit(60);
    });
    CHECK(ok.status == 0);
    CHECK(ok.err.empty());
    Child other_fd = sandboxed(sandbox::TpmIo::none, [](int kvm_fd) { ::ioctl(kvm_fd + 1, KVM_CREATE_VM, 0); });
    CHECK(other_fd.status == kExitSandbox);
    CHECK(other_fd.err == message("ioctl", 16, "the main thread"));
    Child unknown = sandboxed(sandbox::TpmIo::none, [](int kvm_fd) { ::ioctl(kvm_fd, FIONREAD, nullptr); });
    CHECK(unknown.status == kExitSandbox);
}

TEST_CASE("a vCPU thread is narrower than the process: read is refused there") {
    Child c = sandboxed(sandbox::TpmIo::none, [](int kvm_fd) {
        char byte;
        if (::read(kvm_fd, &byte, 1) != 0) ::_exit(70);  // /dev/null: EOF; allowed in the main thread
        std::thread t([kvm_fd] {
            if (sandbox::enter_vcpu_thread(3) != 0) ::_exit(71);
            char b;
            ::write(kvm_fd, "x", 1);  // device output: allowed
            ::read(kvm_fd, &b, 1);    // not something a vCPU does
            ::_exit(72);
        });
        t.join();
    });
    CHECK(c.status == kExitSandbox);
    CHECK(c.err == message("read", 0, "vCPU 3"));
}

TEST_CASE("file access only with the in-process TPM") {
    Child none = sandboxed(sandbox::TpmIo::none, [](int) { ::open("/dev/null", O_RDONLY); });
    CHECK(none.status == kExitSandbox);
    CHECK(none.err == message("openat", 257, "the main thread"));
    Child swtpm = sandboxed(sandbox::TpmIo::swtpm, [](int) { ::open("/dev/null", O_RDONLY); });
    CHECK(swtpm.status == kExitSandbox);
    Child libtpms = sandboxed(sandbox::TpmIo::libtpms, [](int) {
        int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0) ::_exit(80);
        ::close(fd);
        everyday_work();
        ::socket(AF_UNIX, SOCK_STREAM, 0);  // the state directory, not new sockets
    });
    CHECK(libtpms.status == kExitSandbox);
    CHECK(libtpms.err == message("socket", 41, "the main thread"));
}

TEST_CASE("with the in-process TPM a vCPU thread still cannot open, rename or remove files") {
    // The state files are written by the TPM worker and the main thread only (vmm/host/README.md "Sandbox").
    Child open_on_vcpu = sandboxed(sandbox::TpmIo::libtpms, [](int) {
        int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);  // the main thread may
        if (fd < 0) ::_exit(80);
        ::close(fd);
        std::thread t([] {
            if (sandbox::enter_vcpu_thread(1) != 0) ::_exit(81);
            ::open("/dev/null", O_RDONLY | O_CLOEXEC);
            ::_exit(82);
        });
        t.join();
    });
    CHECK(open_on_vcpu.status == kExitSandbox);
    CHECK(open_on_vcpu.err == message("openat", 257, "vCPU 1"));
    Child unlink_on_vcpu = sandboxed(sandbox::TpmIo::libtpms, [](int) {
        std::thread t([] {
            if (sandbox::enter_vcpu_thread(2) != 0) ::_exit(81);
            ::unlinkat(AT_FDCWD, "/nonexistent/minivmm-test", 0);
            ::_exit(82);
        });
        t.join();
    });
    CHECK(unlink_on_vcpu.status == kExitSandbox);
    CHECK(unlink_on_vcpu.err == message("unlinkat", 263, "vCPU 2"));
}

TEST_CASE("unnamed threads are reported by thread id") {
    Child c = sandboxed(sandbox::TpmIo::none, [](int) {
        std::thread t([] { ::socket(AF_UNIX, SOCK_STREAM, 0); });
        t.join();
    });
    CHECK(c.status == kExitSandbox);
    CHECK(c.err.find("forbidden system call socket (41) in thread ") != std::string::npos);
}

TEST_CASE("the disk is the I/O thread's: pread64 there, never on a vCPU; nothing else new there") {
    // kvm_fd is /dev/null: pread64 passes the filter and reads EOF.
    Child io = sandboxed(sandbox::TpmIo::none, [](int kvm_fd) {
        std::thread t([kvm_fd] {
            if (sandbox::enter_io_thread("virtio-pci-2 I/O") != 0) ::_exit(91);
            char b;
            if (::pread(kvm_fd, &b, 1, 0) != 0) ::_exit(92);
            if (::fdatasync(kvm_fd) != 0 && errno != EINVAL) ::_exit(93);
            ::socket(AF_UNIX, SOCK_STREAM, 0);
            ::_exit(94);
        });
        t.join();
    });
    CHECK(io.status == kExitSandbox);
    CHECK(io.err == message("socket", 41, "virtio-pci-2 I/O"));
    Child io_open = sandboxed(sandbox::TpmIo::libtpms, [](int) {
        std::thread t([] {
            if (sandbox::enter_io_thread("virtio-pci-2 I/O") != 0) ::_exit(91);
            ::open("/dev/null", O_RDONLY | O_CLOEXEC);  // the process may (libtpms), this thread not
            ::_exit(94);
        });
        t.join();
    });
    CHECK(io_open.status == kExitSandbox);
    CHECK(io_open.err == message("openat", 257, "virtio-pci-2 I/O"));
    Child vcpu = sandboxed(sandbox::TpmIo::none, [](int kvm_fd) {
        char b;
        if (::pread(kvm_fd, &b, 1, 0) != 0) ::_exit(92);  // the process may (the I/O thread's rules)
        std::thread t([kvm_fd] {
            if (sandbox::enter_vcpu_thread(0) != 0) ::_exit(91);
            char c;
            ::pread(kvm_fd, &c, 1, 0);
            ::_exit(94);
        });
        t.join();
    });
    CHECK(vcpu.status == kExitSandbox);
    CHECK(vcpu.err == message("pread64", 17, "vCPU 0"));
}

TEST_CASE("-kernel-cache: fstat (the system call) and pread64 on the entry's fd only; never open, never newfstatat") {
    // What PvhKernel::load_into does on the main thread when a guest reset rebuilds the machine.
    const int cache_fd = ::open("/proc/self/exe", O_RDONLY | O_CLOEXEC);  // any regular file
    REQUIRE(cache_fd >= 0);
    for (sandbox::TpmIo tpm : {sandbox::TpmIo::none, sandbox::TpmIo::swtpm, sandbox::TpmIo::libtpms}) {
        Child ok = sandboxed(tpm, [cache_fd](int) {
            struct stat st {};
            char b[4];
            if (::syscall(SYS_fstat, static_cast<long>(cache_fd), &st) != 0 || ::pread(cache_fd, b, 4, 0) != 4) ::_exit(95);
        }, cache_fd);
        CHECK(ok.status == 0);
        CHECK(ok.err.empty());
    }
    Child other_fd = sandboxed(sandbox::TpmIo::none, [cache_fd](int kvm_fd) {
        struct stat st {};
        ::syscall(SYS_fstat, static_cast<long>(kvm_fd), &st);
        (void)cache_fd;
    }, cache_fd);
    CHECK(other_fd.status == kExitSandbox);
    CHECK(other_fd.err == message("fstat", 5, "the main thread"));
    Child glibc_fstat = sandboxed(sandbox::TpmIo::none, [cache_fd](int) {
        struct stat st {};
        ::fstat(cache_fd, &st);  // glibc 2.33+: newfstatat(fd, "", AT_EMPTY_PATH), a path the filter cannot see
    }, cache_fd);
    CHECK(glibc_fstat.status == kExitSandbox);
    CHECK(glibc_fstat.err == message("newfstatat", 262, "the main thread"));
    Child open = sandboxed(sandbox::TpmIo::none, [](int) { ::open("/proc/self/exe", O_RDONLY | O_CLOEXEC); }, cache_fd);
    CHECK(open.status == kExitSandbox);
    CHECK(open.err == message("openat", 257, "the main thread"));
    Child no_cache = sandboxed(sandbox::TpmIo::none, [cache_fd](int) {
        struct stat st {};
        ::syscall(SYS_fstat, static_cast<long>(cache_fd), &st);
    });
    CHECK(no_cache.status == kExitSandbox);
    CHECK(no_cache.err == message("fstat", 5, "the main thread"));
    ::close(cache_fd);
}
