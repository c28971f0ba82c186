// -tpm-swtpm DIR: minivmm runs its own swtpm, as libvirt does for QEMU (src/qemu/qemu_tpm.c): the
// state directory created and locked (swtpm_state_dir.hpp), the TPM manufactured there on first
// use by swtpm_setup with EK and platform certificates from swtpm's local CA, then `swtpm socket`
// started on a socketpair (swtpm_process.hpp) and used through the same client as -tpm-sock
// (swtpm_backend.hpp). swtpm dying is handled as -tpm-sock's: one loud line, TPM failures from then
// on, never a fresh TPM. At exit, on every path: CMD_SHUTDOWN (swtpm saves and exits), a short
// wait, then SIGTERM and SIGKILL; a SIGKILLed minivmm takes swtpm with it (PR_SET_PDEATHSIG, and
// --terminate on the data channel's close).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "vmm/tpm/forwarding_backend.hpp"
#include "vmm/tpm/swtpm_backend.hpp"
#include "vmm/tpm/swtpm_process.hpp"
#include "vmm/tpm/swtpm_state_dir.hpp"

namespace minivmm {

class ManagedSwtpm final : public ForwardingBackend {
public:
    struct Options {
        std::string state_dir;
        TpmVersion version = TpmVersion::v2_0;
        std::optional<ChildIds> ids;  // -runas: swtpm runs as this user (swtpm_setup as minivmm's)
        SwtpmLimits limits;           // limits.start also bounds swtpm_setup
    };
    // What open() checks first, without creating anything: the programs are in PATH, the directory
    // can be created or is a usable one. Throws SwtpmStateError.
    static void check(const std::string& state_dir, TpmVersion version);
    // Throws std::runtime_error (SwtpmStateError for the directory) with one line; nothing is left
    // running then.
    static std::unique_ptr<ManagedSwtpm> open(const Options& options);
    ~ManagedSwtpm() override;

    // CMD_SHUTDOWN, then the process is stopped and reaped (ChildProcess::stop).
    void shutdown() noexcept override;
    // The pidfd the sandbox lets the main thread wait on and signal (vmm/host/sandbox.hpp).
    int pidfd() const noexcept { return process_->process().pidfd(); }
    pid_t pid() const noexcept { return process_->process().pid(); }
    // How long swtpm gets to save its state and exit after CMD_SHUTDOWN before SIGTERM.
    static constexpr std::chrono::milliseconds kExitGrace{3000};

private:
    ManagedSwtpm(std::unique_ptr<SwtpmBackend> backend, SwtpmStateDir dir, std::unique_ptr<SwtpmProcess> process);

    SwtpmStateDir dir_;  // locked for the run
    std::unique_ptr<SwtpmProcess> process_;
    bool stopped_ = false;  // shutdown() ran (TpmSlot calls it, the destructor again)
};

}  // namespace minivmm
