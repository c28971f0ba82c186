// Checked access to guest-physical memory. Devices never dereference a guest address
// directly: they ask for a span, which is granted only if [gpa, gpa+len) lies wholly inside
// one RAM region (start, overflow and end checked). Structures are copied out before they are
// validated, because another vCPU may change guest memory at any time.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

namespace minivmm {

struct GuestRegion {
    uint64_t gpa = 0;       // guest-physical start
    uint64_t size = 0;      // bytes
    uint8_t* host = nullptr;  // host mapping of the region (not owned)
};

class GuestMemory {
public:
    GuestMemory() = default;
    // Regions must not overlap and must not wrap; throws std::invalid_argument otherwise (set-up).
    explicit GuestMemory(std::vector<GuestRegion> regions);

    // The host bytes behind [gpa, gpa+len), or nullopt when any byte is outside guest RAM or the
    // range spans two regions. len == 0 is valid when gpa is inside or at the end of a region.
    std::optional<std::span<uint8_t>> span(uint64_t gpa, uint64_t len) const noexcept;

    bool read(uint64_t gpa, std::span<uint8_t> out) const noexcept;
    bool write(uint64_t gpa, std::span<const uint8_t> in) const noexcept;

    template <typename T>
    std::optional<T> read_obj(uint64_t gpa) const noexcept {
        static_assert(std::is_trivially_copyable_v<T>);
        T value;
        if (!read(gpa, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&value), sizeof(T)))) return std::nullopt;
        return value;
    }
    template <typename T>
    bool write_obj(uint64_t gpa, const T& value) const noexcept {
        static_assert(std::is_trivially_copyable_v<T>);
        return write(gpa, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&value), sizeof(T)));
    }

    const std::vector<GuestRegion>& regions() const noexcept { return regions_; }

private:
    std::vector<GuestRegion> regions_;  // sorted by gpa
};

}  // namespace minivmm
