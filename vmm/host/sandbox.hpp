// The seccomp-bpf sandbox (vmm/host/README.md "Sandbox"): once set-up is done (files and sockets opened,
// the first machine built), every thread runs under an allowlist of system calls, and each vCPU
// thread adds a narrower one of its own at its start (seccomp filters stack: a call must pass
// both). A call outside the allowlist is trapped: a SIGSYS handler prints one line naming the
// call and the thread and the process exits with kExitSandbox.
//
// The process-wide allowlist is the union of what every thread does for the rest of the run:
// the main thread rebuilds the Machine on every guest reset (new KVM VM and vCPU fds, guest RAM,
// threads) and power-cycles the TPM; the console input thread reads stdin; the TPM worker talks
// to swtpm or writes libtpms's state files; the vCPU threads run KVM_RUN and their devices' I/O;
// the disk's I/O thread reads and writes the disk image. vCPU and I/O threads narrow it further.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

namespace minivmm::sandbox {

// The run-time I/O of the TPM backend, which the filters must allow.
enum class TpmIo {
    none,     // no TPM
    swtpm,    // -tpm-sock, -tpm-swtpm: sendmsg/recv/poll on the connected control and data sockets
    libtpms,  // -tpm-state: openat/write/fsync/renameat/unlinkat in the state directory
};

struct Policy {
    int kvm_fd = -1;  // /dev/kvm: the only fd on which the system ioctls (KVM_CREATE_VM, ...) are allowed
    TpmIo tpm = TpmIo::none;
    int kernel_cache_fd = -1;  // the -kernel-cache entry read in place at every power-on: fstat allowed on it
    // -tpm-swtpm: the pidfd of the swtpm minivmm runs; at exit the main thread waits for it
    // (waitid P_PIDFD) and, if it lingers, signals it (pidfd_send_signal): on this fd only.
    int swtpm_pidfd = -1;
    // The control socket (vmm/host/control_socket.hpp): the main thread accepts clients on its
    // listening fd (accept4 with SOCK_CLOEXEC | SOCK_NONBLOCK, on that fd only; read, write, poll
    // and close are allowed anyway) and at exit removes the socket file relative to the O_PATH fd
    // of its directory (unlinkat with no flags, on that fd only).
    int control_listen_fd = -1;
    int control_dir_fd = -1;
    // The control socket's "save" (vmm/machine_control.hpp): the main thread checks that the target
    // does not exist (access), makes an unnamed file in its directory (openat with O_TMPFILE: no
    // existing file can be opened that way), writes it (pwrite64, ftruncate, fdatasync) and names it
    // (linkat from /proc/self/fd with AT_SYMLINK_FOLLOW, which never replaces a file), and stats
    // the disk image for its stamp (fstat on `disk_fd` only); it reads the VM's and vCPUs' KVM
    // state (the KVM_GET_* ioctls of vmm/kvm/vcpu_snapshot.hpp and vm_snapshot.hpp).
    bool snapshot_saves = false;
    int disk_fd = -1;
};

// Installs the SIGSYS reporter and the process-wide filter on every thread of the process
// (SECCOMP_FILTER_FLAG_TSYNC), and compiles the vCPU filter that enter_vcpu_thread() loads.
// Sets no_new_privs. Call once, after set-up and after dropping privileges. Throws SetupError
// (kExitInternal) naming the step that failed.
void install(const Policy& policy);

// Call first thing in main, before any thread starts: every thread allocates from glibc's main
// arena (mallopt M_ARENA_MAX 1). A per-thread arena's heap, when a free() shrinks it, makes glibc
// read /proc/sys/vm/overcommit_memory once (malloc/arena.c shrink_heap -> check_may_shrink_heap),
// an openat the filters forbid: a -snapshot overlay grown by a vCPU and freed at exit ended
// minivmm with status 7 after a systemd guest's power-off. The main arena shrinks with brk.
void use_one_malloc_arena() noexcept;

// True once install() succeeded.
bool active() noexcept;

// Called first thing on every vCPU thread: names the thread ("vCPU N") for the sandbox message
// and, when the sandbox is active, loads the vCPU filter on this thread. Returns 0 or an errno.
int enter_vcpu_thread(unsigned index) noexcept;

// Called first thing on the disk's I/O thread (vmm/virtio_io_thread.hpp): names it and, when the
// sandbox is active, loads its filter (the disk, its eventfds, interrupts). Returns 0 or an errno.
int enter_io_thread(std::string_view name) noexcept;

// Names the calling thread in the sandbox message (at most 31 bytes kept). Threads not named
// appear as "thread <tid>".
void set_thread_name(std::string_view name) noexcept;

#ifdef MINIVMM_TEST_HOOKS
// minivmm-testhooks only (meson.build compiles this file a second time for it): a function every
// vCPU thread calls right after its filter is loaded, used to prove that a forbidden call is
// stopped. nullptr (the default) = none.
using VcpuStartHook = void (*)(unsigned index);
void set_vcpu_start_hook(VcpuStartHook hook) noexcept;
#endif

// The line the SIGSYS handler prints, without the trailing newline:
//   minivmm: error: sandbox: forbidden system call NAME (NR) in THREAD; run with -sandbox off to debug
// `name` may be nullptr ("unknown"). Writes at most out.size() bytes and returns how many.
// Async-signal-safe.
size_t format_violation(std::span<char> out, long nr, const char* name, const char* thread) noexcept;

}  // namespace minivmm::sandbox
