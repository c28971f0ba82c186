// The control socket's requests carried out on the running machine (README "Snapshots"): main
// owns one MachineControl across guest resets and hands it to each Machine::run.
//   pause   every vCPU stopped (Machine::pause)             resume  they run again
//   save    pauses, writes the snapshot, then stays paused or, with "resume": true, runs on
//   status  running or paused                               quit    ends minivmm (status 0)
// A save goes into a new, unnamed file in the target's directory (O_TMPFILE) that is linked under
// its name only once complete (linkat): a snapshot is there whole or not at all, and an existing
// file is never overwritten. Under the sandbox the main thread may do exactly that (vmm/host/sandbox.hpp).
#pragma once

#include <chrono>
#include <string>

#include "vmm/host/control_socket.hpp"
#include "vmm/host/disk_image.hpp"
#include "vmm/machine.hpp"
#include "vmm/snapshot_preamble.hpp"
#include "vmm/tpm_slot.hpp"

namespace minivmm {

class MachineControl final : public RunControl {
public:
    // `preamble`: the snapshot's first part as known at start (the disk's stamp is taken at each
    // save); `disk` may be nullptr. A save writes `tpm`'s state after the preamble, then the machine's.
    MachineControl(ControlSocket socket, SnapshotPreamble preamble, const DiskImage* disk, TpmSlot& tpm);

    void add_poll_fds(std::vector<pollfd>& fds) override;
    bool serve(std::span<const pollfd> fds, Machine& machine) noexcept override;

    int listen_fd() const noexcept { return socket_.listen_fd(); }
    int dir_fd() const noexcept { return socket_.dir_fd(); }

private:
    // The answer line to one request; sets quit_.
    std::string answer(const std::string& line, Machine& machine);
    std::string save(const std::string& path, bool resume_after, Machine& machine);

    ControlSocket socket_;
    SnapshotPreamble preamble_;
    const DiskImage* disk_;
    TpmSlot& tpm_;
    bool quit_ = false;
};

}  // namespace minivmm
