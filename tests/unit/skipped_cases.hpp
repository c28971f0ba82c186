// Test cases that cannot run on this host (a tool such as swtpm is missing) count themselves here
// instead of passing with no assertions; the test binary (doctest_main.cpp) then exits 77, which
// meson reports as SKIP, naming how many cases could not run.
#pragma once

#include <atomic>

namespace minivmm::testing {

inline std::atomic<unsigned> skipped_cases{0};

inline void skip_case() noexcept { ++skipped_cases; }

}  // namespace minivmm::testing
