// swtpm_probe: drives SwtpmBackend against a swtpm (real or fake) the way the machine does, and
// prints what happened, one "key value" line per step, for tests/integration/test_swtpm_faults.py
// and for measuring round-trip times by hand.
//
//   swtpm_probe CTRL_SOCKET [--timeout-ms N] [--loop N] [--interval-ms N] [--no-shutdown]
//
// Steps: connect, power_cycle, established, TPM_Startup(clear), then N x GetRandom(16)
// (a line for the first call and whenever the result code changes, then a summary), shutdown.
// Exit status: 0 when every step ran (TPM failures included), 3 when connect() failed (its
// message on stderr), 2 for a bad command line.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/core.h>

#include "vmm/base/log.hpp"
#include "vmm/tpm/swtpm_backend.hpp"
#include "vmm/tpm/swtpm_protocol.hpp"

using namespace minivmm;
using Clock = std::chrono::steady_clock;

namespace {

// TPM2_Startup(SU_CLEAR), TPM2_GetRandom(16); TPM_Startup(ST_CLEAR), TPM_GetRandom(16).
constexpr uint8_t kTpm2Startup[] = {0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x44, 0x00, 0x00};
constexpr uint8_t kTpm2GetRandom[] = {0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x7b, 0x00, 0x10};
constexpr uint8_t kTpm12Startup[] = {0x00, 0xc1, 0, 0, 0, 0x0c, 0, 0, 0x00, 0x99, 0x00, 0x01};
constexpr uint8_t kTpm12GetRandom[] = {0x00, 0xc1, 0, 0, 0, 0x0e, 0, 0, 0x00, 0x46, 0, 0, 0, 0x10};

double ms_since(Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

int usage() {
    std::fprintf(stderr,
                 "usage: swtpm_probe CTRL_SOCKET [--timeout-ms N] [--loop N] [--interval-ms N] [--no-shutdown]\n");
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    std::string path;
    long timeout_ms = 10000, loops = 1, interval_ms = 0;
    bool do_shutdown = true;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        auto number = [&](long& out) {
            if (i + 1 >= argc) return false;
            char* end = nullptr;
            out = std::strtol(argv[++i], &end, 10);
            return *end == '\0' && out >= 0;
        };
        if (a == "--timeout-ms") {
            if (!number(timeout_ms)) return usage();
        } else if (a == "--loop") {
            if (!number(loops)) return usage();
        } else if (a == "--interval-ms") {
            if (!number(interval_ms)) return usage();
        } else if (a == "--no-shutdown") {
            do_shutdown = false;
        } else if (path.empty() && !a.starts_with("-")) {
            path = a;
        } else {
            return usage();
        }
    }
    if (path.empty()) return usage();

    std::unique_ptr<SwtpmBackend> tpm;
    auto start = Clock::now();
    try {
        tpm = SwtpmBackend::connect(path, std::chrono::milliseconds(timeout_ms));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "swtpm_probe: %s\n", e.what());
        std::printf("connect failed ms=%.1f\n", ms_since(start));
        return 3;
    }
    bool v2 = tpm->version() == TpmVersion::v2_0;
    std::printf("connected version=%s buffer_size=%zu caps=0x%x ms=%.1f\n", v2 ? "2.0" : "1.2", tpm->buffer_size(),
                tpm->capabilities(), ms_since(start));
    std::fflush(stdout);

    start = Clock::now();
    bool cycled = tpm->power_cycle();
    std::printf("power_cycle %s ms=%.1f\n", cycled ? "ok" : "failed", ms_since(start));
    std::printf("established %d\n", tpm->established() ? 1 : 0);

    std::vector<uint8_t> response(tpm->buffer_size());
    start = Clock::now();
    size_t n = tpm->execute(0, v2 ? std::span<const uint8_t>(kTpm2Startup) : std::span<const uint8_t>(kTpm12Startup),
                            response);
    std::printf("startup rc=0x%x len=%zu ms=%.1f\n", tpm_code(std::span(response.data(), n)), n,
                ms_since(start));
    std::fflush(stdout);

    std::span<const uint8_t> get_random = v2 ? std::span<const uint8_t>(kTpm2GetRandom) : std::span<const uint8_t>(kTpm12GetRandom);
    long ok = 0, failed = 0, first_failure = -1;
    double total_ok_ms = 0, max_fail_ms = 0, max_later_fail_ms = 0;
    uint32_t last_rc = 0xffffffff;
    auto loop_start = Clock::now();
    for (long i = 0; i < loops; ++i) {
        auto t = Clock::now();
        n = tpm->execute(0, get_random, response);
        double ms = ms_since(t);
        uint32_t rc = tpm_code(std::span(response.data(), n));
        if (rc != last_rc) {
            std::printf("getrandom i=%ld rc=0x%x len=%zu ms=%.1f\n", i, rc, n, ms);
            std::fflush(stdout);
            last_rc = rc;
        }
        if (rc == 0) {
            ++ok;
            total_ok_ms += ms;
        } else {
            if (first_failure < 0) first_failure = i;
            else if (ms > max_later_fail_ms) max_later_fail_ms = ms;
            ++failed;
            if (ms > max_fail_ms) max_fail_ms = ms;
        }
        if (interval_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
    }
    std::printf("summary ok=%ld failed=%ld first_failure=%ld avg_ok_us=%.1f max_fail_ms=%.1f "
                "max_later_fail_ms=%.1f total_ms=%.1f failed_state=%d\n",
                ok, failed, first_failure, ok ? total_ok_ms * 1000.0 / static_cast<double>(ok) : 0.0, max_fail_ms,
                max_later_fail_ms, ms_since(loop_start), tpm->failed() ? 1 : 0);
    if (do_shutdown) {
        tpm->shutdown();
        std::printf("shutdown done\n");
    }
    return 0;
}
