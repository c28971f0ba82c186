// The filters are written with libseccomp rather than as a hand-built BPF program: the rules
// read as a list of calls with their argument conditions, and libseccomp generates what a
// hand-built program easily gets wrong (the architecture check, the x32 syscall guard, 64-bit
// argument comparisons, jump offsets). The vCPU filter is compiled once here and exported as
// raw BPF, so a vCPU thread loads it with a single seccomp() call and no libseccomp code runs
// under the sandbox.
#include "vmm/host/sandbox.hpp"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <malloc.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <vector>

#include <fmt/core.h>

#include "vmm/host/console.hpp"
#include "vmm/base/error.hpp"
#include "vmm/base/log.hpp"
#include "vmm/base/unique_fd.hpp"

namespace minivmm::sandbox {

namespace {

// Ioctl numbers as the kernel defines them. kvm.cpp builds four of them from the kernel's
// 8-byte flex-array header because g++ sizes <linux/kvm.h>'s structs differently; these must
// stay equal to kvm.cpp's kSetGsiRouting, kGetSupportedCpuid, kSetCpuid2 and kSetMsrs.
constexpr unsigned long kSetGsiRouting = _IOW(KVMIO, 0x6a, uint64_t);
constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, uint64_t);
constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, uint64_t);
constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, uint64_t);

// What a vCPU thread does on its fds: run, inject interrupts for its devices, and read its
// registers to describe a fatal exit.
constexpr unsigned long kVcpuIoctls[] = {KVM_RUN, KVM_IRQ_LINE, KVM_SIGNAL_MSI, KVM_GET_REGS, KVM_GET_SREGS, KVM_TRANSLATE};
// What the disk's I/O thread does on the VM fd: interrupt the driver (as a vCPU does), and move
// the notify address routed to it when the guest moves the disk's BAR (vmm/virtio_io_thread.hpp).
constexpr unsigned long kInterruptIoctls[] = {KVM_IRQ_LINE, KVM_SIGNAL_MSI};
constexpr unsigned long kRouteIoctls[] = {KVM_IOEVENTFD};
// Building a machine (at start-up and on every guest reset), on VM and vCPU fds.
constexpr unsigned long kMachineIoctls[] = {KVM_SET_TSS_ADDR,      KVM_SET_IDENTITY_MAP_ADDR,  KVM_CREATE_IRQCHIP,
                                            KVM_CREATE_PIT2,       kSetGsiRouting,             KVM_SET_USER_MEMORY_REGION,
                                            KVM_CREATE_VCPU,       kSetCpuid2,
                                            KVM_REGISTER_COALESCED_MMIO,
                                            // -bios none: the boot vCPU's start state (vmm/direct_boot.hpp)
                                            KVM_GET_SREGS, KVM_SET_SREGS, KVM_SET_REGS, kSetMsrs, KVM_GET_LAPIC,
                                            KVM_SET_LAPIC};
// A snapshot's capture (the control socket's save; vmm/kvm/vcpu_snapshot.hpp, vm_snapshot.hpp), on the
// main thread with every vCPU stopped: reads only, and the KVM_RUN that completes a pending exit
// (allowed above). kGetMsrs and the XSAVE numbers as vmm/kvm/vcpu_snapshot.cpp builds them.
struct XsaveRegion {
    uint32_t region[1024];
};
constexpr unsigned long kSnapshotIoctls[] = {
    KVM_GET_MP_STATE, KVM_GET_SREGS2, KVM_GET_FPU, KVM_GET_XCRS, KVM_GET_DEBUGREGS, KVM_GET_TSC_KHZ, KVM_GET_VCPU_EVENTS,
    _IOWR(KVMIO, 0x88, uint64_t) /* KVM_GET_MSRS */, _IOR(KVMIO, 0xa4, XsaveRegion) /* KVM_GET_XSAVE */,
    _IOR(KVMIO, 0xcf, XsaveRegion) /* KVM_GET_XSAVE2 */, KVM_GET_IRQCHIP, KVM_GET_PIT2, KVM_GET_CLOCK};
// System ioctls, allowed on the /dev/kvm fd only.
constexpr unsigned long kSystemIoctls[] = {KVM_GET_API_VERSION, KVM_CHECK_EXTENSION, KVM_GET_VCPU_MMAP_SIZE,
                                           kGetSupportedCpuid, KVM_CREATE_VM};

constexpr int kMaxSyscall = 512;
constexpr size_t kNameSize = 32;

// Filled before the filters are loaded, read by the SIGSYS handler (no allocation there).
char g_syscall_names[kMaxSyscall][kNameSize];
std::atomic<bool> g_active{false};
#ifdef MINIVMM_TEST_HOOKS
std::atomic<VcpuStartHook> g_hook{nullptr};
#endif
std::vector<sock_filter> g_vcpu_program, g_io_program;
sock_fprog g_vcpu_fprog{}, g_io_fprog{};
thread_local char t_thread_name[kNameSize];

scmp_arg_cmp arg_eq(unsigned index, uint64_t value) { return {index, SCMP_CMP_EQ, value, 0}; }
scmp_arg_cmp arg_masked(unsigned index, uint64_t mask, uint64_t value) { return {index, SCMP_CMP_MASKED_EQ, mask, value}; }
// The kernel reads an ioctl request as 32 bits; compare only those.
scmp_arg_cmp ioctl_request(unsigned long request) { return arg_masked(1, 0xFFFF'FFFFu, request & 0xFFFF'FFFFu); }

[[noreturn]] void fail(const std::string& step, int err) {
    throw SetupError(kExitInternal, fmt::format("sandbox: {}: {}; run with -sandbox off to run without it", step,
                                                std::strerror(err)));
}

// One seccomp filter under construction: default action SIGSYS (trapped and reported).
class Filter {
public:
    explicit Filter(const char* what) : what_(what), ctx_(seccomp_init(SCMP_ACT_TRAP)) {
        if (!ctx_) fail(fmt::format("cannot create the {} filter", what_), ENOMEM);
        // A call through another ABI (32-bit int 0x80) is never legitimate here.
        check(seccomp_attr_set(ctx_, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS), "set its bad-arch action");
    }
    ~Filter() { seccomp_release(ctx_); }
    Filter(const Filter&) = delete;
    Filter& operator=(const Filter&) = delete;

    void allow(int nr, std::initializer_list<scmp_arg_cmp> args = {}) { add(SCMP_ACT_ALLOW, nr, args); }
    void refuse(int nr, int err) { add(SCMP_ACT_ERRNO(static_cast<uint32_t>(err)), nr, {}); }
    void allow_ioctls(std::span<const unsigned long> requests, int fd = -1) {
        for (unsigned long r : requests) {
            if (fd >= 0) allow(SCMP_SYS(ioctl), {arg_eq(0, static_cast<uint64_t>(fd)), ioctl_request(r)});
            else allow(SCMP_SYS(ioctl), {ioctl_request(r)});
        }
    }
    void check(int rc, const std::string& step) const {
        if (rc < 0) fail(fmt::format("cannot {} ({} filter)", step, what_), -rc);
    }
    scmp_filter_ctx get() const noexcept { return ctx_; }

private:
    void add(uint32_t action, int nr, std::initializer_list<scmp_arg_cmp> args) {
        char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
        std::string text = name ? name : std::to_string(nr);
        std::free(name);
        check(seccomp_rule_add_array(ctx_, action, nr, static_cast<unsigned>(args.size()), args.begin()),
              "add the rule for " + text);
    }

    const char* what_;
    scmp_filter_ctx ctx_;
};

// What every thread may do: synchronise, allocate (never executable memory), handle and send
// itself signals (the vCPU kick, the crash and SIGSYS handlers), read clocks, and exit.
void allow_thread_basics(Filter& f) {
    for (int nr : {SCMP_SYS(futex), SCMP_SYS(sched_yield), SCMP_SYS(sched_getaffinity), SCMP_SYS(munmap),
                   SCMP_SYS(madvise), SCMP_SYS(brk), SCMP_SYS(mremap), SCMP_SYS(getrandom), SCMP_SYS(getpid),
                   SCMP_SYS(gettid), SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday), SCMP_SYS(rt_sigreturn),
                   SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigaction), SCMP_SYS(exit), SCMP_SYS(exit_group)})
        f.allow(nr);
    f.allow(SCMP_SYS(mmap), {arg_masked(2, PROT_EXEC, 0)});
    f.allow(SCMP_SYS(mprotect), {arg_masked(2, PROT_EXEC, 0)});
    f.allow(SCMP_SYS(tgkill), {arg_eq(0, static_cast<uint64_t>(::getpid()))});
    // Restoring the terminal (TerminalRawMode::restore) at exit or on a fatal path: glibc's
    // tcsetattr() is TCSETS followed by a TCGETS.
    for (unsigned long request : {TCSETS, TCGETS})
        f.allow(SCMP_SYS(ioctl), {arg_eq(0, STDIN_FILENO), ioctl_request(request)});
}

// Device I/O done on vCPU threads: serial/debugcon output and log lines (write, poll when the
// output is full), the machine's event eventfd, the disk I/O thread's eventfd. Never the disk.
void allow_device_io(Filter& f) {
    for (int nr : {SCMP_SYS(write), SCMP_SYS(poll)}) f.allow(nr);
}

// The disk image, on the disk's I/O thread only.
void allow_disk_io(Filter& f) {
    for (int nr : {SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(fdatasync)}) f.allow(nr);
}

// The TPM backend's run-time I/O. swtpm: commands and the established-flag reset on the worker,
// cancel from vCPUs, the power cycle from the main thread, on sockets connected at start-up.
// libtpms: state files written by the worker (NV changes, the established-flag reset that TPM
// 1.2 writes to its NV) and the main thread (power cycle, exit), always relative to the state
// directory's fd; TPMLIB also reads clocks and the pid (getpid, clock_gettime: allowed above).
// A vCPU only reads the cached established flag and cancels: no file system calls.
void allow_tpm_io(Filter& f, TpmIo tpm, bool vcpu) {
    if (tpm == TpmIo::swtpm) {
        for (int nr : {SCMP_SYS(sendmsg), SCMP_SYS(recvfrom)}) f.allow(nr);
    } else if (tpm == TpmIo::libtpms && !vcpu) {
        for (int nr : {SCMP_SYS(openat), SCMP_SYS(newfstatat), SCMP_SYS(fstat), SCMP_SYS(fsync), SCMP_SYS(renameat),
                       SCMP_SYS(unlinkat)})
            f.allow(nr);
    }
}

void build_vcpu_filter(Filter& f, const Policy& policy) {
    allow_thread_basics(f);
    allow_device_io(f);
    allow_tpm_io(f, policy.tpm, true);
    f.allow_ioctls(kVcpuIoctls);
}

// The disk's I/O thread: wait on its eventfds (poll, read), log (write), the disk, interrupts.
void build_io_filter(Filter& f) {
    allow_thread_basics(f);
    allow_device_io(f);
    allow_disk_io(f);
    f.allow(SCMP_SYS(read));
    f.allow_ioctls(kInterruptIoctls);
    f.allow_ioctls(kRouteIoctls);
}

// The union over all threads: the vCPU rules plus what the main thread needs to rebuild a
// machine (its -kernel-cache kernel too) and wait for it, and what the console threads, the disk's I/O thread and the TPM worker need.
void build_process_filter(Filter& f, const Policy& policy) {
    build_vcpu_filter(f, policy);
    allow_disk_io(f);
    f.allow_ioctls(kRouteIoctls);  // the I/O thread's other calls are in the vCPU rules
    if (policy.tpm == TpmIo::libtpms) allow_tpm_io(f, policy.tpm, false);  // swtpm: in the vCPU rules already
    for (int nr : {SCMP_SYS(read), SCMP_SYS(close), SCMP_SYS(eventfd2), SCMP_SYS(set_robust_list), SCMP_SYS(rseq)})
        f.allow(nr);
    f.allow_ioctls(kMachineIoctls);
    f.allow_ioctls(kSystemIoctls, policy.kvm_fd);
    // -kernel-cache: a rebuilt machine's kernel is read from the entry opened at start-up, once the
    // fstat system call (not glibc's newfstatat, which takes a path) shows it unchanged; pread64
    // is allowed above. On that fd only: nothing else is stat()ed, nothing opened.
    if (policy.kernel_cache_fd >= 0)
        f.allow(SCMP_SYS(fstat), {arg_eq(0, static_cast<uint64_t>(policy.kernel_cache_fd))});
    // -tpm-swtpm: reaping and, if it lingers, stopping exactly the swtpm minivmm started (its pidfd;
    // vmm/tpm/swtpm_process.hpp ChildProcess::stop). No kill(): a pid could be reused.
    if (policy.swtpm_pidfd >= 0) {
        const auto pidfd = static_cast<uint64_t>(policy.swtpm_pidfd);
        f.allow(SCMP_SYS(waitid), {arg_eq(0, P_PIDFD), arg_eq(1, pidfd)});
        f.allow(SCMP_SYS(pidfd_send_signal), {arg_eq(0, pidfd)});
    }
    // The control socket: clients accepted as ControlSocket does, its file removed at exit.
    if (policy.control_listen_fd >= 0)
        f.allow(SCMP_SYS(accept4), {arg_eq(0, static_cast<uint64_t>(policy.control_listen_fd)),
                                    arg_eq(3, SOCK_CLOEXEC | SOCK_NONBLOCK)});
    if (policy.control_dir_fd >= 0)
        f.allow(SCMP_SYS(unlinkat), {arg_eq(0, static_cast<uint64_t>(policy.control_dir_fd)), arg_eq(2, 0)});
    if (policy.snapshot_saves) {
        f.allow_ioctls(kSnapshotIoctls);
        f.allow(SCMP_SYS(access));
        f.allow(SCMP_SYS(openat), {arg_masked(2, O_TMPFILE | O_ACCMODE, O_TMPFILE | O_WRONLY)});
        f.allow(SCMP_SYS(ftruncate));
        f.allow(SCMP_SYS(linkat), {arg_eq(4, AT_SYMLINK_FOLLOW)});
        if (policy.disk_fd >= 0) f.allow(SCMP_SYS(fstat), {arg_eq(0, static_cast<uint64_t>(policy.disk_fd))});
    }
    // Threads, never processes: glibc tries clone3 first (whose flags seccomp cannot see) and
    // falls back to clone on ENOSYS, where CLONE_THREAD and the sharing flags are checked.
    f.refuse(SCMP_SYS(clone3), ENOSYS);
    constexpr uint64_t kThreadFlags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
    f.allow(SCMP_SYS(clone), {arg_masked(0, kThreadFlags, kThreadFlags)});
    // A new vCPU or I/O thread loads its own, narrower filter (without TSYNC: it can only restrict itself).
    f.allow(SCMP_SYS(seccomp), {arg_eq(0, SECCOMP_SET_MODE_FILTER), arg_eq(1, 0)});
}

// Compiles `f` to raw BPF (through a memfd: libseccomp 2.5 exports only to an fd).
std::vector<sock_filter> export_program(const Filter& f) {
    UniqueFd fd(::memfd_create("minivmm-seccomp", MFD_CLOEXEC));
    if (!fd.valid()) fail("memfd_create", errno);
    f.check(seccomp_export_bpf(f.get(), fd.get()), "export the BPF program");
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) fail("fstat of the exported program", errno);
    if (st.st_size <= 0 || st.st_size % static_cast<off_t>(sizeof(sock_filter)) != 0 || st.st_size > (1 << 20))
        fail("the exported program has an odd size", EINVAL);
    std::vector<sock_filter> program(static_cast<size_t>(st.st_size) / sizeof(sock_filter));
    if (::pread(fd.get(), program.data(), static_cast<size_t>(st.st_size), 0) != st.st_size)
        fail("reading the exported program", errno ? errno : EIO);
    return program;
}

void fill_syscall_names() {
    for (int nr = 0; nr < kMaxSyscall; ++nr) {
        char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
        if (name) {
            std::strncpy(g_syscall_names[nr], name, kNameSize - 1);
            std::free(name);
        }
    }
}

void on_sigsys(int, siginfo_t* info, void*) {
    const int saved_errno = errno;
    const long nr = info->si_syscall;
    const char* name = nr >= 0 && nr < kMaxSyscall && g_syscall_names[nr][0] ? g_syscall_names[nr] : nullptr;
    char thread[kNameSize] = "thread ";
    if (t_thread_name[0]) {
        std::memcpy(thread, t_thread_name, kNameSize);
    } else {
        // "thread <tid>", digits written by hand (no snprintf in a signal handler).
        long tid = ::syscall(SYS_gettid);
        char digits[16];
        size_t n = 0;
        do digits[n++] = static_cast<char>('0' + tid % 10); while ((tid /= 10) > 0 && n < sizeof digits);
        for (size_t i = 0; i < n; ++i) thread[7 + i] = digits[n - 1 - i];
        thread[7 + n] = '\0';
    }
    char line[256];
    size_t len = format_violation(std::span<char>(line, sizeof line - 1), nr, name, thread);
    line[len++] = '\n';
    TerminalRawMode::restore();
    ssize_t ignored = ::write(STDERR_FILENO, line, len);
    (void)ignored;
    errno = saved_errno;
    ::_exit(kExitSandbox);
}

void install_sigsys_handler() {
    struct sigaction sa {};
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    sigfillset(&sa.sa_mask);  // nothing interrupts the report
    if (::sigaction(SIGSYS, &sa, nullptr) != 0) fail("cannot install the SIGSYS handler", errno);
}

}  // namespace

size_t format_violation(std::span<char> out, long nr, const char* name, const char* thread) noexcept {
    size_t len = 0;
    auto put = [&](const char* s) {
        while (*s && len < out.size()) out[len++] = *s++;
    };
    char digits[24];
    size_t n = 0;
    unsigned long v = nr < 0 ? static_cast<unsigned long>(-nr) : static_cast<unsigned long>(nr);
    do digits[n++] = static_cast<char>('0' + v % 10); while ((v /= 10) > 0);
    char number[26];
    size_t k = 0;
    if (nr < 0) number[k++] = '-';
    while (n > 0) number[k++] = digits[--n];
    number[k] = '\0';
    put("minivmm: error: sandbox: forbidden system call ");
    put(name ? name : "unknown");
    put(" (");
    put(number);
    put(") in ");
    put(thread ? thread : "an unnamed thread");
    put("; run with -sandbox off to debug");
    return len;
}

void set_thread_name(std::string_view name) noexcept {
    size_t n = std::min(name.size(), kNameSize - 1);
    std::memcpy(t_thread_name, name.data(), n);
    t_thread_name[n] = '\0';
}

#ifdef MINIVMM_TEST_HOOKS
void set_vcpu_start_hook(VcpuStartHook hook) noexcept { g_hook.store(hook); }
#endif

void use_one_malloc_arena() noexcept { ::mallopt(M_ARENA_MAX, 1); }

bool active() noexcept { return g_active.load(std::memory_order_acquire); }

void install(const Policy& policy) {
    if (active()) throw SetupError(kExitInternal, "sandbox: installed twice");
    if (policy.kvm_fd < 0) throw SetupError(kExitInternal, "sandbox: no /dev/kvm fd given");
    fill_syscall_names();
    Filter vcpu("vCPU");
    build_vcpu_filter(vcpu, policy);
    g_vcpu_program = export_program(vcpu);
    g_vcpu_fprog.len = static_cast<unsigned short>(g_vcpu_program.size());
    g_vcpu_fprog.filter = g_vcpu_program.data();
    Filter io("I/O thread");
    build_io_filter(io);
    g_io_program = export_program(io);
    g_io_fprog.len = static_cast<unsigned short>(g_io_program.size());
    g_io_fprog.filter = g_io_program.data();

    Filter process("process");
    build_process_filter(process, policy);
    process.check(seccomp_attr_set(process.get(), SCMP_FLTATR_CTL_NNP, 1), "set no_new_privs");
    process.check(seccomp_attr_set(process.get(), SCMP_FLTATR_CTL_TSYNC, 1), "synchronise all threads");
    install_sigsys_handler();
    if (!t_thread_name[0]) set_thread_name("the main thread");
    process.check(seccomp_load(process.get()), "load the filter");
    g_active.store(true, std::memory_order_release);
    log::info("sandbox: seccomp filters active ({} BPF instructions per vCPU thread)", g_vcpu_program.size());
}

int enter_vcpu_thread(unsigned index) noexcept {
    char name[kNameSize];
    std::snprintf(name, sizeof name, "vCPU %u", index);  // (fmt's format_to_n does not link with clang + libfmt.so 9)
    set_thread_name(name);
    if (active() && ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &g_vcpu_fprog) != 0) return errno;
#ifdef MINIVMM_TEST_HOOKS
    if (VcpuStartHook hook = g_hook.load()) hook(index);
#endif
    return 0;
}

int enter_io_thread(std::string_view name) noexcept {
    set_thread_name(name);
    if (active() && ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &g_io_fprog) != 0) return errno;
    return 0;
}

}  // namespace minivmm::sandbox
