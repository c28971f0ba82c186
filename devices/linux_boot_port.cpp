#include "devices/linux_boot_port.hpp"

#include <algorithm>

#include "vmm/base/log.hpp"

namespace minivmm {

void LinuxBootPort::read(uint64_t, std::span<uint8_t> data) noexcept {
    std::fill(data.begin(), data.end(), uint8_t{0});
    data[0] = status_;
}

void LinuxBootPort::write(uint64_t, std::span<const uint8_t> data) noexcept {
    if (data[0] != kRequest) {
        log::debug("linux-boot: ignored write {:#x}", data[0]);
        return;
    }
    if (requested_) {
        log::debug("linux-boot: the kernel was already loaded in this power-on; request refused");
        status_ = kRefused;
        return;
    }
    requested_ = true;
    bool ok = false;
    try {
        ok = load_ && load_();
    } catch (...) {
        ok = false;
    }
    status_ = ok ? kLoaded : kFailed;
}

void LinuxBootPort::save_state(StateWriter& out) const {
    out.u8(1);
    out.boolean(requested_);
    out.u8(status_);
}

bool LinuxBootPort::load_state(std::span<const uint8_t> blob) noexcept {
    StateReader in(blob);
    uint8_t version = 0, status = 0;
    bool requested = false;
    in.u8(version);
    in.boolean(requested);
    in.u8(status);
    // Idle until the first request; one of its three results after it.
    const bool reachable = requested ? (status == kLoaded || status == kFailed || status == kRefused) : status == kIdle;
    if (!in.finished() || version != 1 || !reachable) return false;
    requested_ = requested;
    status_ = status;
    return true;
}

}  // namespace minivmm
