#include "vmm/startup_checks.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/core.h>

#include "vmm/base/error.hpp"
#include "vmm/tpm/ek_ca_store.hpp"
#include "vmm/tpm/libtpms_backend.hpp"
#include "vmm/tpm/managed_swtpm.hpp"
#include "vmm/base/log.hpp"
#include "vmm/base/unique_fd.hpp"
#include "vmm/tpm/swtpm_backend.hpp"

namespace minivmm {

namespace {

std::string without_trailing_slashes(std::string path) {
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    return path;
}

// Where `path` would be created, and whether that could work: 0 or the errno mkdir/open would give.
int creatable_in_parent(const std::string& path) {
    size_t slash = path.rfind('/');
    std::string parent = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    struct stat st {};
    if (::stat(parent.c_str(), &st) != 0) return errno;
    if (!S_ISDIR(st.st_mode)) return ENOTDIR;
    if (::faccessat(AT_FDCWD, parent.c_str(), W_OK | X_OK, AT_EACCESS) != 0) return errno;
    return 0;
}

}  // namespace

std::vector<FileIdentity> input_files(const Config& config) {
    std::vector<FileIdentity> files;
    if (!config.disk.empty())
        if (auto disk = identify_file(config.disk, fmt::format("the disk image {}", config.disk))) files.push_back(*disk);
    if (config.kernel)
        if (auto f = identify_file(*config.kernel, fmt::format("the kernel {}", *config.kernel))) files.push_back(*f);
    if (config.initrd)
        if (auto f = identify_file(*config.initrd, fmt::format("the initrd {}", *config.initrd))) files.push_back(*f);
    if (config.firmware)
        if (auto bios = identify_file(config.bios, fmt::format("the BIOS {}", config.bios))) files.push_back(*bios);
    return files;
}

void check_output_file(const std::string& option, const std::string& path, std::span<const FileIdentity> inputs) {
    auto fail = [&](const std::string& why) {
        throw SetupError(kExitFile, fmt::format("{}: cannot open '{}' for writing: {}", option, path, why));
    };
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno != ENOENT) fail(std::strerror(errno));
        if (int err = creatable_in_parent(path); err != 0) fail(std::strerror(err));
        return;
    }
    if (S_ISLNK(st.st_mode)) fail("it is a symbolic link; give the file itself");
    if (S_ISDIR(st.st_mode)) fail(std::strerror(EISDIR));
    if (const FileIdentity* f = find_identity(st, inputs)) fail(fmt::format("it is {}", f->what));
    if (::faccessat(AT_FDCWD, path.c_str(), W_OK, AT_EACCESS) != 0) fail(std::strerror(errno));
}

void check_dump_dir(const std::string& dir) {
    auto fail = [&](const std::string& why) {
        throw SetupError(kExitFile, fmt::format("-dump-acpi: cannot create directory {}: {}", dir, why));
    };
    struct stat st {};
    if (::lstat(without_trailing_slashes(dir).c_str(), &st) != 0) {
        if (errno != ENOENT) fail(std::strerror(errno));
        if (int err = creatable_in_parent(without_trailing_slashes(dir)); err != 0) fail(std::strerror(err));
        return;
    }
    if (S_ISLNK(st.st_mode)) fail("it is a symbolic link; give the directory itself");
    if (!S_ISDIR(st.st_mode)) fail(std::strerror(EEXIST));
}

void check_before_start(const Config& config) {
    const std::vector<FileIdentity> inputs = input_files(config);
    if (config.serial.kind == CharTarget::Kind::file) check_output_file("-serial", config.serial.path, inputs);
    if (config.debugcon && config.debugcon->kind == CharTarget::Kind::file)
        check_output_file("-debugcon", config.debugcon->path, inputs);
    if (config.dump_acpi_dir) check_dump_dir(*config.dump_acpi_dir);
    try {
        if (config.tpm_socket) SwtpmBackend::check_socket(*config.tpm_socket);
        if (config.tpm_state) LibtpmsBackend::check(*config.tpm_state, config.tpm_version);
        if (config.tpm_swtpm) ManagedSwtpm::check(*config.tpm_swtpm, config.tpm_version);
    } catch (const std::runtime_error& e) {
        throw SetupError(kExitTpm, e.what());
    }
    try {
        if (config.tpm_ca) (void)load_user_ca(*config.tpm_ca);  // all of it, before anything is created
    } catch (const EkCertificateError& e) {
        throw SetupError(kExitFile, e.what());
    }
}

void write_acpi_dump(const std::string& dir, std::span<const std::pair<std::string, std::vector<uint8_t>>> tables) {
    const std::string real = without_trailing_slashes(dir);
    if (::mkdir(real.c_str(), 0700) != 0 && errno != EEXIST)
        throw SetupError(kExitFile, fmt::format("-dump-acpi: cannot create directory {}: {}", dir, std::strerror(errno)));
    UniqueFd dir_fd(::open(real.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dir_fd.valid())
        throw SetupError(kExitFile, fmt::format("-dump-acpi: cannot open directory {}: {}", dir,
                                                errno == ELOOP ? "it is a symbolic link" : std::strerror(errno)));
    for (const auto& [sig, bytes] : tables) {
        const std::string name = sig + ".dat";
        UniqueFd fd(::openat(dir_fd.get(), name.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (!fd.valid() || ::write(fd.get(), bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size()))
            throw SetupError(kExitFile, fmt::format("-dump-acpi: cannot write {}/{}: {}", real, name,
                                                    errno == ELOOP ? "it is a symbolic link" : std::strerror(errno)));
    }
    log::info("wrote {} ACPI tables to {}", tables.size(), dir);
}

}  // namespace minivmm
