// The first part of a snapshot's state blob (vmm/snapshot_file.hpp): what a -restore needs before
// it can build the machine, and what it checks against the files it is given again.
//   - the machine's options as a command line (vmm/cli.hpp machine_arguments), which -restore parses
//     with the restoring command line's TPM backend, disk and consoles;
//   - the BIOS image's SHA-256 (the flash the saved guest ran from must be the same bytes), the
//     -kernel and -initrd files' length and modification time (a later reboot loads them again);
//   - whether there was a TPM and its version, and the disk: its length and modification time at
//     the save (a disk written since, by anything, no longer holds what the guest's caches think).
// Encoded with StateWriter; parse_snapshot_preamble throws SnapshotError for anything malformed.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "devices/device_state.hpp"
#include "devices/tpm_types.hpp"
#include "vmm/snapshot_file.hpp"

namespace minivmm {

struct InputStamp {
    uint64_t size = 0;
    int64_t mtime_ns = 0;
    bool operator==(const InputStamp&) const = default;
};

struct SnapshotPreamble {
    std::vector<std::string> machine_args;
    std::optional<std::array<uint8_t, 32>> bios_sha256;  // nullopt: -bios none
    std::optional<InputStamp> kernel, initrd;
    std::optional<TpmVersion> tpm;
    std::optional<InputStamp> disk;  // nullopt: no disk
    bool disk_overlay = false;      // -snapshot: the guest's disk writes are in the snapshot
};

void write_snapshot_preamble(StateWriter& out, const SnapshotPreamble& preamble);
SnapshotPreamble parse_snapshot_preamble(StateReader& in);

// stat() of a file given on the command line (before the sandbox); throws SnapshotError.
InputStamp input_stamp(const std::string& path);
std::array<uint8_t, 32> sha256_of(const std::vector<uint8_t>& bytes);

// The restoring run's files against the saved ones: "" or the one line that says what differs.
std::string compare_snapshot_inputs(const SnapshotPreamble& saved, const SnapshotPreamble& now);

}  // namespace minivmm
