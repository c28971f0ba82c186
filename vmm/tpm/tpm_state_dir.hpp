// The directory that holds the in-process TPM's state (-tpm-state DIR): created if missing (0700),
// locked with flock() so that two minivmm never share one TPM, and files replaced atomically
// (temporary file, fsync, rename, fsync of the directory), so that a SIGKILL or power loss at any
// moment leaves either the old or the new file, never a torn one.
//
// Each file is a 24-byte header followed by libtpms's blob (all little-endian):
//   0  magic "MVMTPMST"        8 bytes
//   8  format version (1)      u32
//  12  TPM version (12 / 20)   u32
//  16  payload length          u32
//  20  CRC-32 (IEEE 802.3, as zlib.crc32) of bytes 0..19 and the payload
// so a truncated, corrupted or other-version file is refused instead of silently giving the
// guest a fresh TPM.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "devices/tpm_types.hpp"
#include "vmm/base/unique_fd.hpp"

namespace minivmm {

namespace tpmstate {

inline constexpr size_t kHeaderSize = 24;
inline constexpr uint32_t kFormatVersion = 1;
// Larger than any libtpms blob (TPM 2.0 NV is 128 KiB, marshalled with some overhead).
inline constexpr size_t kMaxPayload = 16u << 20;

uint32_t crc32(std::span<const uint8_t> bytes, uint32_t crc = 0) noexcept;

std::vector<uint8_t> encode_file(TpmVersion version, std::span<const uint8_t> payload);

enum class DecodeStatus { ok, bad_magic, unsupported_format, truncated, too_long, checksum_mismatch, wrong_version };

struct Decoded {
    DecodeStatus status = DecodeStatus::bad_magic;
    TpmVersion version = TpmVersion::v2_0;    // what the header says (valid from wrong_version on)
    std::span<const uint8_t> payload;         // valid when status == ok
};
// Checks the header, the length, the checksum and that the file holds `expected` state.
Decoded decode_file(std::span<const uint8_t> file, TpmVersion expected) noexcept;

// "2.0" / "1.2".
std::string_view version_text(TpmVersion version) noexcept;

}  // namespace tpmstate

class TpmStateError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A state directory is minivmm's own: it is marked at creation (DIR/.minivmm-tpm-state), a
// non-empty directory without the marker is refused unless every name in it is one of ours (a
// directory made by a minivmm from before the marker; it gets the marker), and only our own
// names (own_file_names()) are ever created, read, removed or given away. A symbolic link is
// never followed, neither as the directory nor inside it.
class TpmStateDir {
public:
    // Creates `path` (mode 0700) if it does not exist, checks that it is minivmm's (above),
    // takes its lock (DIR/.lock, holding our pid), marks it and removes our temporary files a
    // killed minivmm left behind. Throws TpmStateError with one line naming the directory: "TPM
    // state directory D is in use by another minivmm (pid N)", "... is not a directory", "... is
    // a symbolic link ...", "... is not empty and was not made by minivmm ...", "cannot create ...".
    explicit TpmStateDir(std::string path);
    // The same checks without creating, locking or writing anything (for the checks before
    // start-up): nullopt if `path` does not exist but could be created, else the directory
    // opened for reading only (read() and exists(); not locked). Throws as the constructor.
    static std::optional<TpmStateDir> inspect(const std::string& path);
    TpmStateDir(TpmStateDir&&) noexcept = default;
    TpmStateDir(const TpmStateDir&) = delete;
    TpmStateDir& operator=(const TpmStateDir&) = delete;

    const std::string& path() const noexcept { return path_; }
    // DIR/name as shown in messages.
    std::string file_path(std::string_view name) const;

    struct ReadResult {
        enum class Status { ok, missing, error } status = Status::missing;
        std::vector<uint8_t> payload;
        std::string error;  // one line naming the file and what to do, for Status::error
    };
    // Reads DIR/name and checks it (header, length, checksum, TPM version).
    ReadResult read(std::string_view name, TpmVersion version) const noexcept;
    // Atomically replaces DIR/name with `payload` (file mode 0600). Returns "" or an error line.
    std::string write(std::string_view name, TpmVersion version, std::span<const uint8_t> payload) const noexcept;
    // Removes DIR/name durably; a missing file is not an error. Returns "" or an error line.
    std::string remove(std::string_view name) const noexcept;
    bool exists(std::string_view name) const noexcept;
    // The EK certificate CA's files (vmm/tpm/ek_ca_store.hpp), plain bytes without our header:
    // ek-ca.key and ek-ca.pem, both 0600 (minivmm creates nothing others can read, vmm/host/README.md;
    // verifiers copy the certificate out). Read: the bytes, or a missing or error status (a file
    // larger than 1 MiB is an error). Write: atomic, as write().
    ReadResult read_plain(std::string_view name) const noexcept;
    std::string write_plain(std::string_view name, std::span<const uint8_t> bytes, unsigned mode) const noexcept;

    static constexpr std::string_view kLockName = ".lock";
    static constexpr std::string_view kMarkerName = ".minivmm-tpm-state";
    static constexpr std::string_view kTempSuffix = ".tmp";
    // tpm-00.{permall,savestate,volatilestate} and tpm2-00.*: what read/write/remove accept.
    static bool is_state_name(std::string_view name) noexcept;
    static constexpr std::string_view kCaKeyName = "ek-ca.key";
    static constexpr std::string_view kCaCertName = "ek-ca.pem";
    static bool is_ca_name(std::string_view name) noexcept;
    // A state name, a CA file, either's temporary (NAME.tmp), the lock or the marker.
    static bool is_own_name(std::string_view name) noexcept;
    // Every name is_own_name() accepts (for -runas, which gives exactly these to the user).
    static std::vector<std::string> own_file_names();

private:
    TpmStateDir(std::string path, UniqueFd dir_fd);
    // Opens `path` as a directory, refusing a symbolic link. Throws TpmStateError.
    static UniqueFd open_directory(const std::string& path);
    // Returns whether the marker is there; throws if the directory is someone else's.
    bool check_ownership() const;
    void write_marker();
    void lock();
    void remove_stale_temporaries() noexcept;
    // Writes `bytes` to NAME.tmp (created with `mode`, less the umask: no fchmod, which the sandbox
    // does not allow the TPM thread that writes the state at run time), fsync, renames it to NAME, fsyncs the directory.
    std::string replace_file(std::string_view name, std::span<const uint8_t> bytes, unsigned mode) const;
    // Reads at most `limit` bytes of DIR/name into r.payload (status ok / missing / error).
    void read_file(std::string_view name, size_t limit, std::string_view what, ReadResult& r) const;

    std::string path_;
    UniqueFd dir_fd_;
    UniqueFd lock_fd_;  // flock()ed for our lifetime; closing it releases the lock
};

}  // namespace minivmm
