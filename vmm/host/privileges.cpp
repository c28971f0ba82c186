#include "vmm/host/privileges.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <vector>

#include <fmt/core.h>

#include "vmm/base/error.hpp"
#include "vmm/base/log.hpp"
#include "vmm/base/unique_fd.hpp"
#include "vmm/tpm/tpm_state_dir.hpp"

namespace minivmm {

namespace {

std::string errno_text(int err) { return std::strerror(err); }

}  // namespace

RunAsUser resolve_runas(const std::string& user) {
    if (user.empty()) throw SetupError(kExitUsage, "-runas: empty user name (see minivmm --help)");
    // getpwnam_r with a buffer that grows as the C library asks (ERANGE).
    std::vector<char> buffer(1024);
    passwd entry{};
    passwd* found = nullptr;
    uid_t numeric = 0;
    auto [end, ec] = std::from_chars(user.data(), user.data() + user.size(), numeric);
    const bool is_number = ec == std::errc() && end == user.data() + user.size();
    int err = 0;
    for (;;) {
        err = is_number ? ::getpwuid_r(numeric, &entry, buffer.data(), buffer.size(), &found)
                        : ::getpwnam_r(user.c_str(), &entry, buffer.data(), buffer.size(), &found);
        if (err != ERANGE || buffer.size() >= (1u << 20)) break;
        buffer.resize(buffer.size() * 2);
    }
    if (!found)
        throw SetupError(kExitUsage, err != 0 ? fmt::format("-runas: cannot look up user '{}': {}", user, errno_text(err))
                                              : fmt::format("-runas: no such user '{}' (see minivmm --help)", user));
    if (::geteuid() != 0)
        throw SetupError(kExitUsage, fmt::format("-runas {}: only root can switch users, and minivmm runs as uid {}; "
                                                 "start it as root or leave -runas out",
                                                 user, ::geteuid()));
    return {found->pw_name, found->pw_uid, found->pw_gid};
}

void give_state_dir_to(const RunAsUser& user, const std::string& dir) {
    auto fail = [&](const std::string& path, int err) {
        throw SetupError(kExitTpm, fmt::format("-runas {}: cannot give {} to the user: {}", user.name, path, errno_text(err)));
    };
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) fail(dir, errno);
    if (::fchown(fd.get(), user.uid, user.gid) != 0) fail(dir, errno);
    // Only minivmm's own files (TpmStateDir checked that the directory is ours): anything else
    // someone put there stays theirs. AT_SYMLINK_NOFOLLOW: a link is never followed.
    for (const std::string& name : TpmStateDir::own_file_names()) {
        struct stat st {};
        if (::fstatat(fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
        if (::fchownat(fd.get(), name.c_str(), user.uid, user.gid, AT_SYMLINK_NOFOLLOW) != 0) fail(dir + "/" + name, errno);
    }
}

void drop_privileges(const RunAsUser& user) {
    auto fail = [&](const char* step, int err) {
        throw SetupError(kExitInternal, fmt::format("-runas {}: {} failed: {}", user.name, step, errno_text(err)));
    };
    // Groups first: after setuid() we could no longer change them. No supplementary groups:
    // everything minivmm needs is already open.
    if (::setgroups(0, nullptr) != 0) fail("setgroups", errno);
    if (::setgid(user.gid) != 0) fail("setgid", errno);
    if (::setuid(user.uid) != 0) fail("setuid", errno);
    if (user.uid != 0 && (::setuid(0) == 0 || ::seteuid(0) == 0)) fail("checking that root is gone", EPERM);
    if (::getuid() != user.uid || ::geteuid() != user.uid || ::getgid() != user.gid || ::getegid() != user.gid)
        fail("checking the new ids", EPERM);
    log::info("running as user {} (uid {}, gid {})", user.name, user.uid, user.gid);
}

}  // namespace minivmm
