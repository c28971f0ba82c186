#include "vmm/base/guest_memory.hpp"

#include <algorithm>
#include <stdexcept>

namespace minivmm {

GuestMemory::GuestMemory(std::vector<GuestRegion> regions) : regions_(std::move(regions)) {
    std::sort(regions_.begin(), regions_.end(),
              [](const GuestRegion& a, const GuestRegion& b) { return a.gpa < b.gpa; });
    for (size_t i = 0; i < regions_.size(); ++i) {
        const auto& r = regions_[i];
        if (r.size == 0 || r.host == nullptr) throw std::invalid_argument("guest memory region is empty");
        if (r.gpa + r.size < r.gpa) throw std::invalid_argument("guest memory region wraps around");
        if (i > 0 && regions_[i - 1].gpa + regions_[i - 1].size > r.gpa)
            throw std::invalid_argument("guest memory regions overlap");
    }
}

std::optional<std::span<uint8_t>> GuestMemory::span(uint64_t gpa, uint64_t len) const noexcept {
    if (gpa + len < gpa) return std::nullopt;  // overflow
    // The last region starting at or below gpa is the only candidate.
    auto it = std::upper_bound(regions_.begin(), regions_.end(), gpa,
                               [](uint64_t a, const GuestRegion& r) { return a < r.gpa; });
    if (it == regions_.begin()) return std::nullopt;
    const GuestRegion& r = *(it - 1);
    uint64_t off = gpa - r.gpa;
    if (off > r.size || len > r.size - off) return std::nullopt;
    return std::span<uint8_t>(r.host + off, static_cast<size_t>(len));
}

bool GuestMemory::read(uint64_t gpa, std::span<uint8_t> out) const noexcept {
    auto s = span(gpa, out.size());
    if (!s) return false;
    std::memcpy(out.data(), s->data(), out.size());
    return true;
}

bool GuestMemory::write(uint64_t gpa, std::span<const uint8_t> in) const noexcept {
    auto s = span(gpa, in.size());
    if (!s) return false;
    std::memcpy(s->data(), in.data(), in.size());
    return true;
}

}  // namespace minivmm
