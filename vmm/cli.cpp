#include "vmm/cli.hpp"

#include <charconv>

#include <fmt/core.h>

#include "vmm/base/error.hpp"
#include "vmm/base/platform.hpp"

namespace minivmm {

namespace {

[[noreturn]] void usage_error(const std::string& message) {
    throw SetupError(kExitUsage, message + " (see minivmm --help)");
}

template <typename T>
std::optional<T> parse_uint(const std::string& s) {
    T v{};
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

bool parse_on_off(const std::string& option, const std::string& value) {
    if (value == "on") return true;
    if (value == "off") return false;
    usage_error(fmt::format("{}: '{}' is not on or off", option, value));
}

CharTarget parse_char_target(const std::string& option, const std::string& value, bool allow_none) {
    if (value == "stdio") return {CharTarget::Kind::stdio, {}};
    if (allow_none && value == "none") return {CharTarget::Kind::none, {}};
    if (value.rfind("file:", 0) == 0 && value.size() > 5) return {CharTarget::Kind::file, value.substr(5)};
    usage_error(fmt::format("{}: '{}' is not one of stdio, file:PATH{}", option, value, allow_none ? ", none" : ""));
}

}  // namespace

std::optional<uint64_t> parse_size(const std::string& text) {
    if (text.empty()) return std::nullopt;
    std::string digits = text;
    uint64_t unit = 1ull << 20;  // a bare number means MiB, as in QEMU
    switch (text.back()) {
    case 'k': case 'K': unit = 1ull << 10; digits.pop_back(); break;
    case 'm': case 'M': unit = 1ull << 20; digits.pop_back(); break;
    case 'g': case 'G': unit = 1ull << 30; digits.pop_back(); break;
    case 't': case 'T': unit = 1ull << 40; digits.pop_back(); break;
    default: break;
    }
    auto n = parse_uint<uint64_t>(digits);
    if (!n || *n > (~uint64_t{0}) / unit) return std::nullopt;
    return *n * unit;
}

std::string usage_text() {
    std::string text = fmt::format(R"(usage: minivmm [options] DISK
       minivmm [options] -kernel BZIMAGE [-initrd FILE] [-append CMDLINE] [DISK]

Boot the raw disk image DISK, or a Linux kernel, with SeaBIOS on KVM.

options:
  -kernel BZIMAGE        boot this Linux kernel (x86 boot protocol 2.06 or later; with -bios none
                         also an ELF vmlinux, entered through PVH) instead of
                         DISK's boot sector; DISK is then optional. With a TPM the kernel and
                         the initrd are measured into PCR 9 and the command line into PCR 8,
                         and logged after the firmware's events, as GRUB does
  -initrd FILE           the kernel's initial RAM disk (with -kernel)
  -append CMDLINE        the kernel's command line (with -kernel; default empty)
  -bios FILE|none        firmware image (default {}); none (with -kernel): no firmware,
                         minivmm enters the kernel itself (its ELF through PVH, else its 64-bit
                         entry) and, with a TPM, starts it and measures as firmware would (a
                         file named none: ./none)
  -kernel-cache DIR      with -bios none: keep the decompressed kernel and the files' digests
                         in DIR (created 0700), so the next run of the same files skips the
                         decompression and the hashing
  -kernel-entry auto|pvh|bzimage
                         with -bios none: how the kernel is entered: its ELF through PVH
                         (decompressed by minivmm; no KASLR), the bzImage's 64-bit entry (it
                         decompresses itself, KASLR as usual), or auto (default): PVH if the
                         kernel has it
  -m SIZE                guest RAM, e.g. 512M, 2G (default 512M; a bare number is MiB)
  -smp N                 number of vCPUs (default 1, at most {})
  -serial stdio|file:PATH|none
                         where COM1 goes (default stdio; stdin is COM1's input)
  -debugcon stdio|file:PATH
                         SeaBIOS debug log (port 0x402); off by default
  -boot-menu-wait MS     show SeaBIOS's boot menu for MS milliseconds (default: no menu)
  -no-reboot             exit (status 0) when the guest resets instead of rebooting it
  -snapshot              never write to DISK: guest writes go to memory and are discarded
  -tpm-swtpm DIR         give the guest a TPM backed by an swtpm that minivmm runs itself
                         (as the same user), its state in DIR (created if missing; one
                         minivmm at a time); on first use swtpm_setup manufactures the TPM
                         with EK and platform certificates from swtpm's local CA (as root:
                         /var/lib/swtpm-localca/swtpm-localca-rootca-cert.pem); swtpm and
                         swtpm_setup are looked up in PATH (missing: exit status 6)
  -tpm-sock PATH         give the guest a TPM backed by the swtpm whose control socket is
                         PATH (swtpm socket --ctrl type=unixio,path=PATH [--tpm2]); the TPM
                         version (1.2 or 2.0) is detected
  -tpm-state DIR         give the guest a TPM backed by libtpms inside minivmm, keeping
                         its state in DIR (created if missing; one minivmm at a time)
  -tpm-version 1.2|2.0   the TPM version for -tpm-state and -tpm-swtpm (default 2.0)
  -tpm-ca DIR            with -tpm-state: sign the TPM's EK certificates (NV 0x01c00002
                         RSA, 0x01c0000a ECC; TPM 1.2: 0x1000f000) with the CA in DIR:
                         ca.pem and its unencrypted key ca.key; default: a CA of the state
                         directory's own (DIR/ek-ca.key); verifiers use the CA certificate
                         in STATE/ek-ca.pem
  -tpm-interface tis|crb how the guest reaches the TPM at 0xFED40000: tis (FIFO, default;
                         Linux tpm_tis) or crb (Command Response Buffer, TPM 2.0 only;
                         Linux tpm_crb, polled, as QEMU's tpm-crb)
  -tpm-irq on|off        the TIS interrupt, ISA IRQ 13, level-triggered (default on): the
                         DSDT lists it and the TIS raises it; off: polled, as QEMU's tpm-tis
  -tpm-ppi on|off        the TCG Physical Presence Interface (default on): ACPI _DSM on the
                         TPM device (Linux: /sys/class/tpm/tpm0/ppi/); a request the OS makes
                         there (5, 14, 21, 22: clear the TPM; on a 1.2 also enable and
                         activate it as the operation says) is carried out by minivmm
                         at the next reboot, before the firmware runs; requests last as long as
                         minivmm runs (not across its exit)
  -tpm-start-timeout S   wait up to S seconds (default 120, 1-3600) for swtpm (-tpm-sock or
                         -tpm-swtpm; there also for swtpm_setup) to answer at start
                         and at each power-on, saying every 5 s that it waits; the guest starts
                         only once the TPM is up (a TPM that never comes up: exit status 6)
  -dump-acpi DIR         write every generated ACPI table to DIR/<SIG>.dat, then boot
  -exit-stats            at the end of every boot, print on stderr how many KVM exits each
                         reason and each device caused ("exit-stats boot=N ..." lines)
  -d LEVEL               log level: error, warn (default), info, debug, trace
  -sandbox on|off        confine every thread to the system calls it needs once set-up is
                         done (seccomp; default on); a forbidden call ends minivmm (status 7)
  -runas USER            (as root) become USER once /dev/kvm, the BIOS, the disk, output files
                         and the TPM are open; a -tpm-state or -tpm-swtpm directory is given
                         to USER, and -tpm-swtpm's swtpm runs as USER
  -control PATH          a control socket at PATH (a new Unix socket, 0600): one JSON request
                         per line, one answer per line: pause, resume, save (a snapshot), status,
                         quit (README "Snapshots")
  -restore FILE          start the machine saved in the snapshot FILE where it was, instead of
                         booting; its options (-m, -smp, -bios, -kernel, ...) come from FILE, the
                         TPM backend, the disk and the consoles are given again and must match
  -restore-clone         allow FILE to be restored more than once (every restore gives the TPM
                         fresh entropy; the guest's own random state repeats)
  -h, --help             this text
  --version              print the version

Press Ctrl-A x to quit when the serial console is on a terminal.

exit status:
)", platform::kDefaultBios, kMaxCpus);
    for (const ExitStatusDoc& e : kExitStatusDocs) {
        std::string status = e.status == kExitSignalBase ? "128+N" : std::to_string(e.status);
        text += fmt::format("  {:<7}{}\n", status, e.meaning);
    }
    return text;
}

CliResult parse_cli(const std::vector<std::string>& args) {
    CliResult result;
    Config& c = result.config;
    c.bios = platform::kDefaultBios;
    std::vector<std::string> positional;
    bool tpm_version_given = false;
    bool tpm_interface_given = false;
    bool tpm_irq_given = false, tpm_ppi_given = false;
    bool tpm_start_timeout_given = false;
    bool append_given = false, entry_given = false;

    for (size_t i = 0; i < args.size(); ++i) {
        std::string opt = args[i];
        if (opt.size() > 2 && opt[0] == '-' && opt[1] == '-') opt.erase(0, 1);  // --x == -x
        auto value = [&]() -> std::string {
            if (i + 1 >= args.size()) usage_error(fmt::format("option {} needs a value", opt));
            return args[++i];
        };
        if (opt == "-h" || opt == "-help") {
            result.action = CliResult::Action::help;
            return result;
        } else if (opt == "-version") {
            result.action = CliResult::Action::version;
            return result;
        } else if (opt == "-bios") {
            c.bios = value();
            c.firmware = c.bios != "none";
        } else if (opt == "-m") {
            std::string v = value();
            auto size = parse_size(v);
            if (!size) usage_error(fmt::format("-m: '{}' is not a size like 512M or 2G", v));
            if (*size < kMinRam || *size > kMaxRam)
                usage_error(fmt::format("-m: {} is out of range (32M to 1T)", v));
            // KVM maps RAM in pages and the CMOS/e820 sizes SeaBIOS reads are in 64 KiB units;
            // whole MiB keep every one of them exact.
            if (*size % kRamGranularity != 0)
                usage_error(fmt::format("-m: {} is not a whole number of MiB (RAM is given in 1M steps)", v));
            c.ram_bytes = *size;
        } else if (opt == "-smp") {
            std::string v = value();
            auto n = parse_uint<unsigned>(v);
            if (!n || *n == 0 || *n > kMaxCpus) usage_error(fmt::format("-smp: '{}' is not a CPU count from 1 to {}", v, kMaxCpus));
            c.cpus = *n;
        } else if (opt == "-serial") {
            c.serial = parse_char_target("-serial", value(), true);
        } else if (opt == "-debugcon") {
            c.debugcon = parse_char_target("-debugcon", value(), false);
        } else if (opt == "-boot-menu-wait") {
            std::string v = value();
            auto ms = parse_uint<uint32_t>(v);
            if (!ms || *ms > 600000) usage_error(fmt::format("-boot-menu-wait: '{}' is not a time in milliseconds (0-600000)", v));
            c.boot_menu_wait_ms = *ms;
        } else if (opt == "-exit-stats") {
            c.exit_stats = true;
        } else if (opt == "-no-reboot") {
            c.no_reboot = true;
        } else if (opt == "-snapshot") {
            c.snapshot = true;
        } else if (opt == "-tpm-sock") {
            c.tpm_socket = value();
            if (c.tpm_socket->empty()) usage_error("-tpm-sock: empty path");
            // sockaddr_un::sun_path with its terminating NUL. The path is not repeated: it is long.
            if (c.tpm_socket->size() > kMaxSocketPath)
                usage_error(fmt::format("-tpm-sock: the path is {} bytes long, a unix socket path can have at most {}; "
                                        "use a shorter one (a relative path or a link to its directory)",
                                        c.tpm_socket->size(), kMaxSocketPath));
        } else if (opt == "-tpm-swtpm") {
            c.tpm_swtpm = value();
            if (c.tpm_swtpm->empty()) usage_error("-tpm-swtpm: empty directory name");
        } else if (opt == "-tpm-state") {
            c.tpm_state = value();
            if (c.tpm_state->empty()) usage_error("-tpm-state: empty directory name");
        } else if (opt == "-tpm-ca") {
            c.tpm_ca = value();
            if (c.tpm_ca->empty()) usage_error("-tpm-ca: empty directory name");
        } else if (opt == "-tpm-start-timeout") {
            std::string v = value();
            auto s = parse_uint<unsigned>(v);
            if (!s || *s == 0 || *s > 3600)
                usage_error(fmt::format("-tpm-start-timeout: '{}' is not a time in seconds (1-3600)", v));
            c.tpm_start_timeout_s = *s;
            tpm_start_timeout_given = true;
        } else if (opt == "-tpm-interface") {
            const std::string v = value();
            if (v == "tis") c.tpm_interface = TpmInterface::tis;
            else if (v == "crb") c.tpm_interface = TpmInterface::crb;
            else usage_error(fmt::format("-tpm-interface: '{}' is not tis or crb", v));
            tpm_interface_given = true;
        } else if (opt == "-tpm-irq") {
            c.tpm_irq = parse_on_off(opt, value());
            tpm_irq_given = true;
        } else if (opt == "-tpm-ppi") {
            c.tpm_ppi = parse_on_off(opt, value());
            tpm_ppi_given = true;
        } else if (opt == "-tpm-version") {
            std::string v = value();
            if (v == "2.0") c.tpm_version = TpmVersion::v2_0;
            else if (v == "1.2") c.tpm_version = TpmVersion::v1_2;
            else usage_error(fmt::format("-tpm-version: '{}' is not 1.2 or 2.0", v));
            tpm_version_given = true;
        } else if (opt == "-kernel") {
            c.kernel = value();
            if (c.kernel->empty()) usage_error("-kernel: empty file name");
        } else if (opt == "-initrd") {
            c.initrd = value();
            if (c.initrd->empty()) usage_error("-initrd: empty file name");
        } else if (opt == "-kernel-entry") {
            const std::string v = value();
            if (v == "auto") c.kernel_entry = Config::KernelEntry::automatic;
            else if (v == "pvh") c.kernel_entry = Config::KernelEntry::pvh;
            else if (v == "bzimage") c.kernel_entry = Config::KernelEntry::bzimage;
            else usage_error("-kernel-entry takes auto, pvh or bzimage");
            entry_given = true;
        } else if (opt == "-kernel-cache") {
            c.kernel_cache = value();
            if (c.kernel_cache->empty()) usage_error("-kernel-cache: empty directory name");
        } else if (opt == "-append") {
            c.append = value();
            append_given = true;
        } else if (opt == "-dump-acpi") {
            c.dump_acpi_dir = value();
        } else if (opt == "-d") {
            std::string v = value();
            auto level = log::parse_level(v);
            if (!level) usage_error(fmt::format("-d: unknown log level '{}' (error, warn, info, debug, trace)", v));
            c.log_level = *level;
        } else if (opt == "-sandbox") {
            c.sandbox = parse_on_off(opt, value());
        } else if (opt == "-runas") {
            c.runas = value();
            if (c.runas->empty()) usage_error("-runas: empty user name");
        } else if (opt == "-control") {
            c.control = value();
            if (c.control->empty()) usage_error("-control: empty path");
            if (c.control->size() > kMaxSocketPath)
                usage_error(fmt::format("-control: the path is {} bytes long, a unix socket path can have at most {}",
                                        c.control->size(), kMaxSocketPath));
        } else if (opt == "-restore") {
            c.restore = value();
            if (c.restore->empty()) usage_error("-restore: empty file name");
        } else if (opt == "-restore-clone") {
            c.restore_clone = true;
        } else if (opt.size() > 1 && opt[0] == '-') {
            usage_error(fmt::format("unknown option {}", args[i]));
        } else {
            positional.push_back(args[i]);
        }
    }
    if (c.restore_clone && !c.restore) usage_error("-restore-clone needs -restore FILE");
    if (c.restore) {
        // The machine's own options come from the snapshot; main parses them with these (restore_arguments).
        for (const std::string& a : args)
            for (const char* m : kMachineOptions)
                if (a == m || (a.size() > 2 && a[0] == '-' && a[1] == '-' && a.substr(1) == m))
                    usage_error(fmt::format("{}: with -restore the machine's options come from the snapshot", m));
        if (c.dump_acpi_dir) usage_error("-dump-acpi: not with -restore (the tables are the snapshot's machine's)");
        c.disk = positional.empty() ? "" : positional[0];
        if (positional.size() > 1) usage_error(fmt::format("more than one disk image given ('{}' and '{}')", positional[0], positional[1]));
        return result;
    }
    if (positional.empty() && !c.kernel) usage_error("no disk image given (and no -kernel)");
    if (positional.size() > 1) usage_error(fmt::format("more than one disk image given ('{}' and '{}')", positional[0], positional[1]));
    if (!positional.empty()) c.disk = positional[0];
    if (c.initrd && !c.kernel) usage_error("-initrd needs -kernel (the initrd of which kernel?)");
    if (entry_given && c.firmware) usage_error("-kernel-entry needs -bios none (SeaBIOS enters the kernel its own way)");
    if (c.kernel_cache && c.kernel_entry == Config::KernelEntry::bzimage)
        usage_error("-kernel-cache keeps the kernel decompressed for PVH: not with -kernel-entry bzimage");
    if (c.kernel_cache && c.firmware) usage_error("-kernel-cache needs -bios none (SeaBIOS boots the bzImage as it is)");
    if (!c.firmware && !c.kernel) usage_error("-bios none needs -kernel (without firmware nothing boots a disk)");
    if (append_given && !c.kernel) usage_error("-append needs -kernel (a disk's boot loader has its own command line)");
    if ((c.tpm_socket ? 1 : 0) + (c.tpm_state ? 1 : 0) + (c.tpm_swtpm ? 1 : 0) > 1)
        usage_error(c.tpm_swtpm ? "-tpm-swtpm, -tpm-sock and -tpm-state are mutually exclusive (one TPM: an swtpm "
                                  "minivmm runs, an external swtpm or libtpms inside minivmm)"
                                : "-tpm-sock and -tpm-state are mutually exclusive (the TPM is either an external "
                                  "swtpm or libtpms inside minivmm)");
    if (tpm_start_timeout_given && !c.tpm_socket && !c.tpm_swtpm)
        usage_error("-tpm-start-timeout is only valid with -tpm-sock or -tpm-swtpm (it bounds the wait for swtpm)");
    if (tpm_version_given && !c.tpm_state && !c.tpm_swtpm)
        usage_error(c.tpm_socket ? "-tpm-version is only valid with -tpm-state (with -tpm-sock the version is "
                                   "detected from swtpm)"
                                 : "-tpm-version is only valid with -tpm-state");
    if (c.tpm_ca && !c.tpm_state)
        usage_error("-tpm-ca is only valid with -tpm-state (the in-process TPM's EK certificates; swtpm_setup "
                    "makes swtpm's)");
    if (tpm_interface_given && !c.has_tpm())
        usage_error("-tpm-interface needs a TPM: add -tpm-sock PATH or -tpm-state DIR");
    if (c.tpm_interface == TpmInterface::crb && (c.tpm_state || c.tpm_swtpm) && c.tpm_version == TpmVersion::v1_2)
        usage_error("-tpm-interface crb needs a TPM 2.0 (the CRB interface is TPM 2.0 only); drop -tpm-version 1.2 "
                    "or use -tpm-interface tis");
    if (tpm_irq_given && !c.has_tpm())
        usage_error("-tpm-irq needs a TPM: add -tpm-sock PATH or -tpm-state DIR");
    if (tpm_ppi_given && !c.has_tpm())
        usage_error("-tpm-ppi needs a TPM: add -tpm-sock PATH or -tpm-state DIR");
    if (c.tpm_interface == TpmInterface::crb) {
        if (tpm_irq_given && c.tpm_irq)
            usage_error("-tpm-irq on: the CRB interface has no interrupt here (as QEMU's tpm-crb); use -tpm-interface tis");
        c.tpm_irq = false;
    }
    if (c.serial.kind == CharTarget::Kind::stdio && c.debugcon && c.debugcon->kind == CharTarget::Kind::stdio)
        log::debug("serial and debugcon both write to stdout");
    return result;
}

std::vector<std::string> machine_arguments(const Config& c) {
    std::vector<std::string> a{"-m", fmt::format("{}M", c.ram_bytes >> 20), "-smp", std::to_string(c.cpus),
                               "-bios", c.firmware ? c.bios : "none"};
    auto add = [&](const char* option, const std::string& value) {
        a.emplace_back(option);
        a.push_back(value);
    };
    if (c.kernel) add("-kernel", *c.kernel);
    if (c.initrd) add("-initrd", *c.initrd);
    if (c.kernel) add("-append", c.append);
    if (c.kernel_cache) add("-kernel-cache", *c.kernel_cache);
    if (!c.firmware)
        add("-kernel-entry", c.kernel_entry == Config::KernelEntry::pvh       ? "pvh"
                             : c.kernel_entry == Config::KernelEntry::bzimage ? "bzimage"
                                                                              : "auto");
    if (c.boot_menu_wait_ms) add("-boot-menu-wait", std::to_string(*c.boot_menu_wait_ms));
    if (c.no_reboot) a.emplace_back("-no-reboot");
    if (c.snapshot) a.emplace_back("-snapshot");
    if (c.has_tpm()) {
        add("-tpm-interface", c.tpm_interface == TpmInterface::crb ? "crb" : "tis");
        if (c.tpm_interface != TpmInterface::crb) add("-tpm-irq", c.tpm_irq ? "on" : "off");
        add("-tpm-ppi", c.tpm_ppi ? "on" : "off");
    }
    return a;
}

}  // namespace minivmm
