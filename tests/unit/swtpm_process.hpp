// A real swtpm for tests: a temporary state directory, `swtpm socket --tpmstate dir=D --ctrl
// type=unixio,path=D/sock [--tpm2]` started in it and killed on destruction, and a lookup of the
// swtpm binary so tests can skip (with one clear line) when it is not installed. Shared by
// test_swtpm_backend.cpp and test_tis_swtpm_replay.cpp. Header-only; uses doctest's REQUIRE for
// set-up failures.
#pragma once

#include <doctest/doctest.h>

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include <vector>

#include "skipped_cases.hpp"
#include "temp_dir.hpp"
#include "socket_probe.hpp"

namespace minivmm::testing {

// Full path of the first executable `swtpm` in $PATH, or "" if there is none.
inline std::string find_swtpm() {
    const char* env = std::getenv("PATH");
    std::string paths = env ? env : "/usr/bin:/bin";
    size_t start = 0;
    while (start <= paths.size()) {
        size_t end = paths.find(':', start);
        if (end == std::string::npos) end = paths.size();
        std::filesystem::path candidate = std::filesystem::path(paths.substr(start, end - start)) / "swtpm";
        if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
        start = end + 1;
    }
    return {};
}

// True if swtpm is installed. Otherwise the calling case counts as skipped (skipped_cases.hpp), and
// the first call prints "<who>: swtpm not found in PATH; skipping real-swtpm tests" on stderr.
inline bool swtpm_available(const char* who) {
    static const bool found = !find_swtpm().empty();
    static bool reported = false;
    if (!found) skip_case();
    if (!found && !reported) {
        std::fprintf(stderr, "%s: swtpm not found in PATH; skipping real-swtpm tests\n", who);
        reported = true;
    }
    return found;
}

// `swtpm socket --tpmstate dir=D --ctrl type=unixio,path=D/sock [--tpm2]` with D a fresh
// TempDir (so the TPM state is newly manufactured), killed with SIGKILL on destruction.
class SwtpmProcess {
public:
    explicit SwtpmProcess(bool tpm2) : sock((dir.path / "sock").string()) {
        using namespace std::chrono_literals;
        std::string state = "dir=" + dir.path.string();
        std::string ctrl = "type=unixio,path=" + sock;
        std::vector<const char*> argv = {"swtpm", "socket", "--tpmstate", state.c_str(), "--ctrl", ctrl.c_str()};
        if (tpm2) argv.push_back("--tpm2");
        argv.push_back(nullptr);
        pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::execvp("swtpm", const_cast<char* const*>(argv.data()));
            ::_exit(127);
        }
        bool listening = false;
        for (int i = 0; i < 500 && !listening; ++i) {
            if (::waitpid(pid, nullptr, WNOHANG) == pid) {
                pid = -1;  // exited: nothing to kill
                break;
            }
            listening = accepts_connections(sock);
            if (!listening) std::this_thread::sleep_for(10ms);
        }
        REQUIRE_MESSAGE(listening, "swtpm did not listen on " << sock);
    }
    ~SwtpmProcess() {
        if (pid > 0) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
    }
    SwtpmProcess(const SwtpmProcess&) = delete;
    SwtpmProcess& operator=(const SwtpmProcess&) = delete;

    void signal(int sig) { REQUIRE(::kill(pid, sig) == 0); }
    void kill_and_reap() {
        signal(SIGKILL);
        ::waitpid(pid, nullptr, 0);
        pid = -1;
    }
    // True if the process exited within `within`.
    bool exits(std::chrono::milliseconds within) {
        using namespace std::chrono_literals;
        auto end = std::chrono::steady_clock::now() + within;
        while (std::chrono::steady_clock::now() < end) {
            if (::waitpid(pid, nullptr, WNOHANG) == pid) {
                pid = -1;
                return true;
            }
            std::this_thread::sleep_for(5ms);
        }
        return false;
    }

    TempDir dir;
    std::string sock;
    pid_t pid = -1;
};

}  // namespace minivmm::testing
