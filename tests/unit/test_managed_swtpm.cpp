// -tpm-swtpm's parts with the real swtpm and swtpm_setup: manufacturing on first use (the EK
// certificate in NV), reuse on the next open, the process stopped and reaped at shutdown, swtpm
// killed under a running backend, and the directory rules (other version, foreign file, in use,
// -tpm-state's directory).
#include <doctest/doctest.h>

#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>

#include "skipped_cases.hpp"
#include "temp_dir.hpp"
#include "tpm_command.hpp"
#include "vmm/tpm/managed_swtpm.hpp"

using namespace minivmm;
using namespace minivmm::testing;
using namespace std::chrono_literals;

namespace {

// swtpm_setup's configuration and local CA in a directory of this test's own ($XDG_CONFIG_HOME,
// swtpm_setup(8)), not the host's /var/lib/swtpm-localca.
void use_own_local_ca() {
    static TempDir config;
    static const bool made = [] {
        ::setenv("XDG_CONFIG_HOME", config.path.c_str(), 1);
        ChildProcess p = ChildProcess::spawn({find_in_path("swtpm_setup"), "--create-config-files", "root,skip-if-exist"},
                                             std::nullopt);
        return p.wait_for_exit(10s) && p.exit_status() == "exit status 0";
    }();
    REQUIRE(made);
}

bool tools_available() {
    static const bool found = !find_in_path("swtpm").empty() && !find_in_path("swtpm_setup").empty();
    if (found) use_own_local_ca();
    if (!found) {
        skip_case();
        static bool reported = false;
        if (!reported) MESSAGE("swtpm or swtpm_setup not in PATH: skipping the -tpm-swtpm cases");
        reported = true;
    }
    return found;
}

ManagedSwtpm::Options options(const std::string& dir, TpmVersion version = TpmVersion::v2_0) {
    ManagedSwtpm::Options o;
    o.state_dir = dir;
    o.version = version;
    o.limits = SwtpmLimits{60000ms, 10000ms, 60000ms};
    return o;
}

std::string error_of(const std::string& dir, TpmVersion version = TpmVersion::v2_0) {
    try {
        ManagedSwtpm::open(options(dir, version));
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return "(no error)";
}

bool process_gone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

const std::vector<uint8_t> kStartup = Cmd(0x8001, 0x144).u16(0).done();  // TPM2_Startup(CLEAR)
// TPM2_NV_ReadPublic of the RSA 2048 EK certificate's index (TCG EK Credential Profile 2.0 §2.2.1.4).
const std::vector<uint8_t> kReadEkCertPublic = Cmd(0x8001, 0x169).u32(0x01c00002).done();

}  // namespace

TEST_CASE("-tpm-swtpm: manufactured on first use with an EK certificate, reused on the next open, stopped at shutdown") {
    if (!tools_available()) return;
    TempDir tmp;
    const std::string dir = tmp.sub("tpm");
    pid_t pid = -1;
    struct stat first {};
    {
        auto tpm = ManagedSwtpm::open(options(dir));
        pid = tpm->pid();
        CHECK(tpm->version() == TpmVersion::v2_0);
        REQUIRE(::stat((dir + "/tpm2-00.permall").c_str(), &first) == 0);
        struct stat st {};
        CHECK(::stat((dir + "/" + std::string(SwtpmStateDir::kWorkName)).c_str(), &st) != 0);  // moved, removed
        REQUIRE(tpm->power_cycle());
        CHECK(be32(run(*tpm, kStartup), 6) == 0);
        const std::vector<uint8_t> pub = run(*tpm, kReadEkCertPublic);
        CHECK(be32(pub, 6) == 0);  // the index exists: swtpm_setup wrote the EK certificate
        CHECK(!process_gone(pid));
        CHECK(std::string(error_of(dir)).find("is in use by another minivmm (pid") != std::string::npos);
        tpm->shutdown();
        CHECK(process_gone(pid));  // exited and reaped, not a zombie
    }
    // Second open: the same TPM (no manufacturing: the permanent state's inode is kept).
    auto start = std::chrono::steady_clock::now();
    auto tpm = ManagedSwtpm::open(options(dir));
    MESSAGE("second open took " << std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count()
                                << " ms");
    struct stat again {};
    REQUIRE(::stat((dir + "/tpm2-00.permall").c_str(), &again) == 0);
    REQUIRE(tpm->power_cycle());
    CHECK(be32(run(*tpm, kStartup), 6) == 0);
    CHECK(be32(run(*tpm, kReadEkCertPublic), 6) == 0);
    CHECK(tpm->pid() != pid);
}

TEST_CASE("-tpm-swtpm: swtpm killed under a running backend: TPM failures, no fresh TPM; shutdown returns at once") {
    if (!tools_available()) return;
    TempDir tmp;
    auto tpm = ManagedSwtpm::open(options(tmp.sub("tpm")));
    REQUIRE(tpm->power_cycle());
    REQUIRE(::kill(tpm->pid(), SIGKILL) == 0);
    const std::vector<uint8_t> r = run(*tpm, kStartup);
    CHECK(be32(r, 6) == kTpm2RcFailure);
    CHECK_FALSE(tpm->power_cycle());
    const auto start = std::chrono::steady_clock::now();
    tpm->shutdown();
    CHECK(std::chrono::steady_clock::now() - start < 1s);
    CHECK(process_gone(tpm->pid()));
}

TEST_CASE("-tpm-swtpm: a directory of the other version, with foreign files or of -tpm-state is refused untouched") {
    if (!tools_available()) return;
    TempDir tmp;
    const std::string v12 = tmp.sub("v12");
    ManagedSwtpm::open(options(v12, TpmVersion::v1_2));  // manufactured and shut down
    CHECK(error_of(v12) == "swtpm state directory " + v12 + " holds a TPM 1.2 (tpm-00.permall), not the TPM 2.0 "
                                                          "asked for; use -tpm-version 1.2, or give another directory");
    const std::string foreign = tmp.sub("foreign");
    REQUIRE(::mkdir(foreign.c_str(), 0700) == 0);
    std::ofstream(foreign + "/notes.txt") << "mine";
    CHECK(error_of(foreign).find("holds 'notes.txt', which is not swtpm's") != std::string::npos);
    const std::string libtpms = tmp.sub("libtpms");
    REQUIRE(::mkdir(libtpms.c_str(), 0700) == 0);
    std::ofstream(libtpms + "/.minivmm-tpm-state") << "x";
    CHECK(error_of(libtpms).find("holds the state of minivmm's in-process TPM (-tpm-state)") != std::string::npos);
    CHECK_THROWS_WITH_AS(SwtpmStateDir::inspect(foreign, TpmVersion::v2_0),
                         doctest::Contains("which is not swtpm's"), SwtpmStateError);
    struct stat st {};
    CHECK(::stat((foreign + "/" + std::string(SwtpmStateDir::kLockName)).c_str(), &st) != 0);  // nothing created
}

TEST_CASE("-tpm-swtpm: what an interrupted manufacturing left is removed and the TPM manufactured again") {
    if (!tools_available()) return;
    TempDir tmp;
    const std::string dir = tmp.sub("tpm");
    const std::string work = dir + "/" + std::string(SwtpmStateDir::kWorkName);
    REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
    REQUIRE(::mkdir(work.c_str(), 0700) == 0);
    std::ofstream(work + "/tpm2-00.permall") << "half made";
    auto tpm = ManagedSwtpm::open(options(dir));
    REQUIRE(tpm->power_cycle());
    CHECK(be32(run(*tpm, kStartup), 6) == 0);
    CHECK(be32(run(*tpm, kReadEkCertPublic), 6) == 0);
}

TEST_CASE("ChildProcess: a child that ignores nothing is stopped with SIGTERM after the grace time, and reaped") {
    ChildProcess child = ChildProcess::spawn({"/bin/sleep", "60"}, std::nullopt);
    const pid_t pid = child.pid();
    CHECK_FALSE(child.exited());
    const auto start = std::chrono::steady_clock::now();
    child.stop(200ms);
    CHECK(std::chrono::steady_clock::now() - start >= 200ms);
    CHECK(child.exit_status() == "killed by signal 15");
    CHECK(process_gone(pid));
    CHECK(find_in_path("sh").front() == '/');
    CHECK(find_in_path("no-such-program-minivmm").empty());
}
