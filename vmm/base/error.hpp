// Set-up errors and the process exit codes documented in README.md ("Exit codes").
// Exceptions are thrown only while the machine is being set up; main() turns them into one
// line on stderr and the matching exit code.
#pragma once

#include <stdexcept>
#include <string>

namespace minivmm {

enum ExitCode : int {
    kExitPoweredOff = 0,   // guest powered off (ACPI S5), or reset with -no-reboot, or Ctrl-A x
    kExitInternal = 1,     // a bug or an unexpected host failure
    kExitUsage = 2,        // bad command line
    kExitFile = 3,         // BIOS, disk or output file missing, unreadable or malformed
    kExitKvm = 4,          // /dev/kvm missing or KVM set-up failed
    kExitGuestFault = 5,   // KVM could not run the guest (emulation failure, failed entry)
    kExitTpm = 6,          // the TPM backend is unusable at start-up: swtpm absent/not answering, or the
                           // -tpm-state directory locked, corrupt or of the other TPM version
    kExitSandbox = 7,      // the seccomp sandbox stopped a forbidden system call (vmm/host/README.md "Sandbox")
    kExitSnapshot = 8,     // -restore refused: the snapshot is malformed, of another minivmm or machine, its
                           // files changed since the save, or it was restored before (without -restore-clone)
    kExitSignalBase = 128, // terminated by signal N: 128 + N
};

// What each exit status means, in one place: `minivmm --help` lists these lines, and the man
// page's EXIT STATUS section is generated from --help (scripts/make-manpage). README "Exit codes"
// gives the details.
struct ExitStatusDoc {
    int status;           // kExitSignalBase stands for 128+N
    const char* meaning;
};
inline constexpr ExitStatusDoc kExitStatusDocs[] = {
    {kExitPoweredOff, "guest powered off (or reset with -no-reboot, or Ctrl-A x)"},
    {kExitInternal, "internal error"},
    {kExitUsage, "usage error"},
    {kExitFile, "file error (BIOS, disk, kernel, initrd or output file)"},
    {kExitKvm, "KVM unavailable or set-up failed"},
    {kExitGuestFault, "guest fault (KVM emulation failure)"},
    {kExitTpm, "TPM unavailable (swtpm not answering or not installed; TPM state directory in use, corrupt or "
                         "of the other version)"},
    {kExitSandbox, "stopped by the sandbox (a forbidden system call)"},
    {kExitSnapshot, "snapshot refused (-restore: malformed, another minivmm or machine, its files changed, or "
                    "restored before without -restore-clone)"},
    {kExitSignalBase, "killed by signal N"},
};

class SetupError : public std::runtime_error {
public:
    SetupError(ExitCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
    ExitCode code() const noexcept { return code_; }

private:
    ExitCode code_;
};

}  // namespace minivmm
