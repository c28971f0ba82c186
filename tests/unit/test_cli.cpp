#include <doctest/doctest.h>

#include <fmt/core.h>

#include "vmm/cli.hpp"
#include "vmm/base/error.hpp"

using namespace minivmm;

namespace {
Config parse(std::vector<std::string> args) { return parse_cli(args).config; }
int usage_code(std::vector<std::string> args) {
    try {
        parse_cli(args);
    } catch (const SetupError& e) {
        return e.code();
    }
    return -1;
}
}  // namespace

TEST_CASE("defaults and every option") {
    Config c = parse({"disk.img"});
    CHECK(c.disk == "disk.img");
    CHECK(c.bios == "/usr/share/seabios/bios-256k.bin");
    CHECK(c.ram_bytes == (512ull << 20));
    CHECK(c.cpus == 1);
    CHECK(c.serial.kind == CharTarget::Kind::stdio);
    CHECK_FALSE(c.debugcon.has_value());
    CHECK_FALSE(c.boot_menu_wait_ms.has_value());
    CHECK_FALSE(c.exit_stats);

    c = parse({"-bios", "b.bin", "-m", "2G", "-smp", "2", "-serial", "file:/tmp/s.log", "-debugcon", "stdio",
               "-boot-menu-wait", "500", "-no-reboot", "-snapshot", "-exit-stats", "-dump-acpi", "/tmp/acpi", "-d", "debug", "x.img"});
    CHECK(c.bios == "b.bin");
    CHECK(c.ram_bytes == (2ull << 30));
    CHECK(c.cpus == 2);
    CHECK(c.serial.kind == CharTarget::Kind::file);
    CHECK(c.serial.path == "/tmp/s.log");
    CHECK(c.debugcon->kind == CharTarget::Kind::stdio);
    CHECK(*c.boot_menu_wait_ms == 500);
    CHECK(c.no_reboot);
    CHECK(c.exit_stats);
    CHECK(c.snapshot);
    CHECK(*c.dump_acpi_dir == "/tmp/acpi");
    CHECK(c.log_level == log::Level::debug);
    CHECK(parse({"--serial", "none", "d"}).serial.kind == CharTarget::Kind::none);
}

TEST_CASE("help and version") {
    CHECK(parse_cli({"--help"}).action == CliResult::Action::help);
    CHECK(parse_cli({"-h"}).action == CliResult::Action::help);
    CHECK(parse_cli({"--version"}).action == CliResult::Action::version);
    CHECK(usage_text().find("-boot-menu-wait") != std::string::npos);
}

TEST_CASE("sizes") {
    CHECK(parse_size("512M") == (512ull << 20));
    CHECK(parse_size("512") == (512ull << 20));
    CHECK(parse_size("1g") == (1ull << 30));
    CHECK(parse_size("64K") == (64ull << 10));
    CHECK_FALSE(parse_size("").has_value());
    CHECK_FALSE(parse_size("M").has_value());
    CHECK_FALSE(parse_size("12X").has_value());
    CHECK_FALSE(parse_size("-1G").has_value());
    CHECK(parse_size("0") == 0u);  // a size; -m says it is out of range
    CHECK_FALSE(parse_size("99999999999999999999G").has_value());
    CHECK_FALSE(parse_size("20000000000T").has_value());
}

TEST_CASE("bad command lines are usage errors") {
    CHECK(usage_code({}) == kExitUsage);
    CHECK(usage_code({"a.img", "b.img"}) == kExitUsage);
    CHECK(usage_code({"-frobnicate", "a.img"}) == kExitUsage);
    CHECK(usage_code({"a.img", "-m"}) == kExitUsage);
    CHECK(usage_code({"-m", "lots", "a.img"}) == kExitUsage);
    CHECK(usage_code({"-m", "16M", "a.img"}) == kExitUsage);
    CHECK(usage_code({"-smp", "0", "a.img"}) == kExitUsage);
    CHECK(usage_code({"-smp", "1000", "a.img"}) == kExitUsage);
    CHECK(usage_code({"-smp", "2x", "a.img"}) == kExitUsage);
    CHECK(usage_code({"-serial", "tcp:1234", "a.img"}) == kExitUsage);
    CHECK(usage_code({"-serial", "file:", "a.img"}) == kExitUsage);
    CHECK(usage_code({"-debugcon", "none", "a.img"}) == kExitUsage);
    CHECK(usage_code({"-boot-menu-wait", "-5", "a.img"}) == kExitUsage);
    CHECK(usage_code({"-d", "verbose", "a.img"}) == kExitUsage);
}

TEST_CASE("-m: out of range and not whole MiB say so") {
    auto message = [](const std::string& size) {
        try {
            parse_cli({"-m", size, "a.img"});
        } catch (const SetupError& e) {
            CHECK(e.code() == kExitUsage);
            return std::string(e.what());
        }
        return std::string();
    };
    CHECK(message("0") == "-m: 0 is out of range (32M to 1T) (see minivmm --help)");
    CHECK(message("0G") == "-m: 0G is out of range (32M to 1T) (see minivmm --help)");
    CHECK(message("33554433K") == "-m: 33554433K is not a whole number of MiB (RAM is given in 1M steps) (see minivmm --help)");
    CHECK(message("32769K").find("is not a whole number of MiB") != std::string::npos);
    CHECK(message("lots") == "-m: 'lots' is not a size like 512M or 2G (see minivmm --help)");
    CHECK(parse({"-m", "33554432K", "a.img"}).ram_bytes == (32ull << 30));
    CHECK(parse({"-m", "1T", "a.img"}).ram_bytes == (1ull << 40));
}

namespace {
std::string usage_message(std::vector<std::string> args) {
    try {
        parse_cli(args);
    } catch (const SetupError& e) {
        CHECK(e.code() == kExitUsage);
        return e.what();
    }
    return {};
}
}  // namespace

TEST_CASE("TPM options: -tpm-interface tis|crb") {
    CHECK(parse({"-tpm-sock", "s", "a.img"}).tpm_interface == TpmInterface::tis);  // the default
    CHECK(parse({"-tpm-sock", "s", "-tpm-interface", "crb", "a.img"}).tpm_interface == TpmInterface::crb);
    CHECK(parse({"-tpm-state", "d", "-tpm-interface", "tis", "a.img"}).tpm_interface == TpmInterface::tis);
    CHECK(parse({"-tpm-state", "d", "-tpm-version", "1.2", "-tpm-interface", "tis", "a.img"}).tpm_interface ==
          TpmInterface::tis);
    CHECK(usage_message({"-tpm-sock", "s", "-tpm-interface", "fifo", "a.img"}) ==
          "-tpm-interface: 'fifo' is not tis or crb (see minivmm --help)");
    CHECK(usage_message({"-tpm-interface", "crb", "a.img"}) ==
          "-tpm-interface needs a TPM: add -tpm-sock PATH or -tpm-state DIR (see minivmm --help)");
    CHECK(usage_message({"-tpm-state", "d", "-tpm-version", "1.2", "-tpm-interface", "crb", "a.img"}).find(
              "-tpm-interface crb needs a TPM 2.0") == 0);
    CHECK(usage_message({"a.img", "-tpm-interface"}) == "option -tpm-interface needs a value (see minivmm --help)");
}

TEST_CASE("TPM options: -tpm-ppi on|off") {
    CHECK(parse({"-tpm-sock", "s", "a.img"}).tpm_ppi);  // on by default, as QEMU's ppi=on
    CHECK_FALSE(parse({"-tpm-sock", "s", "-tpm-ppi", "off", "a.img"}).tpm_ppi);
    CHECK(parse({"-tpm-state", "d", "-tpm-interface", "crb", "-tpm-ppi", "on", "a.img"}).tpm_ppi);
    CHECK(usage_message({"-tpm-ppi", "on", "a.img"}) ==
          "-tpm-ppi needs a TPM: add -tpm-sock PATH or -tpm-state DIR (see minivmm --help)");
    CHECK(usage_message({"-tpm-sock", "s", "-tpm-ppi", "yes", "a.img"}) ==
          "-tpm-ppi: 'yes' is not on or off (see minivmm --help)");
}

TEST_CASE("TPM options: -tpm-irq on|off") {
    CHECK(parse({"-tpm-sock", "s", "a.img"}).tpm_irq);  // the TIS interrupt by default
    CHECK_FALSE(parse({"-tpm-sock", "s", "-tpm-irq", "off", "a.img"}).tpm_irq);
    CHECK(parse({"-tpm-state", "d", "-tpm-irq", "on", "a.img"}).tpm_irq);
    CHECK_FALSE(parse({"-tpm-sock", "s", "-tpm-interface", "crb", "a.img"}).tpm_irq);  // CRB: none
    CHECK_FALSE(parse({"-tpm-sock", "s", "-tpm-interface", "crb", "-tpm-irq", "off", "a.img"}).tpm_irq);
    CHECK(usage_message({"-tpm-sock", "s", "-tpm-interface", "crb", "-tpm-irq", "on", "a.img"}).find(
              "-tpm-irq on: the CRB interface has no interrupt") == 0);
    CHECK(usage_message({"-tpm-irq", "off", "a.img"}) ==
          "-tpm-irq needs a TPM: add -tpm-sock PATH or -tpm-state DIR (see minivmm --help)");
    CHECK(usage_message({"-tpm-sock", "s", "-tpm-irq", "13", "a.img"}) ==
          "-tpm-irq: '13' is not on or off (see minivmm --help)");
}

TEST_CASE("TPM options: -tpm-sock, -tpm-state, -tpm-version") {
    Config c = parse({"a.img"});
    CHECK_FALSE(c.tpm_socket.has_value());
    CHECK_FALSE(c.tpm_state.has_value());  // no TPM at all

    c = parse({"-tpm-state", "./mytpm", "a.img"});
    CHECK(*c.tpm_state == "./mytpm");
    CHECK(c.tpm_version == TpmVersion::v2_0);  // the default
    CHECK_FALSE(c.tpm_socket.has_value());
    CHECK(parse({"-tpm-state", "d", "-tpm-version", "1.2", "a.img"}).tpm_version == TpmVersion::v1_2);
    CHECK(parse({"--tpm-version", "2.0", "--tpm-state", "d", "a.img"}).tpm_version == TpmVersion::v2_0);
    CHECK(*parse({"-tpm-sock", "/tmp/s", "a.img"}).tpm_socket == "/tmp/s");

    CHECK(usage_message({"-tpm-sock", "/tmp/s", "-tpm-state", "d", "a.img"}) ==
          "-tpm-sock and -tpm-state are mutually exclusive (the TPM is either an external swtpm or libtpms inside "
          "minivmm) (see minivmm --help)");
    CHECK(usage_message({"-tpm-version", "1.2", "a.img"}) ==
          "-tpm-version is only valid with -tpm-state (see minivmm --help)");
    CHECK(usage_message({"-tpm-sock", "s", "-tpm-version", "2.0", "a.img"}).find(
              "-tpm-version is only valid with -tpm-state (with -tpm-sock the version is detected") == 0);
    CHECK(usage_message({"-tpm-state", "d", "-tpm-version", "2", "a.img"}) ==
          "-tpm-version: '2' is not 1.2 or 2.0 (see minivmm --help)");
    CHECK(usage_message({"-tpm-state", "d", "-tpm-version", "3.0", "a.img"}).find("is not 1.2 or 2.0") != std::string::npos);
    CHECK(usage_message({"-tpm-state", "", "a.img"}) == "-tpm-state: empty directory name (see minivmm --help)");
    // A path too long for sockaddr_un is a bad value, said once (the path is not repeated).
    const std::string long_path = "/tmp/" + std::string(103, 'x');  // 108 bytes
    CHECK(usage_message({"-tpm-sock", long_path, "a.img"}) ==
          "-tpm-sock: the path is 108 bytes long, a unix socket path can have at most 107; use a shorter one (a "
          "relative path or a link to its directory) (see minivmm --help)");
    CHECK(*parse({"-tpm-sock", long_path.substr(1), "a.img"}).tpm_socket == long_path.substr(1));  // 107 bytes fit
    CHECK(usage_message({"a.img", "-tpm-state"}) == "option -tpm-state needs a value (see minivmm --help)");
    CHECK(usage_message({"a.img", "-tpm-state", "d", "-tpm-version"}) == "option -tpm-version needs a value (see minivmm --help)");
    CHECK(usage_text().find("-tpm-state DIR") != std::string::npos);
    CHECK(usage_text().find("-tpm-version 1.2|2.0") != std::string::npos);
}

TEST_CASE("-tpm-swtpm DIR: the swtpm minivmm runs; -tpm-version and -tpm-start-timeout go with it") {
    Config c = parse({"-tpm-swtpm", "vm1-tpm", "a.img"});
    CHECK(*c.tpm_swtpm == "vm1-tpm");
    CHECK(c.has_tpm());
    CHECK(c.tpm_version == TpmVersion::v2_0);
    c = parse({"-tpm-swtpm", "d", "-tpm-version", "1.2", "-tpm-start-timeout", "30", "-tpm-interface", "tis", "a.img"});
    CHECK(c.tpm_version == TpmVersion::v1_2);
    CHECK(c.tpm_start_timeout_s == 30);
    const std::string exclusive = "-tpm-swtpm, -tpm-sock and -tpm-state are mutually exclusive (one TPM: an swtpm "
                                  "minivmm runs, an external swtpm or libtpms inside minivmm) (see minivmm --help)";
    CHECK(usage_message({"-tpm-swtpm", "d", "-tpm-sock", "s", "a.img"}) == exclusive);
    CHECK(usage_message({"-tpm-state", "e", "-tpm-swtpm", "d", "a.img"}) == exclusive);
    CHECK(usage_message({"-tpm-swtpm", "", "a.img"}) == "-tpm-swtpm: empty directory name (see minivmm --help)");
    CHECK(usage_message({"-tpm-swtpm", "d", "-tpm-version", "1.2", "-tpm-interface", "crb", "a.img"}).find(
              "-tpm-interface crb needs a TPM 2.0") == 0);
    CHECK(usage_text().find("-tpm-swtpm DIR") != std::string::npos);
}

TEST_CASE("-tpm-start-timeout: seconds from 1 to 3600, with -tpm-sock only") {
    CHECK(parse({"-tpm-sock", "s", "a.img"}).tpm_start_timeout_s == 120);
    CHECK(parse({"-tpm-sock", "s", "-tpm-start-timeout", "15", "a.img"}).tpm_start_timeout_s == 15);
    CHECK(parse({"-tpm-sock", "s", "--tpm-start-timeout", "3600", "a.img"}).tpm_start_timeout_s == 3600);
    for (const char* bad : {"0", "3601", "-1", "1.5", "10s", ""})
        CHECK(usage_message({"-tpm-sock", "s", "-tpm-start-timeout", bad, "a.img"}) ==
              fmt::format("-tpm-start-timeout: '{}' is not a time in seconds (1-3600) (see minivmm --help)", bad));
    CHECK(usage_message({"-tpm-state", "d", "-tpm-start-timeout", "5", "a.img"}) ==
          "-tpm-start-timeout is only valid with -tpm-sock or -tpm-swtpm (it bounds the wait for swtpm) (see minivmm --help)");
    CHECK(usage_text().find("-tpm-start-timeout S") != std::string::npos);
}

TEST_CASE("hardening options: -sandbox, -runas") {
    Config c = parse({"a.img"});
    CHECK(c.sandbox);  // on unless asked otherwise
    CHECK_FALSE(c.runas.has_value());

    CHECK_FALSE(parse({"-sandbox", "off", "a.img"}).sandbox);
    CHECK(parse({"--sandbox", "on", "a.img"}).sandbox);
    CHECK(parse({"-sandbox", "off", "-sandbox", "on", "a.img"}).sandbox);  // the last one wins
    CHECK(*parse({"-runas", "nobody", "a.img"}).runas == "nobody");
    CHECK(*parse({"--runas", "1000", "a.img"}).runas == "1000");

    CHECK(usage_message({"-sandbox", "no", "a.img"}) == "-sandbox: 'no' is not on or off (see minivmm --help)");
    CHECK(usage_message({"-sandbox", "OFF", "a.img"}).find("is not on or off") != std::string::npos);
    CHECK(usage_message({"a.img", "-sandbox"}) == "option -sandbox needs a value (see minivmm --help)");
    CHECK(usage_message({"-runas", "", "a.img"}) == "-runas: empty user name (see minivmm --help)");
    CHECK(usage_message({"a.img", "-runas"}) == "option -runas needs a value (see minivmm --help)");
    CHECK(usage_text().find("-sandbox on|off") != std::string::npos);
    CHECK(usage_text().find("-runas USER") != std::string::npos);
    CHECK(usage_text().find("\n  7      stopped by the sandbox") != std::string::npos);
    CHECK(usage_text().find("\n  128+N  killed by signal N\n") != std::string::npos);
}

TEST_CASE("-kernel, -initrd and -append; the disk is optional with -kernel") {
    Config c = parse({"-kernel", "bz", "-initrd", "rd", "-append", "console=ttyS0 quiet"});
    CHECK(c.kernel == "bz");
    CHECK(c.initrd == "rd");
    CHECK(c.append == "console=ttyS0 quiet");
    CHECK(c.disk.empty());
    c = parse({"-kernel", "bz", "disk.img"});
    CHECK(c.disk == "disk.img");
    CHECK_FALSE(c.initrd.has_value());
    CHECK(c.append.empty());
    CHECK(usage_code({"-initrd", "rd", "disk.img"}) == kExitUsage);
    CHECK(usage_code({"-append", "", "disk.img"}) == kExitUsage);  // even an empty one: which kernel's?
    CHECK(usage_code({"-kernel", ""}) == kExitUsage);
    CHECK(usage_code({"-kernel", "bz", "-initrd", ""}) == kExitUsage);
    CHECK(usage_code({}) == kExitUsage);
    CHECK(usage_text().find("-kernel BZIMAGE") != std::string::npos);
}
