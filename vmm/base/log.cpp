#include "vmm/base/log.hpp"

#include <unistd.h>

#include <array>
#include <string>

namespace minivmm::log {

std::atomic<Level> g_level{Level::warn};

std::optional<Level> parse_level(std::string_view name) noexcept {
    static constexpr std::array<std::pair<std::string_view, Level>, 5> names{{
        {"error", Level::error}, {"warn", Level::warn}, {"info", Level::info},
        {"debug", Level::debug}, {"trace", Level::trace},
    }};
    for (const auto& [n, l] : names)
        if (n == name) return l;
    return std::nullopt;
}

void set_level(Level level) noexcept { g_level.store(level, std::memory_order_relaxed); }

void write_line(Level level, std::string_view message) noexcept {
    static constexpr std::array<std::string_view, 5> tags{"error", "warning", "info", "debug", "trace"};
    try {
        std::string line = "minivmm: ";
        if (level != Level::info) {
            line += tags[static_cast<size_t>(level)];
            line += ": ";
        }
        line += message;
        line += '\n';
        // One write per line so lines from several threads never interleave.
        const char* p = line.data();
        size_t left = line.size();
        while (left > 0) {
            ssize_t n = ::write(STDERR_FILENO, p, left);
            if (n <= 0) break;
            p += n;
            left -= static_cast<size_t>(n);
        }
    } catch (...) {
    }
}

}  // namespace minivmm::log
