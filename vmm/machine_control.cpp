#include "vmm/machine_control.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <variant>

#include <fmt/core.h>

#include "vmm/base/log.hpp"
#include "vmm/host/control_protocol.hpp"

namespace minivmm {

namespace {

std::string directory_of(const std::string& path) {
    const size_t slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

MachineControl::MachineControl(ControlSocket socket, SnapshotPreamble preamble, const DiskImage* disk, TpmSlot& tpm)
    : socket_(std::move(socket)), preamble_(std::move(preamble)), disk_(disk), tpm_(tpm) {}

void MachineControl::add_poll_fds(std::vector<pollfd>& fds) {
    for (int fd : socket_.poll_fds()) fds.push_back({fd, POLLIN, 0});
}

bool MachineControl::serve(std::span<const pollfd> fds, Machine& machine) noexcept {
    bool ready = false;
    for (const pollfd& p : fds) ready = ready || (p.fd >= 0 && p.revents);
    if (!ready) return false;
    try {
        for (const std::string& line : socket_.on_readable()) {
            socket_.reply(answer(line, machine));
            if (quit_) return true;
        }
    } catch (const std::exception& e) {  // std::bad_alloc: the request is dropped, the machine goes on
        log::warn("control socket: {}", e.what());
    }
    return false;
}

std::string MachineControl::answer(const std::string& line, Machine& machine) {
    auto parsed = parse_control_request(line);
    if (auto* error = std::get_if<std::string>(&parsed)) {
        log::debug("control socket: refused: {}", *error);
        return format_control_error(*error);
    }
    const ControlRequest& request = std::get<ControlRequest>(parsed);
    log::info("control socket: {}", control_cmd_name(request.cmd));
    switch (request.cmd) {
    case ControlRequest::Cmd::pause:
        machine.pause();
        return format_control_ok();
    case ControlRequest::Cmd::resume:
        try {
            machine.resume();
        } catch (const std::exception& e) {
            return format_control_error(fmt::format("cannot resume: {}", e.what()));
        }
        return format_control_ok();
    case ControlRequest::Cmd::status:
        return format_control_status(machine.paused());
    case ControlRequest::Cmd::quit:
        quit_ = true;
        return format_control_ok();
    case ControlRequest::Cmd::save:
        return save(request.path, request.resume_after, machine);
    }
    return format_control_error("unknown command");
}

std::string MachineControl::save(const std::string& path, bool resume_after, Machine& machine) {
    if (::access(path.c_str(), F_OK) == 0) return format_control_error(fmt::format("{}: exists (a snapshot never overwrites a file)", path));
    if (errno != ENOENT) return format_control_error(fmt::format("{}: {}", path, std::strerror(errno)));
    const auto start = std::chrono::steady_clock::now();
    // The unnamed file first: a directory that is missing or not writable costs no pause.
    UniqueFd fd(::open(directory_of(path).c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600));
    if (!fd.valid())
        return format_control_error(fmt::format("{}: cannot create a file in {}: {}{}", path, directory_of(path),
                                                std::strerror(errno),
                                                errno == EOPNOTSUPP ? " (its file system has no O_TMPFILE)" : ""));
    machine.pause();
    SnapshotPreamble preamble = preamble_;
    std::string error = machine.ready_to_save();  // before the TPM: a stalled command would block here
    InputStamp stamp;
    if (error.empty() && disk_ && !disk_->identity(stamp.size, stamp.mtime_ns))
        error = fmt::format("cannot stat the disk image {}: {}", disk_->path(), std::strerror(errno));
    if (disk_) preamble.disk = stamp;
    StateWriter head;
    write_snapshot_preamble(head, preamble);
    // The TPM's own state (it outlives the machine, as its slot does), then the machine's.
    StateWriter tpm;
    if (error.empty() && !tpm_.save_state(tpm)) error = "the TPM's state could not be read";
    head.bytes(tpm.data());
    if (error.empty()) error = machine.save(fd.get(), head.data());
    if (error.empty()) {
        const std::string link = fmt::format("/proc/self/fd/{}", fd.get());
        if (::linkat(AT_FDCWD, link.c_str(), AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW) != 0)
            error = fmt::format("cannot name it {}: {}", path, std::strerror(errno));
    }
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (resume_after) {
        try {
            machine.resume();
        } catch (const std::exception& e) {
            error = fmt::format("{}; then it could not resume: {}", error.empty() ? "saved" : error, e.what());
        }
    }
    if (!error.empty()) {
        log::warn("control socket: save {}: {}", path, error);
        return format_control_error(fmt::format("save {}: {}", path, error));
    }
    log::info("control socket: saved {} in {:.1f} ms", path, ms);
    const ControlField fields[] = {{"path", std::string_view(path)}, {"ms", static_cast<std::int64_t>(ms + 0.5)}};
    return format_control_ok(fields);
}

}  // namespace minivmm
