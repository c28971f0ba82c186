#include "devices/boot_marker.hpp"

#include <algorithm>

#include "vmm/base/log.hpp"

namespace minivmm {

void BootMarker::read(uint64_t, std::span<uint8_t> data) noexcept {
    std::fill(data.begin(), data.end(), uint8_t{0xFF});
}

void BootMarker::write(uint64_t, std::span<const uint8_t> data) noexcept {
    if (data.size() != 1 || data[0] != kValue) {
        log::debug("boot-marker: ignored {}-byte write of {:#x}", data.size(), data[0]);
        return;
    }
    if (marked_) {
        log::debug("boot-marker: boot already marked complete in this power-on");
        return;
    }
    marked_ = true;
    sink_.guest_marked();
}

void BootMarker::save_state(StateWriter& out) const {
    out.u8(1);
    out.boolean(marked_);
}

bool BootMarker::load_state(std::span<const uint8_t> blob) noexcept {
    StateReader in(blob);
    uint8_t version = 0;
    bool marked = false;
    in.u8(version);
    in.boolean(marked);
    if (!in.finished() || version != 1) return false;
    marked_ = marked;
    return true;
}

}  // namespace minivmm
