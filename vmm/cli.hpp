// The command line: QEMU-style single-dash options (double dash accepted too). Parsing is a
// pure function so it is unit-tested; errors throw SetupError(kExitUsage) with one clear line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "devices/tpm_types.hpp"
#include "vmm/base/log.hpp"

namespace minivmm {

// Where a character device goes: the terminal, a file, or nowhere.
struct CharTarget {
    enum class Kind { stdio, file, none } kind = Kind::stdio;
    std::string path;  // for Kind::file
};

struct Config {
    std::string bios;
    bool firmware = true;  // false: -bios none, minivmm enters the kernel itself (vmm/direct_boot.hpp)
    std::string disk;  // empty: no disk (only with -kernel)
    std::optional<std::string> kernel;  // -kernel bzImage: direct kernel boot (vmm/kernel_boot.hpp)
    std::optional<std::string> initrd;  // -initrd FILE, with -kernel
    std::string append;                 // -append CMDLINE, with -kernel
    std::optional<std::string> kernel_cache;  // -kernel-cache DIR, with -bios none (vmm/pvh_kernel.hpp)
    enum class KernelEntry { automatic, pvh, bzimage };
    KernelEntry kernel_entry = KernelEntry::automatic;  // -kernel-entry, with -bios none
    uint64_t ram_bytes = 512ull << 20;
    unsigned cpus = 1;
    CharTarget serial;
    std::optional<CharTarget> debugcon;
    std::optional<uint32_t> boot_menu_wait_ms;
    bool no_reboot = false;
    bool snapshot = false;
    std::optional<std::string> dump_acpi_dir;
    std::optional<std::string> tpm_socket;  // swtpm control socket (-tpm-sock)
    std::optional<std::string> tpm_state;   // in-process libtpms state directory (-tpm-state)
    std::optional<std::string> tpm_swtpm;   // state directory of the swtpm minivmm runs (-tpm-swtpm)
    TpmVersion tpm_version = TpmVersion::v2_0;  // -tpm-version, with -tpm-state or -tpm-swtpm
    std::optional<std::string> tpm_ca;      // -tpm-ca DIR: the CA (ca.pem, ca.key) of the EK certificates
    bool has_tpm() const noexcept { return tpm_socket || tpm_state || tpm_swtpm; }
    TpmInterface tpm_interface = TpmInterface::tis;  // -tpm-interface tis|crb
    bool tpm_irq = true;  // -tpm-irq on|off: the TIS interrupt (CRB has none)
    bool tpm_ppi = true;  // -tpm-ppi on|off: the Physical Presence Interface (_DSM and its mailbox)
    unsigned tpm_start_timeout_s = 120;  // -tpm-start-timeout: wait for swtpm (-tpm-sock, -tpm-swtpm)
    log::Level log_level = log::Level::warn;
    bool exit_stats = false;          // -exit-stats: print exit counts at the end of every boot
    bool sandbox = true;              // -sandbox on|off: the seccomp allowlists (vmm/host/README.md "Sandbox")
    std::optional<std::string> runas;  // -runas USER: become USER once set-up is done
    std::optional<std::string> control;  // -control PATH: the control socket (README "Snapshots")
    std::optional<std::string> restore;  // -restore FILE: start from this snapshot instead of booting
    bool restore_clone = false;          // -restore-clone: the snapshot may have been restored before
};

// The options that shape the machine itself: a snapshot records them (machine_arguments) and a
// -restore takes them from it, so they are refused beside -restore.
inline constexpr const char* kMachineOptions[] = {"-bios", "-kernel", "-initrd", "-append", "-kernel-cache",
                                                  "-kernel-entry", "-m", "-smp", "-boot-menu-wait", "-no-reboot",
                                                  "-snapshot", "-tpm-interface", "-tpm-irq", "-tpm-ppi"};
// Config's machine options as a command line, which parse_cli gives back (with the TPM backend,
// disk and consoles of the restoring command line).
std::vector<std::string> machine_arguments(const Config& config);

struct CliResult {
    enum class Action { run, help, version } action = Action::run;
    Config config;
};

CliResult parse_cli(const std::vector<std::string>& args);
std::string usage_text();

// "512M", "2G", "1024" (MiB, as QEMU) -> bytes; nullopt when malformed or too large for 64 bits.
std::optional<uint64_t> parse_size(const std::string& text);

inline constexpr uint64_t kMinRam = 32ull << 20;  // SeaBIOS keeps 16 MiB for its tables
inline constexpr uint64_t kMaxRam = 1ull << 40;
inline constexpr uint64_t kRamGranularity = 1ull << 20;  // -m in whole MiB
inline constexpr unsigned kMaxCpus = 64;
inline constexpr size_t kMaxSocketPath = 107;  // sizeof(sockaddr_un::sun_path) - 1

}  // namespace minivmm
