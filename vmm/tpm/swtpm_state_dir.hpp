// The state directory of the swtpm minivmm runs itself (-tpm-swtpm DIR), with the same safety
// rules as -tpm-state's (tpm_state_dir.hpp): created 0700 if missing, never through a symbolic
// link, refused when it holds anything but swtpm's files and ours, locked with flock() for the
// run (DIR/.minivmm-swtpm.lock, holding our pid; swtpm takes its own fcntl lock on DIR/.lock as
// well), and refused when it holds the other TPM version's state.
//
// The TPM is manufactured in DIR/.minivmm-manufacturing and its state file renamed into DIR only
// once swtpm_setup succeeded, so a run killed while manufacturing leaves no half-made TPM: DIR
// holds a TPM (tpm2-00.permall or tpm-00.permall) or none, and the next run starts over.
#pragma once

#include <sys/types.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "devices/tpm_types.hpp"
#include "vmm/base/unique_fd.hpp"

namespace minivmm {

class SwtpmStateError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// swtpm and swtpm_setup, found in $PATH. Throws SwtpmStateError naming the missing program.
struct SwtpmTools {
    std::string swtpm, swtpm_setup;
    static SwtpmTools find();
};

class SwtpmStateDir {
public:
    // Checks `path` without creating or writing anything (for the checks before start-up).
    static void inspect(const std::string& path, TpmVersion version);
    // Creates, checks and locks the directory; removes what an interrupted manufacturing left.
    // Throws SwtpmStateError with one line naming the directory.
    SwtpmStateDir(std::string path, TpmVersion version);
    SwtpmStateDir(SwtpmStateDir&&) noexcept = default;
    SwtpmStateDir(const SwtpmStateDir&) = delete;

    const std::string& path() const noexcept { return path_; }
    // Whether DIR holds a manufactured TPM of our version.
    bool manufactured() const noexcept;
    // The empty directory swtpm_setup manufactures the TPM in (created now, 0700).
    std::string begin_manufacturing();
    // Moves the manufactured state into DIR (rename, then fsync of DIR) and removes the work
    // directory. Throws SwtpmStateError.
    void finish_manufacturing();
    // -runas: DIR, the work directory, swtpm's files and our lock become `uid`'s (swtpm runs as it;
    // the next run may be the user's own).
    void give_to(uid_t uid, gid_t gid) const;
    // -runas: swtpm opens DIR by its path, as `uid`/`gid` (no supplementary groups): every directory
    // above it must let that user through (search permission). Throws SwtpmStateError naming the
    // first that does not, instead of swtpm's lock-file error at the first power-on.
    void check_reachable(uid_t uid, gid_t gid) const;

    static constexpr std::string_view kLockName = ".minivmm-swtpm.lock";
    static constexpr std::string_view kWorkName = ".minivmm-manufacturing";
    // swtpm's own names (swtpm's nvstore_dir: tpm[2]-00.{permall,volatilestate,savestate}, .lock).
    static bool is_swtpm_name(std::string_view name) noexcept;

private:
    SwtpmStateDir() = default;
    void check_contents() const;
    void lock();
    void remove_work_dir() const;

    std::string path_;
    TpmVersion version_ = TpmVersion::v2_0;
    UniqueFd dir_fd_;
    UniqueFd lock_fd_;
};

}  // namespace minivmm
