#include "vmm/snapshot_restore.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <future>

#include <fmt/core.h>

#include "vmm/base/error.hpp"
#include "vmm/base/log.hpp"
#include "vmm/host/boot_timer.hpp"

namespace minivmm {

namespace {

// The saved options are untrusted (a digest proves the file whole, not harmless): only machine
// options (vmm/cli.hpp kMachineOptions), each with its value, never -sandbox, -serial, a path to
// write or a disk.
void check_machine_arguments(const std::vector<std::string>& args) {
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        const bool known = std::find(std::begin(kMachineOptions), std::end(kMachineOptions), a) != std::end(kMachineOptions);
        if (!known) throw SnapshotError(fmt::format("the snapshot's machine options hold '{}', which is not one", a));
        if (a != "-no-reboot" && a != "-snapshot" && ++i == args.size())
            throw SnapshotError(fmt::format("the snapshot's machine option {} has no value", a));
    }
}

}  // namespace

SnapshotFile open_restore(CliResult& cli, const std::vector<std::string>& given_args) {
    std::optional<SnapshotFile> opened;
    try {
        opened = SnapshotFile::open(*cli.config.restore);
    } catch (const SnapshotError& e) {
        throw SetupError(kExitSnapshot, e.what());
    }
    SnapshotFile& snapshot = *opened;
    if (snapshot.header().vmm_version != MINIVMM_VERSION)
        throw SetupError(kExitSnapshot, fmt::format("-restore {}: saved by minivmm {}, this is minivmm {}",
                                                    *cli.config.restore, snapshot.header().vmm_version, MINIVMM_VERSION));
    // A second restore is refused before anything is touched (the TPM's state directory included).
    if (!cli.config.restore_clone && ::access((*cli.config.restore + ".restored").c_str(), F_OK) == 0)
        throw SetupError(kExitSnapshot, fmt::format("-restore {}: it was restored before ({}.restored exists): a second "
                                                    "restore repeats the guest's random state; give -restore-clone to "
                                                    "allow it", *cli.config.restore, *cli.config.restore));
    StateReader reader(snapshot.state());
    std::vector<std::string> args;
    try {
        args = parse_snapshot_preamble(reader).machine_args;
        check_machine_arguments(args);
    } catch (const SnapshotError& e) {
        throw SetupError(kExitSnapshot, fmt::format("-restore {}: {}", *cli.config.restore, e.what()));
    }
    for (size_t i = 0; i < given_args.size(); ++i) {
        const std::string& a = given_args[i];
        if (a == "-restore" || a == "--restore") ++i;
        else if (a != "-restore-clone" && a != "--restore-clone") args.push_back(a);
    }
    Config given = cli.config;
    try {
        cli = parse_cli(args);
    } catch (const SetupError& e) {
        throw SetupError(kExitSnapshot, fmt::format("-restore {}: the saved machine's options with this command "
                                                    "line: {}", *given.restore, e.what()));
    }
    cli.config.restore = given.restore;
    cli.config.restore_clone = given.restore_clone;
    return std::move(snapshot);
}

SnapshotPreamble describe_inputs(const Config& config, const BiosImage* bios, std::optional<TpmVersion> tpm,
                                 const DiskImage* disk) {
    SnapshotPreamble p;
    p.machine_args = machine_arguments(config);
    if (bios) p.bios_sha256 = sha256_of(bios->bytes());
    try {
        if (config.kernel) p.kernel = input_stamp(*config.kernel);
        if (config.initrd) p.initrd = input_stamp(*config.initrd);
    } catch (const SnapshotError& e) {
        throw SetupError(kExitFile, e.what());
    }
    p.tpm = tpm;
    if (disk) {
        InputStamp stamp;
        if (!disk->identity(stamp.size, stamp.mtime_ns))
            throw SetupError(kExitFile, fmt::format("{}: cannot stat it", disk->path()));
        p.disk = stamp;
    }
    p.disk_overlay = config.snapshot;
    return p;
}

std::unique_ptr<Machine> restore_machine(const SnapshotFile& snapshot, std::span<const uint8_t> state, TpmSlot& tpm,
                                         MachineOptions& options) {
    StateReader reader(state);
    std::span<const uint8_t> tpm_state;
    if (!reader.bytes_view(tpm_state))
        throw SetupError(kExitSnapshot, fmt::format("-restore {}: the TPM's saved state is cut short", snapshot.path()));
    // The two share nothing unguarded while they run: building the machine reads the TPM backend's
    // version and buffer size (fixed when it was opened) and its established flag (swtpm: asked and
    // cached under the control lock, re-read after the join: Machine::restore), and attaches the
    // PPI mailbox by reference; no TPM command is sent before the vCPUs start.
    std::future<bool> tpm_restored = std::async(std::launch::async, [&tpm, tpm_state] {
        const bool ok = tpm.restore_state(tpm_state);
        if (ok) log::debug("restore: the TPM took its saved state, {:.1f} ms after start", ms_since_start());
        return ok;
    });
    struct Clear {  // the options outlive this restore; the future's destructor waits for the TPM
        MachineOptions& options;
        ~Clear() { options.restore = nullptr; }
    } clear{options};
    options.restore = &snapshot;
    try {
        std::unique_ptr<Machine> machine = std::make_unique<Machine>(options);
        if (!tpm_restored.get())
            throw SetupError(kExitSnapshot, fmt::format("-restore {}: the TPM's saved state is refused (see above)",
                                                        snapshot.path()));
        machine->restore(state.subspan(reader.position()));
        return machine;
    } catch (const SnapshotError& e) {
        throw SetupError(kExitSnapshot, fmt::format("-restore {}: {}", snapshot.path(), e.what()));
    }
}

void record_restore(const Config& config) {
    const std::string marker = *config.restore + ".restored";
    const int flags = O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC | (config.restore_clone ? 0 : O_EXCL);
    UniqueFd fd(::open(marker.c_str(), flags, 0600));
    if (!fd.valid() && config.restore_clone) {  // a snapshot on read-only media: clones need no record
        log::warn("-restore {}: cannot record the restore in {}: {}", *config.restore, marker, std::strerror(errno));
        return;
    }
    if (!fd.valid() && errno == EEXIST)
        throw SetupError(kExitSnapshot, fmt::format("-restore {}: it was restored before ({} exists): a second restore "
                                                    "repeats the guest's random state; give -restore-clone to allow it",
                                                    *config.restore, marker));
    if (!fd.valid()) throw SetupError(kExitSnapshot, fmt::format("{}: {}", marker, std::strerror(errno)));
    const std::string line = fmt::format("restored by minivmm pid {}\n", ::getpid());
    if (::write(fd.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size()))
        throw SetupError(kExitSnapshot, fmt::format("{}: {}", marker, std::strerror(errno)));
}


std::span<const uint8_t> check_restore(const SnapshotFile& snapshot, const SnapshotPreamble& inputs) {
    StateReader reader(snapshot.state());
    SnapshotPreamble saved;
    try {
        saved = parse_snapshot_preamble(reader);
    } catch (const SnapshotError& e) {
        throw SetupError(kExitSnapshot, fmt::format("-restore {}: {}", snapshot.path(), e.what()));
    }
    if (std::string differs = compare_snapshot_inputs(saved, inputs); !differs.empty())
        throw SetupError(kExitSnapshot, fmt::format("-restore {}: {}", snapshot.path(), differs));
    return std::span(snapshot.state()).subspan(reader.position());
}

}  // namespace minivmm
