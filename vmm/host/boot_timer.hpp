// Tells the user, on stderr, when the guest marked its boot complete (devices/boot_marker.hpp: a
// write of 123 to port 0x3F0, as with Firecracker), counted from minivmm's start:
//     minivmm: boot-time: 812.4 ms from start to the guest's boot-complete mark, 790.1 ms after this power-on
// One line per power-on at most (the marker passes on only the first mark), at any log level:
// it is what the user asked the guest to report. "Start" is this program's static initialisation,
// before main(), a fraction of a millisecond after exec; "this power-on" is when this BootTimer was
// made, with the machine (after a guest reset too).
#pragma once

#include "devices/boot_marker.hpp"

namespace minivmm {

class BootTimer final : public BootMarkSink {
public:
    BootTimer() noexcept;
    void guest_marked() noexcept override;  // on a vCPU: one write(2) to stderr

private:
    double power_on_ms_;  // ms_since_start() when made
};

// Milliseconds since minivmm started (CLOCK_MONOTONIC).
double ms_since_start() noexcept;

}  // namespace minivmm
