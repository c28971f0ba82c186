// The swtpm processes minivmm runs itself (-tpm-swtpm DIR): swtpm_setup once, to manufacture the
// TPM, and `swtpm socket` for the whole run. Each child gets a minimal environment (PATH, HOME),
// only the descriptors named here (everything else is closed), no blocked or ignored signals,
// and PR_SET_PDEATHSIG(SIGKILL), so a SIGKILLed minivmm leaves nothing running
// (prctl(2): the signal follows the death of the thread that forked: always the main thread here).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "devices/tpm_types.hpp"
#include "vmm/base/unique_fd.hpp"

namespace minivmm {

// Whom a child runs as, if not as minivmm: the -runas user (swtpm is started while minivmm is still
// root, so it gets the user's ids itself).
struct ChildIds {
    uid_t uid = 0;
    gid_t gid = 0;
};

// A child process, reaped and, if still running, killed when this goes. Holds a pidfd
// (pidfd_open(2)) so that waiting and signalling name exactly this child, also under the sandbox.
class ChildProcess {
public:
    // Forks and executes `argv[0]` (an absolute path) with `argv`. `keep_fd`, if >= 0, becomes
    // fd 3 in the child; `output_fd`, if >= 0, its stdout and stderr (else /dev/null's). Throws
    // std::runtime_error with one line if the process cannot be created.
    static ChildProcess spawn(const std::vector<std::string>& argv, const std::optional<ChildIds>& ids,
                              int keep_fd = -1, int output_fd = -1);
    ChildProcess(ChildProcess&& o) noexcept;
    ChildProcess& operator=(ChildProcess&&) = delete;
    ChildProcess(const ChildProcess&) = delete;
    ~ChildProcess() { stop(std::chrono::milliseconds(0)); }

    pid_t pid() const noexcept { return pid_; }
    int pidfd() const noexcept { return pidfd_.get(); }
    // Whether it has exited (reaped now if so); its wait status in exit_status().
    bool exited() noexcept;
    // Waits up to `timeout` for it to exit; true if it did (and was reaped).
    bool wait_for_exit(std::chrono::milliseconds timeout) noexcept;
    // The wait status (as waitid's si_code/si_status, formatted): "exit status 1", "killed by signal 9".
    const std::string& exit_status() const noexcept { return status_; }
    // Waits up to `grace` for it to exit by itself, then SIGTERM and 1 s, then SIGKILL; always
    // reaps. Calls only poll, waitid and pidfd_send_signal on the pidfd (the sandbox allows those).
    void stop(std::chrono::milliseconds grace) noexcept;

private:
    ChildProcess(pid_t pid, UniqueFd pidfd) noexcept : pid_(pid), pidfd_(std::move(pidfd)) {}
    bool reap(bool block) noexcept;

    pid_t pid_ = -1;
    UniqueFd pidfd_;
    bool reaped_ = false;
    std::string status_;
};

// `swtpm socket` serving the TPM in `state_dir`, its control channel one end of a socketpair
// (--ctrl type=unixio,clientfd=3): no socket path exists, so none can be raced for or left
// behind. --terminate: swtpm exits when its data channel (the socketpair minivmm passes with
// CMD_SET_DATAFD) closes, i.e. when minivmm exits however it exits; verified with swtpm 0.7.1
// (the control connection's close alone does not end it).
class SwtpmProcess {
public:
    // Throws std::runtime_error with one line.
    SwtpmProcess(const std::string& swtpm, const std::string& state_dir, TpmVersion version,
                 const std::optional<ChildIds>& ids);
    // Our end of the control channel (connected, non-blocking, close-on-exec), once.
    UniqueFd take_control() noexcept { return std::move(control_); }
    ChildProcess& process() noexcept { return child_; }
    const ChildProcess& process() const noexcept { return child_; }

private:
    UniqueFd control_;
    ChildProcess child_;
};

// Manufactures the TPM in `state_dir` (which holds no TPM state yet) with swtpm_setup, run as
// minivmm's own user with its environment's HOME and XDG_CONFIG_HOME, as libvirt
// does (src/qemu/qemu_tpm.c qemuTPMEmulatorRunSetup): EK and platform certificates signed by
// swtpm's local CA (swtpm_localca, configured in swtpm_setup.conf), NV locked. Waits up to
// `timeout`. Throws std::runtime_error with one line (the last line swtpm_setup printed).
void run_swtpm_setup(const std::string& swtpm_setup, const std::string& swtpm, const std::string& state_dir,
                     TpmVersion version, std::chrono::milliseconds timeout);

// The absolute path of `name` found in the directories of $PATH (executable regular file), or "".
std::string find_in_path(const std::string& name);

}  // namespace minivmm
