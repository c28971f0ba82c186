// -kernel-cache DIR: what minivmm derives from the -kernel and -initrd files, kept for the next run:
// the decompressed kernel (vmm/pvh_kernel.hpp, <SHA-256 of the bzImage>.vmlinux) and the files'
// digests (vmm/file_digests.hpp, <dev>-<ino>.digests). The directory is the user's: created 0700 when
// missing, never followed through a symbolic link, every entry written to a temporary file and
// renamed into place (a reader never sees half an entry; two minivmm writing one both leave it whole).
#pragma once

#include <optional>
#include <span>
#include <string>

namespace minivmm::kernel_cache {

// DIR without trailing slashes, checked: not a symbolic link, a directory if it exists. Throws
// SetupError(kExitFile) with one line otherwise.
std::string directory(const std::string& dir);

// Writes `bytes` as DIR/name (creating DIR 0700 if needed); false, with a warning naming `what`,
// when it cannot.
bool store(const std::string& dir, const std::string& name, std::span<const uint8_t> bytes, const char* what);

// DIR/name's bytes, at most `limit`, if it exists as a regular file (not a link).
std::optional<std::string> read_small(const std::string& dir, const std::string& name, size_t limit);

}  // namespace minivmm::kernel_cache
