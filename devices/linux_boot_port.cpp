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

}  // namespace minivmm
