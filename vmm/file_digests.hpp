// The digests of a -kernel or -initrd file, kept between runs in -kernel-cache DIR as a small text
// record (vmm/kernel_cache.hpp), so that a warm start measures the kernel and the initrd without
// hashing them again (on a CPU without SHA instructions SHA-256 takes ~30 ms per MB; a distribution
// kernel and initrd in four banks took 1.4 s of a 2.5 s start-up on the benchmark instrument).
//
// A record belongs to one version of one file: its device, inode, size, mtime and ctime, exactly
// (FileStamp, taken from the descriptor the bytes were read from). Every write to a file sets its
// ctime to the current time, and nothing but the kernel sets a ctime, so a file with the same stamp
// holds the same bytes; a record is only written for a file whose ctime is at least kSettledSeconds
// old, so a write within the file system's timestamp granularity cannot go unseen ("racy" entries,
// as git's index handles them). Trusting the stamp is the same trust -kernel-cache already asks
// for its decompressed kernels; without -kernel-cache every file is hashed.
//
// The format (one item per line, nothing else):
//   minivmm-digests 1
//   stamp <dev> <ino> <size> <mtime ns> <ctime ns>
//   <sha1|sha256|sha384|sha512> <lower-case hex digest>     (each at most once)
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "firmware/tcg_event_log.hpp"
#include "vmm/base/read_file.hpp"

namespace minivmm::file_digests {

inline constexpr int64_t kSettledSeconds = 2;

// The record's text for `stamp` and `digests` (algorithms minivmm computes: SHA-1/256/384/512).
std::string format(const FileStamp& stamp, std::span<const tcg_log::Digest> digests);

// The digests of a record, if `text` is a well-formed record for exactly `stamp`; nullopt for
// anything else (another file or version, a malformed or truncated record): it is then recomputed.
std::optional<std::vector<tcg_log::Digest>> parse(std::string_view text, const FileStamp& stamp) noexcept;

// The record's file name for a file: one per (device, inode), replaced when the file changes.
std::string record_name(const FileStamp& stamp);

// True when a record may be written for `stamp` at `now_ns` (CLOCK_REALTIME): its ctime lies at
// least kSettledSeconds in the past.
bool settled(const FileStamp& stamp, int64_t now_ns) noexcept;

}  // namespace minivmm::file_digests
