// minivmm entry point: parse the command line, open what outlives a guest reset (KVM, BIOS,
// disk, console), then build and run one Machine per power-on until the guest powers off.
#include <fcntl.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <fmt/core.h>
#include <openssl/crypto.h>

#include "firmware/bios_image.hpp"
#include "firmware/linux_boot64.hpp"
#include "vmm/cli.hpp"
#include "vmm/host/console.hpp"
#include "vmm/host/disk_image.hpp"
#include "vmm/base/error.hpp"
#include "vmm/kernel_boot.hpp"
#include "vmm/pvh_kernel.hpp"
#include "vmm/host/boot_timer.hpp"
#include "vmm/kvm/kvm.hpp"
#include "vmm/base/log.hpp"
#include "vmm/machine.hpp"
#include "vmm/machine_control.hpp"
#include "vmm/snapshot_restore.hpp"
#include "vmm/host/output_queue.hpp"
#include "vmm/base/platform.hpp"
#include "vmm/host/privileges.hpp"
#include "vmm/host/sandbox.hpp"
#include "vmm/startup_checks.hpp"
#include "vmm/tpm_slot.hpp"
#include "vmm/kvm/vcpu.hpp"
#ifdef MINIVMM_TEST_HOOKS
#include "vmm/tpm/canned_random_backend.hpp"
#include "vmm/tpm/delayed_backend.hpp"
#endif

using namespace minivmm;

namespace {

// Signals that end the VMM cleanly: blocked everywhere and read from a signalfd by the main thread.
UniqueFd block_termination_signals() {
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&set, s);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    UniqueFd fd(::signalfd(-1, &set, SFD_CLOEXEC));
    if (!fd.valid()) throw SetupError(kExitInternal, fmt::format("signalfd: {}", std::strerror(errno)));
    ::signal(SIGPIPE, SIG_IGN);  // a closed serial pipe must not kill the VMM
    return fd;
}

// A crash must still give the user their terminal back.
void install_crash_handlers() {
    struct sigaction sa {};
    sa.sa_handler = [](int sig) {
        TerminalRawMode::restore();
        ::signal(sig, SIG_DFL);
        ::raise(sig);
    };
    sigemptyset(&sa.sa_mask);
    for (int s : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) ::sigaction(s, &sa, nullptr);
}

// Device output goes through a QueuedSink: a vCPU never waits for the terminal, pipe or file.
std::unique_ptr<QueuedSink> open_char_target(const CharTarget& target, const char* what,
                                             const std::vector<FileIdentity>& inputs) {
    std::unique_ptr<FdSink> out;
    switch (target.kind) {
    case CharTarget::Kind::stdio:
        out = std::make_unique<FdSink>(STDOUT_FILENO, false);
        break;
    case CharTarget::Kind::file:
        try {
            out = open_file_sink(target.path, inputs);
        } catch (const std::exception& e) {
            throw SetupError(kExitFile, fmt::format("{}: {}", what, e.what()));
        }
        break;
    case CharTarget::Kind::none:
        return nullptr;
    }
    try {
        return std::make_unique<QueuedSink>(std::move(out), what);
    } catch (const std::runtime_error& e) {
        throw SetupError(kExitInternal, e.what());
    }
}

// The end of set-up: everything is open and the first machine is built. Become the -runas user,
// then confine every thread (vmm/host/README.md "Sandbox").
void confine(const Config& config, const std::optional<RunAsUser>& runas, const Kvm& kvm, const TpmSlot& tpm,
             int kernel_cache_fd, const MachineControl* control, const DiskImage* disk) {
    if (runas) {
        if (config.tpm_state) give_state_dir_to(*runas, *config.tpm_state);
        drop_privileges(*runas);
    }
    if (!config.sandbox) {
        log::info("sandbox off (-sandbox off)");
        return;
    }
    sandbox::Policy policy;
    policy.kvm_fd = kvm.fd();
    policy.tpm = tpm.sandbox_io();
    policy.swtpm_pidfd = tpm.swtpm_pidfd();
    policy.kernel_cache_fd = kernel_cache_fd;
    policy.control_listen_fd = control ? control->listen_fd() : -1;
    policy.control_dir_fd = control ? control->dir_fd() : -1;
    policy.snapshot_saves = control != nullptr;
    policy.disk_fd = control && disk ? disk->fd() : -1;
    sandbox::install(policy);
}

#ifdef MINIVMM_TEST_HOOKS
// minivmm-testhooks only: MINIVMM_TEST_FORBIDDEN_SYSCALL=1 makes vCPU 0 open an Internet socket
// right after its sandbox filter is loaded; the sandbox must end the process (status 7).
void install_test_hooks() {
    const char* forbidden = std::getenv("MINIVMM_TEST_FORBIDDEN_SYSCALL");
    if (!forbidden || std::string(forbidden) != "1") return;
    sandbox::set_vcpu_start_hook([](unsigned index) {
        if (index != 0) return;
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        log::warn("test hook: socket(AF_INET) on vCPU 0 returned {} (the sandbox is off)", fd);
        if (fd >= 0) ::close(fd);
    });
}
#endif

// -bios none: PvhKernel, or nullopt for the bzImage's 64-bit entry (-kernel-entry; vmm/pvh_kernel.hpp).
std::optional<PvhKernel> choose_kernel_entry(const Config& config, const KernelBoot& kernel) {
    std::optional<PvhKernel> pvh;
    const PvhKernel::Source source{kernel.kernel_bytes(), *config.kernel, {}, kernel.plan(),
                                   std::min<uint64_t>(config.ram_bytes, platform::kLowMemoryLimit), config.kernel_cache};
    if (kernel.is_elf()) {
        if (config.kernel_entry == Config::KernelEntry::bzimage)
            throw SetupError(kExitFile, fmt::format("-kernel {}: an ELF vmlinux has no bzImage entry: not with "
                                                    "-kernel-entry bzimage", *config.kernel));
        pvh = PvhKernel::from_elf(source);
        log::info("-bios none: the ELF kernel is entered through PVH at {:#x}", pvh->image().pvh_entry);
        return pvh;
    }
    std::string why = "-kernel-entry bzimage";
    if (config.kernel_entry != Config::KernelEntry::bzimage)
        pvh = PvhKernel::from_bzimage({source.bzimage, source.name,
                                       config.kernel_cache ? kernel.kernel_sha256() : std::vector<uint8_t>{}, source.plan,
                                       source.ram_below_4g, source.cache_dir}, why);
    if (pvh) {
        log::info("-bios none: the kernel's ELF ({} bytes{}) is entered through PVH at {:#x}", pvh->elf_size(),
                  pvh->from_cache() ? ", from -kernel-cache" : "", pvh->image().pvh_entry);
        return pvh;
    }
    if (config.kernel_entry == Config::KernelEntry::pvh)
        throw SetupError(kExitFile, fmt::format("-kernel {}: -kernel-entry pvh: {}", *config.kernel, why));
    log::info("-bios none: {}: {}: its 64-bit entry is used", *config.kernel, why);
    try {
        linux_boot64::check_64bit_entry(kernel.plan());
    } catch (const std::invalid_argument& e) {
        throw SetupError(kExitFile, fmt::format("-kernel {}: {}, and {}", *config.kernel, why, e.what()));
    }
    return std::nullopt;
}

int run(const Config& config, int signal_fd, const SnapshotFile* snapshot) {
    std::optional<RunAsUser> runas;
    if (config.runas) runas = resolve_runas(*config.runas);
    std::optional<BiosImage> bios;
    if (config.firmware) bios = BiosImage::load(config.bios);
    std::unique_ptr<DiskImage> disk;
    if (!config.disk.empty()) {
        try {
            disk = DiskImage::open(config.disk, config.snapshot);
        } catch (const std::runtime_error& e) {
            throw SetupError(kExitFile, e.what());
        }
    }
    // -kernel: read and checked now, once (hashed now for SeaBIOS with a TPM; for -bios none when the
    // TPM's banks are known); every power-on loads the same bytes.
    std::optional<KernelBoot> kernel;
    if (config.kernel)
        kernel = KernelBoot::load({*config.kernel, config.initrd, config.append, config.kernel_cache},
                                  std::min<uint64_t>(config.ram_bytes, platform::kLowMemoryLimit),
                                  /*eager=*/config.firmware && config.has_tpm());
    if (kernel) log::debug("start-up: -kernel read, {:.1f} ms after start", ms_since_start());
    if (kernel && kernel->is_elf() && config.firmware)
        throw SetupError(kExitFile, fmt::format("-kernel {}: an ELF vmlinux boots only without firmware (-bios none): "
                                                "SeaBIOS boots bzImages", *config.kernel));
    // Every argument and file is checked before anything is created or truncated, and before
    // /dev/kvm: a refused run changes nothing, and each mistake gets its own message.
    check_before_start(config);
    log::debug("start-up: arguments and files checked, {:.1f} ms after start", ms_since_start());
    // -bios none: the kernel's ELF through PVH if its payload gives one, else its 64-bit entry.
    // Restored, it is needed at the next reboot: decompressed then (not with -kernel-cache: it writes).
    std::optional<PvhKernel> pvh;
    bool pvh_later = kernel && !config.firmware && config.restore && !config.kernel_cache;
    if (kernel && !config.firmware && !pvh_later) pvh = choose_kernel_entry(config, *kernel);
    if (pvh) log::debug("start-up: the PVH kernel is ready, {:.1f} ms after start", ms_since_start());
    Kvm kvm = Kvm::open();
    if (disk && disk->read_only()) log::warn("disk image {} is not writable: the guest sees a read-only disk", config.disk);
    const std::vector<FileIdentity> inputs = input_files(config);
    auto serial_out = open_char_target(config.serial, "-serial", inputs);
    auto debug_out = config.debugcon ? open_char_target(*config.debugcon, "-debugcon", inputs) : nullptr;
    // The TPM outlives guest resets (each power-on power-cycles it) and is shut down at exit.
    // -tpm-swtpm: swtpm is started here, before the sandbox, as the -runas user if any.
    int swtpm_pidfd = -1;
    std::unique_ptr<TpmBackend> tpm =
        open_tpm_backend(config, runas ? std::optional(std::pair(runas->uid, runas->gid)) : std::nullopt, swtpm_pidfd);
    if (tpm) log::debug("start-up: the TPM backend is open, {:.1f} ms after start", ms_since_start());
#ifdef MINIVMM_TEST_HOOKS
    // minivmm-testhooks only: TPM2_GetRandom answered from memory (the benchmarks' floor column).
    if (const char* canned = std::getenv("MINIVMM_TEST_CANNED_GETRANDOM"); tpm && canned && std::string(canned) == "1") {
        log::warn("test hook: TPM2_GetRandom is answered from memory, not by the TPM");
        tpm = std::make_unique<CannedRandomBackend>(std::move(tpm));
    }
    // minivmm-testhooks only: every TPM command takes N more milliseconds (1..1000), a slow TPM.
    if (const char* delay = std::getenv("MINIVMM_TEST_TPM_DELAY_MS"); tpm && delay) {
        const int ms = std::atoi(delay);
        if (ms < 1 || ms > 1000) throw SetupError(kExitUsage, "MINIVMM_TEST_TPM_DELAY_MS takes 1..1000");
        log::warn("test hook: every TPM command is delayed by {} ms", ms);
        tpm = std::make_unique<DelayedBackend>(std::move(tpm), std::chrono::milliseconds(ms));
    }
#endif
    TpmSlot tpm_slot(std::move(tpm),
                     config.tpm_socket || config.tpm_swtpm ? sandbox::TpmIo::swtpm
                     : config.tpm_state                    ? sandbox::TpmIo::libtpms
                                                           : sandbox::TpmIo::none,
                     swtpm_pidfd);
    // The machine, as data: every power-on builds exactly this (vmm/machine_spec.hpp).
    const MachineSpec spec = machine_spec(config, tpm_slot.version());
    tpm_slot.configure(spec);
    const SnapshotPreamble files = describe_inputs(config, bios ? &*bios : nullptr, tpm_slot.version(), disk.get());
    const std::span<const uint8_t> restore_state = snapshot ? check_restore(*snapshot, files) : std::span<const uint8_t>{};
    std::unique_ptr<MachineControl> control;
    if (config.control)
        control = std::make_unique<MachineControl>(ControlSocket::listen(*config.control), files, disk.get(), tpm_slot);

    // COM1 input: the reader thread outlives every machine; it delivers to the current one.
    std::mutex machine_mutex;
    Machine* current = nullptr;
    std::unique_ptr<TerminalRawMode> raw;
    std::unique_ptr<StdinReader> reader;
    std::atomic<bool> user_quit{false};
    if (config.serial.kind == CharTarget::Kind::stdio) {
        raw = std::make_unique<TerminalRawMode>();
        reader = std::make_unique<StdinReader>(
            [&](std::span<const uint8_t> bytes) -> size_t {
                std::lock_guard lock(machine_mutex);
                return current ? current->serial_input(bytes) : 0;
            },
            [&] {
                std::lock_guard lock(machine_mutex);
                user_quit = true;
                if (current) current->events().post(MachineEvents::Kind::quit, "quit from the console (Ctrl-A x)");
            },
            STDIN_FILENO);
    }

    struct PpiLeftOver {  // on every way out of here, before the console reader stops
        const TpmSlot& tpm;
        ~PpiLeftOver() { tpm.warn_ppi_left_over(); }
    } ppi_left_over{tpm_slot};
    // Snapshots: what this KVM can save and restore, asked of a throw-away VM before the sandbox.
    std::optional<KvmStateSupport> kvm_state;
    if (config.control || snapshot) kvm_state = KvmStateSupport::probe(kvm, Vm(kvm));
    MachineOptions options{spec, kvm, bios ? &*bios : nullptr, tpm_slot, disk.get(), serial_out.get(), debug_out.get(),
                           kernel ? &*kernel : nullptr, pvh ? &*pvh : nullptr, nullptr,
                           kvm_state ? &*kvm_state : nullptr};
    for (unsigned boot = 1;; ++boot) {
        const bool restoring = boot == 1 && snapshot;
        std::unique_ptr<Machine> machine;
        if (restoring) {
            // The TPM is not powered on: it takes its saved state, then fresh entropy (clones).
            machine = restore_machine(*snapshot, restore_state, tpm_slot, options);
            record_restore(config);
            log::info("restored {}, {:.1f} ms after start", snapshot->path(), ms_since_start());
        } else {
            tpm_slot.power_on(boot, !config.firmware);
            log::debug("boot {}: the TPM is powered on, {:.1f} ms after start", boot, ms_since_start());
            machine = std::make_unique<Machine>(options);
        }
        if (boot == 1 && config.dump_acpi_dir) write_acpi_dump(*config.dump_acpi_dir, machine->acpi_dumps());
        // The digests this power-on computed, for the next run (-kernel-cache), before the sandbox.
        if (boot == 1 && kernel) kernel->save_digest_records();
        if (boot == 1) confine(config, runas, kvm, tpm_slot, pvh ? pvh->cache_fd() : -1, control.get(), disk.get());
        // The console reader reaches this machine through `current` until it is cleared, on every
        // way out of this iteration (an exception too), before `machine` goes.
        struct Current {
            std::mutex& mutex;
            Machine*& current;
            ~Current() {
                std::lock_guard lock(mutex);
                current = nullptr;
            }
        } current_guard{machine_mutex, current};
        {
            std::lock_guard lock(machine_mutex);
            current = machine.get();
            if (user_quit) current->events().post(MachineEvents::Kind::quit, "quit from the console (Ctrl-A x)");
        }
        log::info("boot {}: {} vCPU(s), {} MiB RAM, {}{}; {:.1f} ms after start", boot, config.cpus, config.ram_bytes >> 20,
                  config.disk.empty() ? "no disk" : "disk " + config.disk, config.kernel ? ", kernel " + *config.kernel : "",
                  ms_since_start());
        Machine::Result result = machine->run(signal_fd, control.get());
        {
            std::lock_guard lock(machine_mutex);
            current = nullptr;
        }
        // A restored machine's firmware ran in the process that saved it: nothing to check.
        if (auto stats = machine->tpm_stats(); stats && !restoring) TpmSlot::check_boot(boot, *stats, !config.firmware);
        for (const std::string& line : machine->exit_stats_lines(boot)) fmt::print(stderr, "{}\n", line);
        machine.reset();
        switch (result.kind) {
        case MachineEvents::Kind::poweroff:
            log::info("{}", result.message);
            return kExitPoweredOff;
        case MachineEvents::Kind::reset:
            if (config.no_reboot) {
                log::info("{}; exiting because of -no-reboot", result.message);
                return kExitPoweredOff;
            }
            log::info("{}: rebooting", result.message);
            if (std::exchange(pvh_later, false)) {
                pvh = choose_kernel_entry(config, *kernel);
                options.pvh = pvh ? &*pvh : nullptr;
            }
            continue;
        case MachineEvents::Kind::quit:
            if (result.signal) {
                log::warn("{}", result.message);
                return kExitSignalBase + result.signal;
            }
            return kExitPoweredOff;
        case MachineEvents::Kind::fatal:
        case MachineEvents::Kind::none:
            log::error("guest stopped: {}", result.message);
            return kExitGuestFault;
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    // Whatever minivmm creates (state directories and files, output files, ACPI dumps) is
    // private to its user: 0700 directories, 0600 files.
    ::umask(077);
    sandbox::use_one_malloc_arena();  // before any thread: see vmm/host/sandbox.hpp
    // minivmm uses OpenSSL only for its digests: no openssl.cnf (a file read at start-up, and
    // engines or providers a system-wide configuration could load into the VMM).
    OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, nullptr);
    try {
        UniqueFd signal_fd = block_termination_signals();
        install_crash_handlers();
        install_vcpu_kick_handler();
        CliResult cli = parse_cli(std::vector<std::string>(argv + 1, argv + argc));
        if (cli.action == CliResult::Action::help) {
            fmt::print("{}", usage_text());
            return 0;
        }
        if (cli.action == CliResult::Action::version) {
            fmt::print("minivmm {}\n", MINIVMM_VERSION);
            return 0;
        }
        log::set_level(cli.config.log_level);
#ifdef MINIVMM_TEST_HOOKS
        install_test_hooks();
#endif
        // -restore: the machine's options are the snapshot's (vmm/snapshot_restore.hpp).
        std::optional<SnapshotFile> snapshot;
        if (cli.config.restore) snapshot = open_restore(cli, std::vector<std::string>(argv + 1, argv + argc));
        return run(cli.config, signal_fd.get(), snapshot ? &*snapshot : nullptr);
    } catch (const SetupError& e) {
        TerminalRawMode::restore();
        log::error("{}", e.what());
        return e.code();
    } catch (const std::exception& e) {
        TerminalRawMode::restore();
        log::error("{}", e.what());
        return kExitInternal;
    }
}
