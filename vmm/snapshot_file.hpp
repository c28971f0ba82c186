// The snapshot file (README "Snapshots"): a running machine saved by the control socket's "save"
// and started again with -restore. One regular file:
//
//   [0, 4096)        the header: magic, format version, the writing minivmm's version, where the
//                    state blob is and its SHA-256, the guest RAM regions, the header's own SHA-256
//   RAM regions      each at a page-aligned offset, as long as the region; pages the guest never
//                    wrote are holes (a sparse file), so the file takes touched RAM plus the state
//   the state blob   everything else (machine options, every vCPU, the VM's in-kernel devices, every
//                    device, the TPM, the -snapshot disk overlay), written by vmm/machine_snapshot.cpp
//
// A restore maps each RAM region MAP_PRIVATE from the file: a page is read when the guest first
// touches it, and the guest's writes never reach the file. The RAM is not hashed (that would read
// all of it at every restore): it is guest memory, which minivmm never trusts anyway; the header and
// the state blob, which minivmm parses, are. A snapshot is untrusted input: every field is checked,
// and anything wrong is one line (SnapshotError) and exit status kExitSnapshot.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "vmm/base/unique_fd.hpp"

namespace minivmm {

struct SnapshotError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

inline constexpr uint32_t kSnapshotFormat = 1;
inline constexpr size_t kSnapshotHeaderSize = 4096;
inline constexpr size_t kSnapshotPage = 4096;
inline constexpr size_t kSnapshotMaxRegions = 4;
inline constexpr uint64_t kSnapshotMaxState = 4ull << 30;  // the state blob (the overlay dominates)

struct SnapshotRamRegion {
    uint64_t gpa = 0;
    uint64_t size = 0;         // a multiple of kSnapshotPage
    uint64_t file_offset = 0;  // page-aligned
};

struct SnapshotHeader {
    uint32_t format = kSnapshotFormat;
    std::string vmm_version;  // minivmm's MINIVMM_VERSION; a restore needs the same
    uint64_t state_offset = 0;
    uint64_t state_size = 0;
    std::array<uint8_t, 32> state_sha256{};
    std::vector<SnapshotRamRegion> ram;
};

// Pure, for the fuzzer: the header's 4096 bytes, encoded and parsed (SnapshotError for anything
// that could not have been written by encode: bad magic, another format, its own digest wrong,
// regions out of order, overlapping, unaligned, or overlapping the header or the state).
std::vector<uint8_t> encode_snapshot_header(const SnapshotHeader& header);
SnapshotHeader parse_snapshot_header(std::span<const uint8_t> bytes);

// Writes a snapshot into `fd` (a new, empty, regular file): the RAM regions from `ram` (host
// pointers with their guest addresses; all-zero pages become holes), then `state`, then the header
// last. Throws SnapshotError naming what failed (a full disk, ...).
struct SnapshotRamSource {
    uint64_t gpa;
    std::span<const uint8_t> bytes;
};
void write_snapshot(int fd, std::span<const SnapshotRamSource> ram, std::span<const uint8_t> state);

// An opened snapshot: the header checked, the state blob read and its digest checked, every RAM
// region inside the file (a mapping past the file's end would fault the guest). The fd stays open
// for the RAM mappings.
class SnapshotFile {
public:
    // Opens `path` (O_NOFOLLOW: not a symbolic link; a regular file). Throws SnapshotError.
    static SnapshotFile open(const std::string& path);
    const SnapshotHeader& header() const noexcept { return header_; }
    const std::vector<uint8_t>& state() const noexcept { return state_; }
    int fd() const noexcept { return fd_.get(); }
    const std::string& path() const noexcept { return path_; }

private:
    std::string path_;
    UniqueFd fd_;
    SnapshotHeader header_;
    std::vector<uint8_t> state_;
};

}  // namespace minivmm
