// The write-confinement check of fuzz_pci_virtio_blk: which guest bytes the device may write
// during one harness operation (the used ring and every buffer a device-writable descriptor names
// at some moment of it), as positions in a GuestRam snapshot, and the check that every changed
// byte is one of them.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "devices/virtqueue.hpp"
#include "tests/fuzz/fuzz_support.hpp"

namespace minivmm::fuzz {

class WriteConfinement {
public:
    explicit WriteConfinement(const GuestRam& ram) : ram_(ram) {}

    // A new operation: nothing allowed yet.
    void clear() {
        allowed_.clear();
        data_over_used_ = false;
    }
    // A device-writable buffer covers the used index: the device may write anything there.
    bool data_over_used() const { return data_over_used_; }

    MINIVMM_FUZZ_HARNESS size_t index_of(uint64_t gpa) const {  // position of a RAM byte in a snapshot
        size_t pos = 0;
        for (const GuestRegion& r : ram_.memory.regions()) {
            if (gpa - r.gpa < r.size) return pos + (gpa - r.gpa);
            pos += r.size;
        }
        return SIZE_MAX;
    }

    // Allows the device to write [gpa, gpa+len) (clipped to RAM), as snapshot positions.
    MINIVMM_FUZZ_HARNESS void allow(uint64_t gpa, uint64_t len) {
        size_t pos = 0;
        for (const GuestRegion& r : ram_.memory.regions()) {
            const uint64_t lo = std::max(gpa, r.gpa);
            const uint64_t end = gpa + len < gpa ? UINT64_MAX : gpa + len;
            const uint64_t hi = std::min(end, r.gpa + r.size);
            if (lo < hi) allowed_.emplace_back(pos + (lo - r.gpa), pos + (hi - r.gpa));
            pos += r.size;
        }
    }

    using Ranges = std::vector<std::pair<size_t, size_t>>;  // sorted, merged snapshot positions

    MINIVMM_FUZZ_HARNESS static Ranges merged(Ranges ranges) {
        std::sort(ranges.begin(), ranges.end());
        Ranges out;
        for (const auto& r : ranges) {
            if (!out.empty() && r.first <= out.back().second) out.back().second = std::max(out.back().second, r.second);
            else out.push_back(r);
        }
        return out;
    }
    MINIVMM_FUZZ_HARNESS static bool covers(const Ranges& ranges, size_t pos) {
        auto it = std::upper_bound(ranges.begin(), ranges.end(), std::pair<size_t, size_t>{pos, SIZE_MAX});
        return it != ranges.begin() && pos < std::prev(it)->second;
    }
    // Whether any RAM byte of [gpa, gpa+len) is in `ranges`.
    MINIVMM_FUZZ_HARNESS bool intersects(const Ranges& ranges, uint64_t gpa, uint64_t len) const {
        size_t pos = 0;
        const uint64_t end = gpa + len < gpa ? UINT64_MAX : gpa + len;
        for (const GuestRegion& r : ram_.memory.regions()) {
            const uint64_t lo = std::max(gpa, r.gpa), hi = std::min(end, r.gpa + r.size);
            if (lo < hi) {
                const size_t first = pos + (lo - r.gpa), last = pos + (hi - r.gpa);
                auto it = std::lower_bound(ranges.begin(), ranges.end(), first,
                                           [](const std::pair<size_t, size_t>& range, size_t p) { return range.second <= p; });
                if (it != ranges.end() && it->first < last) return true;
            }
            pos += r.size;
        }
        return false;
    }

    // A descriptor as the device may read it at some moment of the operation. Its bytes that the
    // device itself may write (inside `writable`) can hold anything meanwhile: one request's
    // status byte or data may rewrite a descriptor that a later request of the same notification
    // uses, and a third may rewrite it again before the operation ends, so neither the state
    // before nor the state after shows what the device followed. Each field is bounded by its
    // rewritable bytes all 0 and all 0xFF.
    struct DescriptorBounds {
        uint64_t addr_lo, addr_hi, len_max;
        bool maybe_write, maybe_indirect;
    };
    MINIVMM_FUZZ_HARNESS DescriptorBounds bounds_of(uint64_t gpa, const std::array<uint8_t, 16>& raw,
                                                    const Ranges& writable) const {
        std::array<bool, 16> free{};
        if (intersects(writable, gpa, 16)) {  // else (nearly always) every field is exact
            for (unsigned b = 0; b < 16; ++b) {
                const size_t pos = index_of(gpa + b);
                free[b] = pos != SIZE_MAX && covers(writable, pos);
            }
        }
        auto field = [&](unsigned offset, unsigned size, bool high) {
            uint64_t v = 0;
            for (unsigned b = size; b-- > 0;) v = v << 8 | (free[offset + b] ? (high ? 0xFF : 0) : raw[offset + b]);
            return v;
        };
        const uint64_t flags = field(12, 2, true);
        return {field(0, 8, false), field(0, 8, true), field(8, 4, true), (flags & kWrite) != 0,
                (flags & kIndirect) != 0};
    }
    // Allows everything the device could write through a descriptor within `bounds`.
    MINIVMM_FUZZ_HARNESS void allow_bounds(const DescriptorBounds& d) {
        const uint64_t spread = d.addr_hi - d.addr_lo;
        allow(d.addr_lo, spread > UINT64_MAX - d.len_max ? UINT64_MAX : spread + d.len_max);
    }

    // Every buffer some device-writable descriptor (direct or in an indirect table) names at any
    // moment of the operation, plus the used ring. What the device may write can change the
    // descriptors, which can widen what it may write: iterated until nothing grows (the bounds
    // only widen, so it ends; after kMaxRounds everything is allowed, which stays correct).
    MINIVMM_FUZZ_HARNESS void allow_writable(const Virtqueue& q) {
        constexpr int kMaxRounds = 8;
        allow(q.used_addr() + 2, 2 + 8ull * q.size());
        const size_t ring_end = allowed_.size();
        Ranges writable = merged(allowed_);
        std::vector<std::pair<uint64_t, uint64_t>> tables;  // [gpa, len) of the descriptors read
        for (int round = 0;; ++round) {
            allowed_.resize(ring_end);
            tables.assign(1, {q.desc_addr(), 16ull * q.size()});
            if (round == kMaxRounds) {
                allow(0, UINT64_MAX);
                break;
            }
            for (uint16_t i = 0; i < q.size(); ++i) {
                std::array<uint8_t, 16> raw;
                const uint64_t at = q.desc_addr() + 16ull * i;
                if (!ram_.peek(at, raw)) continue;
                const DescriptorBounds d = bounds_of(at, raw, writable);
                if (d.maybe_write) allow_bounds(d);
                if (!d.maybe_indirect) continue;
                if (d.addr_lo != d.addr_hi) {
                    allow(0, UINT64_MAX);  // a table that may be anywhere may name anything
                    continue;
                }
                uint64_t e = 0;
                for (; e < d.len_max / 16; ++e) {
                    std::array<uint8_t, 16> entry;
                    if (!ram_.peek(d.addr_lo + 16 * e, entry)) break;
                    const DescriptorBounds ind = bounds_of(d.addr_lo + 16 * e, entry, writable);
                    if (ind.maybe_write) allow_bounds(ind);
                }
                tables.emplace_back(d.addr_lo, 16 * e);
            }
            Ranges grown = merged(allowed_);
            // Done when the descriptors read meet no byte that became writable this round (the
            // next round would read them exactly as this one did).
            bool changed = false;
            for (const auto& [gpa, len] : tables)
                if (!changed && grown != writable && intersects(grown, gpa, len)) changed = true;
            if (!changed) break;
            writable = std::move(grown);
        }
        // A data buffer over the used index lets the device write anything there legitimately.
        const size_t idx = index_of(q.used_addr() + 2);
        for (size_t i = ring_end; i < allowed_.size() && idx != SIZE_MAX; ++i)
            if (allowed_[i].first <= idx + 1 && idx < allowed_[i].second) data_over_used_ = true;
    }

    // Every byte that differs from `before` (a snapshot) was allowed.
    MINIVMM_FUZZ_HARNESS void check_writes(const std::vector<uint8_t>& before) const {
        const Ranges allowed = merged(allowed_);
        ram_.for_each_change(before, [&](uint64_t, size_t pos) { check(covers(allowed, pos)); });
    }

private:
    static constexpr uint16_t kWrite = 2, kIndirect = 4;  // VIRTQ_DESC_F_WRITE, _INDIRECT

    const GuestRam& ram_;
    std::vector<std::pair<size_t, size_t>> allowed_;  // [begin, end) snapshot positions
    bool data_over_used_ = false;
};

}  // namespace minivmm::fuzz
