// -restore at start-up (README "Snapshots"): the snapshot opened and its machine options merged
// with the command line, its files checked against the ones given again, the restore recorded.
// Every refusal is one line and exit status kExitSnapshot (SetupError).
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "firmware/bios_image.hpp"
#include "vmm/cli.hpp"
#include "vmm/machine.hpp"
#include "vmm/host/disk_image.hpp"
#include "vmm/snapshot_file.hpp"
#include "vmm/snapshot_preamble.hpp"
#include "vmm/tpm_slot.hpp"

namespace minivmm {

// Opens cli.config.restore and replaces `cli` with the saved machine's options parsed together
// with `args` (the command line; its -restore and -restore-clone are kept in the result).
SnapshotFile open_restore(CliResult& cli, const std::vector<std::string>& args);

// What this run's files are, as a snapshot records them (the disk's stamp now).
SnapshotPreamble describe_inputs(const Config& config, const BiosImage* bios, std::optional<TpmVersion> tpm,
                                 const DiskImage* disk);

// The saved files against `inputs`; returns the machine's part of the state (after the preamble).
std::span<const uint8_t> check_restore(const SnapshotFile& snapshot, const SnapshotPreamble& inputs);

// In place of the first power-on: the TPM takes its saved state (the first part of `state`), then
// fresh entropy (TpmSlot::restore_state), on a second thread while KVM builds the machine from
// `options` with options.restore = &snapshot (its RAM slot alone takes 5-11 ms on a paravirtual
// KVM); then the machine takes the rest of `state` (Machine::restore). options.restore is cleared
// again before this returns or throws.
std::unique_ptr<Machine> restore_machine(const SnapshotFile& snapshot, std::span<const uint8_t> state, TpmSlot& tpm,
                                         MachineOptions& options);

// A second restore of one snapshot repeats the guest's random state (its kernel's CRNG, the keys
// it made), so it is refused unless -restore-clone; FILE.restored records each restore beside the
// snapshot. Call once every check has passed, before the first vCPU runs.
void record_restore(const Config& config);

}  // namespace minivmm
