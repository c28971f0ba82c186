// tpm_backend_bench: the host-side cost of one TPM command per backend, without a guest: N x
// GetRandom(8) through TpmBackend::execute() of LibtpmsBackend (in-process, a fresh temporary state
// directory) and of SwtpmBackend (a swtpm this tool starts on a temporary directory, or the one
// listening on --swtpm-sock). This is what a command costs the host behind the TIS; the guest's
// TIS register traffic (MMIO exits) comes on top of it (scripts/bench-tpm measures that).
//
//   tpm_backend_bench [--count N] [--warmup N] [--tpm-version 1.2|2.0] [--backend libtpms|swtpm|both]
//                     [--swtpm-sock PATH] [--power-ons N]
//
// --power-ons N: then N power-on cycles (power cycle, TPM_Startup(CLEAR), TPM_Shutdown/SaveState),
// the commands that write the TPM's persistent state (libtpms: a state file written and fsynced;
// swtpm: the same inside swtpm), one more line: "backend=B power_ons=N startup_median_ms=..
// startup_p90_ms=.. startup_max_ms=.. shutdown_median_ms=.. shutdown_p90_ms=.. shutdown_max_ms=..".
// Run it under load to see what a loaded host does to the commands SeaBIOS waits for.
//
// One line per backend: "backend=B version=V setup_ms=S count=N mean_us=M median_us=D p99_us=P
// min_us=L" (or "backend=swtpm skipped=..." when swtpm is not installed). setup_ms is the time from
// nothing to a started TPM on a fresh state (swtpm: spawn, socket, connect; libtpms: state
// directory and manufacture; both: power cycle and TPM_Startup), what the backend adds to a boot. Exit status: 0, 1 if a command
// failed or a backend could not be set up (message on stderr), 2 for a bad command line.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/core.h>

#include "vmm/tpm/libtpms_backend.hpp"
#include "vmm/tpm/swtpm_backend.hpp"
#include "vmm/tpm/tpm_message.hpp"
#include "tests/unit/socket_probe.hpp"

extern char** environ;

using namespace minivmm;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

// TPM2_Startup(SU_CLEAR), TPM2_GetRandom(8) (TPM 2.0 Part 3 §9.3, §16.1);
// TPM_Startup(ST_CLEAR), TPM_GetRandom(8) (TPM 1.2 Part 3 §3.2, §13.6).
constexpr uint8_t kTpm2Startup[] = {0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x44, 0x00, 0x00};
constexpr uint8_t kTpm2GetRandom[] = {0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x7b, 0x00, 0x08};
constexpr uint8_t kTpm12Startup[] = {0x00, 0xc1, 0, 0, 0, 0x0c, 0, 0, 0x00, 0x99, 0x00, 0x01};
constexpr uint8_t kTpm12GetRandom[] = {0x00, 0xc1, 0, 0, 0, 0x0e, 0, 0, 0x00, 0x46, 0, 0, 0, 0x08};
// TPM2_Shutdown(SU_CLEAR) (Part 3 §9.4); TPM_SaveState (TPM 1.2 Part 3 §3.3).
constexpr uint8_t kTpm2Shutdown[] = {0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x45, 0x00, 0x00};
constexpr uint8_t kTpm12SaveState[] = {0x00, 0xc1, 0, 0, 0, 0x0a, 0, 0, 0x00, 0x98};
// Response sizes: header, size field (u16 for 2.0, u32 for 1.2), 8 bytes.
constexpr size_t kTpm2RandomResponse = 10 + 2 + 8;
constexpr size_t kTpm12RandomResponse = 10 + 4 + 8;

struct Options {
    long count = 10000;
    long warmup = 200;
    TpmVersion version = TpmVersion::v2_0;
    bool libtpms = true, swtpm = true;
    std::string swtpm_sock;
    long power_ons = 0;
};

double percentile(std::vector<double> v, size_t pct) {
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, v.size() * pct / 100)];
}

// --power-ons: the state-writing commands of every boot, timed.
bool bench_power_ons(std::string_view name, TpmBackend& tpm, const Options& o) {
    bool v2 = tpm.version() == TpmVersion::v2_0;
    std::vector<uint8_t> response(tpm.buffer_size());
    std::vector<double> startup_ms, shutdown_ms;
    auto timed = [&](std::span<const uint8_t> cmd, std::vector<double>& into) {
        auto t = Clock::now();
        size_t n = tpm.execute(0, cmd, response);
        into.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t).count());
        return n >= 10 && tpm_code(std::span(response.data(), n)) == 0;
    };
    for (long i = 0; i < o.power_ons; ++i) {
        if (!tpm.power_cycle() ||
            !timed(v2 ? std::span<const uint8_t>(kTpm2Startup) : std::span<const uint8_t>(kTpm12Startup), startup_ms) ||
            !timed(v2 ? std::span<const uint8_t>(kTpm2Shutdown) : std::span<const uint8_t>(kTpm12SaveState), shutdown_ms)) {
            std::fprintf(stderr, "tpm_backend_bench: %.*s: power-on %ld failed\n", int(name.size()), name.data(), i + 1);
            return false;
        }
    }
    std::printf("backend=%.*s power_ons=%ld startup_median_ms=%.2f startup_p90_ms=%.2f startup_max_ms=%.2f "
                "shutdown_median_ms=%.2f shutdown_p90_ms=%.2f shutdown_max_ms=%.2f\n", int(name.size()), name.data(),
                o.power_ons, percentile(startup_ms, 50), percentile(startup_ms, 90), percentile(startup_ms, 100),
                percentile(shutdown_ms, 50), percentile(shutdown_ms, 90), percentile(shutdown_ms, 100));
    std::fflush(stdout);
    return true;
}

// A fresh directory under $TMPDIR (or /tmp), removed with its contents at the end.
class TempDir {
public:
    TempDir() {
        std::string pattern = (fs::temp_directory_path() / "tpm-backend-bench-XXXXXX").string();
        if (!mkdtemp(pattern.data())) throw std::runtime_error("cannot create a temporary directory");
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        fs::remove_all(path_, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

// "swtpm socket" on a temporary directory; terminated (if still running) and reaped at the end.
class SwtpmProcess {
public:
    SwtpmProcess(const fs::path& dir, TpmVersion version) : sock_((dir / "sock").string()) {
        std::string state = "dir=" + dir.string(), ctrl = "type=unixio,path=" + sock_;
        std::string log = "file=" + (dir / "swtpm.log").string();
        std::vector<std::string> args = {"swtpm", "socket", "--tpmstate", state, "--ctrl", ctrl, "--log", log};
        if (version == TpmVersion::v2_0) args.emplace_back("--tpm2");
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        if (posix_spawnp(&pid_, "swtpm", nullptr, nullptr, argv.data(), environ) != 0)
            throw std::runtime_error("cannot start swtpm");
        for (auto deadline = Clock::now() + std::chrono::seconds(10); !minivmm::testing::accepts_connections(sock_);) {
            int status;
            if (waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                throw std::runtime_error(fmt::format("swtpm exited before creating {} (see {})", sock_, log));
            }
            if (Clock::now() > deadline) throw std::runtime_error(fmt::format("swtpm did not listen on {}", sock_));
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }
    ~SwtpmProcess() {
        if (pid_ <= 0) return;
        // After CMD_SHUTDOWN swtpm exits by itself; give it a moment, then terminate it.
        for (int i = 0; i < 200; ++i) {
            if (waitpid(pid_, nullptr, WNOHANG) == pid_) return;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        kill(pid_, SIGTERM);
        waitpid(pid_, nullptr, 0);
    }
    SwtpmProcess(const SwtpmProcess&) = delete;
    SwtpmProcess& operator=(const SwtpmProcess&) = delete;
    const std::string& sock() const { return sock_; }

private:
    std::string sock_;
    pid_t pid_ = -1;
};

bool swtpm_installed() {
    const char* path = std::getenv("PATH");
    std::string_view rest = path ? path : "/usr/bin:/bin";
    while (!rest.empty()) {
        auto colon = rest.find(':');
        fs::path dir(std::string(rest.substr(0, colon)));
        if (access((dir / "swtpm").c_str(), X_OK) == 0) return true;
        if (colon == std::string_view::npos) break;
        rest.remove_prefix(colon + 1);
    }
    return false;
}

// Power-cycles the TPM, starts it, then times `warmup` + `count` GetRandom(8) calls of which the
// last `count` are reported. Returns false (after a message) if any command failed.
bool bench(std::string_view name, TpmBackend& tpm, const Options& o, Clock::time_point setup_start) {
    bool v2 = tpm.version() == TpmVersion::v2_0;
    std::vector<uint8_t> response(tpm.buffer_size());
    if (!tpm.power_cycle()) {
        std::fprintf(stderr, "tpm_backend_bench: %.*s: power cycle failed\n", int(name.size()), name.data());
        return false;
    }
    size_t n = tpm.execute(0, v2 ? std::span<const uint8_t>(kTpm2Startup) : std::span<const uint8_t>(kTpm12Startup),
                           response);
    if (n < 10 || tpm_code(std::span(response.data(), n)) != 0) {
        std::fprintf(stderr, "tpm_backend_bench: %.*s: TPM_Startup failed (rc 0x%x)\n", int(name.size()), name.data(),
                     tpm_code(std::span(response.data(), n)));
        return false;
    }
    double setup_ms = std::chrono::duration<double, std::milli>(Clock::now() - setup_start).count();
    auto get_random = v2 ? std::span<const uint8_t>(kTpm2GetRandom) : std::span<const uint8_t>(kTpm12GetRandom);
    size_t want = v2 ? kTpm2RandomResponse : kTpm12RandomResponse;
    std::vector<double> us;
    us.reserve(static_cast<size_t>(o.count));
    for (long i = 0; i < o.warmup + o.count; ++i) {
        auto t = Clock::now();
        n = tpm.execute(0, get_random, response);
        auto elapsed = std::chrono::duration<double, std::micro>(Clock::now() - t).count();
        if (n != want || tpm_code(std::span(response.data(), n)) != 0) {
            std::fprintf(stderr, "tpm_backend_bench: %.*s: GetRandom %ld: %zu bytes, rc 0x%x\n", int(name.size()),
                         name.data(), i + 1, n, tpm_code(std::span(response.data(), n)));
            return false;
        }
        if (i >= o.warmup) us.push_back(elapsed);
    }
    double total = 0;
    for (double u : us) total += u;
    std::sort(us.begin(), us.end());
    std::printf("backend=%.*s version=%s setup_ms=%.2f count=%ld mean_us=%.2f median_us=%.2f p99_us=%.2f "
                "min_us=%.2f\n", int(name.size()), name.data(), v2 ? "2.0" : "1.2", setup_ms, o.count,
                total / static_cast<double>(us.size()),
                us[us.size() / 2], us[std::min(us.size() - 1, us.size() * 99 / 100)], us.front());
    std::fflush(stdout);
    bool ok = o.power_ons == 0 || bench_power_ons(name, tpm, o);
    tpm.shutdown();
    return ok;
}

bool run_libtpms(const Options& o) {
    try {
        TempDir dir;
        auto start = Clock::now();
        LibtpmsBackend tpm((dir.path() / "state").string(), o.version);
        return bench("libtpms", tpm, o, start);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tpm_backend_bench: libtpms: %s\n", e.what());
        return false;
    }
}

bool run_swtpm(const Options& o) {
    try {
        auto start = Clock::now();
        if (!o.swtpm_sock.empty()) {
            auto tpm = SwtpmBackend::connect(o.swtpm_sock);
            return bench("swtpm", *tpm, o, start);
        }
        if (!swtpm_installed()) {
            std::printf("backend=swtpm skipped=not-installed\n");
            return true;
        }
        TempDir dir;
        start = Clock::now();
        SwtpmProcess swtpm(dir.path(), o.version);
        auto tpm = SwtpmBackend::connect(swtpm.sock());
        return bench("swtpm", *tpm, o, start);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tpm_backend_bench: swtpm: %s\n", e.what());
        return false;
    }
}

int usage() {
    std::fprintf(stderr, "usage: tpm_backend_bench [--count N] [--warmup N] [--tpm-version 1.2|2.0] "
                         "[--backend libtpms|swtpm|both] [--swtpm-sock PATH] [--power-ons N]\n");
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (i + 1 >= argc) return usage();
        std::string_view v = argv[++i];
        auto number = [&](long& out, long min) {
            char* end = nullptr;
            out = std::strtol(v.data(), &end, 10);
            return *end == '\0' && out >= min && out <= 100000000;
        };
        if (a == "--count") {
            if (!number(o.count, 1)) return usage();
        } else if (a == "--warmup") {
            if (!number(o.warmup, 0)) return usage();
        } else if (a == "--tpm-version" && (v == "1.2" || v == "2.0")) {
            o.version = v == "2.0" ? TpmVersion::v2_0 : TpmVersion::v1_2;
        } else if (a == "--backend" && (v == "libtpms" || v == "swtpm" || v == "both")) {
            o.libtpms = v != "swtpm";
            o.swtpm = v != "libtpms";
        } else if (a == "--power-ons") {
            if (!number(o.power_ons, 0)) return usage();
        } else if (a == "--swtpm-sock") {
            o.swtpm_sock = v;
        } else {
            return usage();
        }
    }
    bool ok = true;
    if (o.libtpms) ok &= run_libtpms(o);
    if (o.swtpm) ok &= run_swtpm(o);
    return ok ? 0 : 1;
}
