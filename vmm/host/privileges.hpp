// -runas USER: minivmm started as root opens what it needs (/dev/kvm, the BIOS, the disk, output
// files, the swtpm socket, the -tpm-state directory), then becomes USER for the rest of the run:
// supplementary groups dropped, gid and uid set to USER's, root impossible to regain.
#pragma once

#include <sys/types.h>

#include <string>

namespace minivmm {

struct RunAsUser {
    std::string name;
    uid_t uid = 0;
    gid_t gid = 0;
};

// Looks USER up (a name, or a numeric uid) before anything is opened. Throws SetupError
// (kExitUsage) for an unknown user or when minivmm does not run as root.
RunAsUser resolve_runas(const std::string& user);

// Gives the -tpm-state directory and minivmm's own files in it (TpmStateDir::own_file_names) to
// `user`: libtpms replaces its state files there for the whole run, after root is gone. Other
// files are left alone; symbolic links are neither followed nor changed.
// Throws SetupError(kExitTpm) naming the path.
void give_state_dir_to(const RunAsUser& user, const std::string& dir);

// setgroups/setgid/setuid to `user`, then checks that root cannot be regained. Throws SetupError
// (kExitInternal) naming the step that failed.
void drop_privileges(const RunAsUser& user);

}  // namespace minivmm
