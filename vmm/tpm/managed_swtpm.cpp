#include "vmm/tpm/managed_swtpm.hpp"

#include <utility>

#include <fmt/core.h>

#include "vmm/base/log.hpp"

namespace minivmm {

void ManagedSwtpm::check(const std::string& state_dir, TpmVersion version) {
    SwtpmTools::find();
    SwtpmStateDir::inspect(state_dir, version);
}

std::unique_ptr<ManagedSwtpm> ManagedSwtpm::open(const Options& o) {
    const SwtpmTools tools = SwtpmTools::find();
    SwtpmStateDir dir(o.state_dir, o.version);
    if (o.ids) {
        dir.check_reachable(o.ids->uid, o.ids->gid);
        dir.give_to(o.ids->uid, o.ids->gid);
    }
    if (!dir.manufactured()) {
        log::info("-tpm-swtpm: manufacturing a TPM {} in {} (swtpm_setup, EK and platform certificates from swtpm's "
                  "local CA)", o.version == TpmVersion::v2_0 ? "2.0" : "1.2", o.state_dir);
        // As minivmm's own user, root with -runas: the local CA is the system's (/var/lib/swtpm-localca,
        // as libvirt's swtpm_user has it), which USER cannot sign with; USER then gets the result.
        const std::string work = dir.begin_manufacturing();
        run_swtpm_setup(tools.swtpm_setup, tools.swtpm, work, o.version, o.limits.start);
        dir.finish_manufacturing();
        if (o.ids) dir.give_to(o.ids->uid, o.ids->gid);
    }
    auto process = std::make_unique<SwtpmProcess>(tools.swtpm, o.state_dir, o.version, o.ids);
    std::unique_ptr<SwtpmBackend> backend;
    try {
        backend = SwtpmBackend::adopt(process->take_control(), o.state_dir, o.limits);
    } catch (const std::runtime_error& e) {
        // swtpm's own message (its state locked by another swtpm, unreadable) is on stderr above.
        process->process().stop(std::chrono::milliseconds(0));
        const std::string& status = process->process().exit_status();
        throw std::runtime_error(status.empty() || status == "killed by signal 15"
                                     ? std::string(e.what())
                                     : fmt::format("the swtpm minivmm started for {} exited ({}) before it answered; "
                                                   "see its message above", o.state_dir, status));
    }
    if (backend->version() != o.version)  // swtpm_setup and swtpm were given the same version
        throw std::runtime_error(fmt::format("the swtpm started for {} runs a TPM of the wrong version", o.state_dir));
    return std::unique_ptr<ManagedSwtpm>(new ManagedSwtpm(std::move(backend), std::move(dir), std::move(process)));
}

ManagedSwtpm::ManagedSwtpm(std::unique_ptr<SwtpmBackend> backend, SwtpmStateDir dir, std::unique_ptr<SwtpmProcess> process)
    : ForwardingBackend(std::move(backend)), dir_(std::move(dir)), process_(std::move(process)) {}

ManagedSwtpm::~ManagedSwtpm() { ManagedSwtpm::shutdown(); }

void ManagedSwtpm::shutdown() noexcept {
    if (std::exchange(stopped_, true)) return;
    ChildProcess& child = process_->process();
    const bool ended_before = child.exited();
    ForwardingBackend::shutdown();  // CMD_SHUTDOWN: swtpm saves its state and exits (fails fast if it is gone)
    if (ended_before) {
        log::warn("the swtpm for {} had ended during the run ({})", dir_.path(), child.exit_status());
        return;
    }
    child.stop(kExitGrace);
    if (child.exit_status() != "exit status 0")
        log::warn("the swtpm for {} ended with {} at exit", dir_.path(), child.exit_status());
}

}  // namespace minivmm
