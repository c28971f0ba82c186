// Levelled logging to stderr (fmt). Guest-triggerable events log at debug level only.
#pragma once

#include <atomic>
#include <optional>
#include <string_view>
#include <utility>

#include <fmt/core.h>

namespace minivmm::log {

enum class Level { error = 0, warn = 1, info = 2, debug = 3, trace = 4 };

// The current threshold; messages above it are dropped without formatting.
extern std::atomic<Level> g_level;

std::optional<Level> parse_level(std::string_view name) noexcept;
void set_level(Level level) noexcept;
inline bool enabled(Level level) noexcept { return level <= g_level.load(std::memory_order_relaxed); }

// Writes one line "minivmm: <level>: <message>" to stderr in a single write(2).
void write_line(Level level, std::string_view message) noexcept;

template <typename... Args>
void emit(Level level, fmt::format_string<Args...> format, Args&&... args) noexcept {
    if (!enabled(level)) return;
    try {
        write_line(level, fmt::format(format, std::forward<Args>(args)...));
    } catch (...) {
        write_line(level, "(log message could not be formatted)");
    }
}

template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... a) noexcept { emit(Level::error, f, std::forward<Args>(a)...); }
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... a) noexcept { emit(Level::warn, f, std::forward<Args>(a)...); }
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... a) noexcept { emit(Level::info, f, std::forward<Args>(a)...); }
template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... a) noexcept { emit(Level::debug, f, std::forward<Args>(a)...); }
template <typename... Args>
void trace(fmt::format_string<Args...> f, Args&&... a) noexcept { emit(Level::trace, f, std::forward<Args>(a)...); }

}  // namespace minivmm::log
