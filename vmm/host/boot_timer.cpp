#include "vmm/host/boot_timer.hpp"

#include <time.h>
#include <unistd.h>

#include <cstdio>

namespace minivmm {

namespace {

double now_ms() noexcept {
    timespec t{};
    clock_gettime(CLOCK_MONOTONIC, &t);
    return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
}

const double g_start_ms = now_ms();  // static initialisation: before main()

}  // namespace

double ms_since_start() noexcept { return now_ms() - g_start_ms; }

BootTimer::BootTimer() noexcept : power_on_ms_(ms_since_start()) {}

void BootTimer::guest_marked() noexcept {
    char line[160];
    const double now = ms_since_start();
    const int n = std::snprintf(line, sizeof line,
                                "minivmm: boot-time: %.1f ms from start to the guest's boot-complete mark, %.1f ms after "
                                "this power-on\n", now, now - power_on_ms_);
    if (n > 0) {
        const ssize_t ignored = ::write(STDERR_FILENO, line, static_cast<size_t>(n) < sizeof line ? static_cast<size_t>(n) : sizeof line - 1);
        (void)ignored;
    }
}

}  // namespace minivmm
