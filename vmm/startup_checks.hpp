// The checks minivmm makes before it creates, truncates or opens anything for writing and before
// it opens /dev/kvm: every argument and file, without side effects. So a mistake gets its own
// message and exit status (README "Exit codes") on any host, and a refused run leaves every file
// as it was (an -serial file is not truncated by a run that then fails on /dev/kvm).
#pragma once

#include <span>
#include <string>
#include <vector>

#include "vmm/cli.hpp"
#include "vmm/host/console.hpp"

namespace minivmm {

// The files an output may never be: the disk image and the BIOS (by device and inode).
std::vector<FileIdentity> input_files(const Config& config);

// -serial/-debugcon file:PATH: PATH is not a symbolic link, a directory or one of `inputs`, and
// a missing PATH has a directory to be created in. Throws SetupError(kExitFile) "OPTION: cannot
// open 'PATH' for writing: REASON".
void check_output_file(const std::string& option, const std::string& path, std::span<const FileIdentity> inputs);

// -dump-acpi DIR: an existing directory (not a symbolic link) or one that can be created.
// Throws SetupError(kExitFile).
void check_dump_dir(const std::string& dir);

// All of the above for `config`, then the TPM: the -tpm-sock socket exists and is a socket, the
// -tpm-state directory is minivmm's and its state files are sound (SetupError(kExitTpm)).
void check_before_start(const Config& config);

// Writes every table as DIR/<SIGNATURE>.dat (DIR created 0700 if missing; neither DIR nor the
// files are followed if they are symbolic links). Throws SetupError(kExitFile).
void write_acpi_dump(const std::string& dir, std::span<const std::pair<std::string, std::vector<uint8_t>>> tables);

}  // namespace minivmm
