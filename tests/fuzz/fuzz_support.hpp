// Shared pieces of the libFuzzer targets in tests/fuzz: an input decoder that never runs dry
// (zeros after the end), a trap for broken invariants, recording interrupt sinks that check what
// devices do with them, and guest RAM in exactly-sized heap blocks so AddressSanitizer reports
// any byte a device touches outside a region.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "devices/device.hpp"
#include "vmm/base/guest_memory.hpp"

// Harness bookkeeping that loops over guest RAM is left out of coverage tracing: it is not the
// code under test and tracing its comparisons would slow every execution down several times.
#define MINIVMM_FUZZ_HARNESS __attribute__((no_sanitize("coverage")))

namespace minivmm::fuzz {

// A broken invariant: says where (the trap's stack trace is poor in inlined code) and stops.
[[noreturn]] inline void violated(const char* file, unsigned line) {
    std::fprintf(stderr, "fuzz: invariant violated at %s:%u\n", file, line);
    __builtin_trap();
}
inline void check(bool ok, const char* file = __builtin_FILE(), unsigned line = __builtin_LINE()) {
    if (!ok) violated(file, line);
}

class Input {
public:
    Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
    bool empty() const { return pos_ >= size_; }
    uint8_t u8() { return pos_ < size_ ? data_[pos_++] : 0; }
    // Little-endian; the halves are read in separate statements (operands of | are unsequenced).
    uint16_t u16() {
        const uint16_t lo = u8();
        return static_cast<uint16_t>(lo | u8() << 8);
    }
    uint32_t u32() {
        const uint32_t lo = u16();
        return lo | uint32_t{u16()} << 16;
    }
    uint64_t u64() {
        const uint64_t lo = u32();
        return lo | uint64_t{u32()} << 32;
    }
    // Input bytes first, then a fill pattern.
    void fill(std::span<uint8_t> out) {
        for (size_t i = 0; i < out.size(); ++i) out[i] = pos_ < size_ ? data_[pos_++] : static_cast<uint8_t>(i);
    }
    std::vector<uint8_t> bytes(size_t n) {
        std::vector<uint8_t> out(n);
        fill(out);
        return out;
    }

private:
    const uint8_t* data_;
    size_t size_;
    size_t pos_ = 0;
};

// Access sizes a vCPU can produce on the buses (1..8), biased to the natural ones.
inline size_t pick_access_size(uint8_t selector) {
    static constexpr size_t kSizes[8] = {1, 2, 4, 8, 1, 3, 5, 7};
    return kSizes[selector & 7];
}

// An interrupt line that only accepts edges: a device must not re-assert a level it holds.
class EdgeCheckingIrq final : public IrqLine {
public:
    void set(bool l) noexcept override {
        check(l != level);
        level = l;
        if (l) ++raises;
    }
    bool level = false;
    unsigned raises = 0;
};

class CountingMsi final : public MsiSink {
public:
    void signal(uint64_t address, uint32_t data) noexcept override {
        ++messages;
        last_address = address;
        last_data = data;
    }
    unsigned messages = 0;
    uint64_t last_address = 0;
    uint32_t last_data = 0;
};

// Guest RAM: each region its own heap block of exactly its size (ASan redzones on both sides).
class GuestRam {
public:
    struct Layout {
        uint64_t gpa;
        uint64_t size;
    };
    explicit GuestRam(std::span<const Layout> layout) {
        std::vector<GuestRegion> regions;
        for (const Layout& l : layout) {
            blocks_.push_back(std::make_unique<uint8_t[]>(l.size));
            regions.push_back(GuestRegion{l.gpa, l.size, blocks_.back().get()});
            total_ += l.size;
        }
        memory = GuestMemory(std::move(regions));
    }
    // Every region's bytes, concatenated in address order (for before/after comparisons).
    void snapshot(std::vector<uint8_t>& out) const {
        out.resize(total_);
        size_t pos = 0;
        for (const GuestRegion& r : memory.regions()) {
            std::memcpy(out.data() + pos, r.host, r.size);
            pos += r.size;
        }
    }
    // Calls fn(gpa, position in the snapshot) for every byte that differs from an earlier
    // snapshot; unchanged 64-byte blocks are skipped with memcmp.
    template <typename Fn>
    MINIVMM_FUZZ_HARNESS void for_each_change(const std::vector<uint8_t>& before, Fn&& fn) const {
        size_t pos = 0;
        for (const GuestRegion& r : memory.regions()) {
            for (uint64_t block = 0; block < r.size; block += 64) {
                const uint64_t n = std::min<uint64_t>(64, r.size - block);
                if (std::memcmp(before.data() + pos + block, r.host + block, n) == 0) continue;
                for (uint64_t i = block; i < block + n; ++i)
                    if (before[pos + i] != r.host[i]) fn(r.gpa + i, pos + i);
            }
            pos += r.size;
        }
    }
    // Known contents to start from; the fuzzer writes what it needs.
    void fill_pattern(uint8_t seed) {
        for (const GuestRegion& r : memory.regions()) std::memset(r.host, seed, r.size);
    }
    uint64_t total_size() const { return total_; }

    // Direct access for the harness (not through GuestMemory, whose coverage belongs to the
    // device under test): the host byte behind gpa, or null in a hole.
    MINIVMM_FUZZ_HARNESS uint8_t* byte(uint64_t gpa) const {
        for (const GuestRegion& r : memory.regions())
            if (gpa - r.gpa < r.size) return r.host + (gpa - r.gpa);
        return nullptr;
    }
    // True when every byte of [gpa, gpa+len) is RAM (adjacent regions included).
    MINIVMM_FUZZ_HARNESS bool covers(uint64_t gpa, uint64_t len) const {
        if (gpa + len < gpa) return false;
        while (len > 0) {
            const GuestRegion* hit = nullptr;
            for (const GuestRegion& r : memory.regions())
                if (gpa - r.gpa < r.size) hit = &r;
            if (!hit) return false;
            const uint64_t n = std::min(len, hit->size - (gpa - hit->gpa));
            gpa += n;
            len -= n;
        }
        return true;
    }
    // Copies [gpa, gpa+out.size()) out of RAM; false if any byte is in a hole.
    MINIVMM_FUZZ_HARNESS bool peek(uint64_t gpa, std::span<uint8_t> out) const {
        for (size_t i = 0; i < out.size(); ++i) {
            const uint8_t* p = byte(gpa + i);
            if (!p) return false;
            out[i] = *p;
        }
        return true;
    }
    // Writes the bytes of `in` that land in RAM (a structure may straddle a region end).
    MINIVMM_FUZZ_HARNESS void poke(uint64_t gpa, std::span<const uint8_t> in) const {
        for (size_t i = 0; i < in.size(); ++i)
            if (uint8_t* p = byte(gpa + i)) *p = in[i];
    }

    GuestMemory memory;

private:
    std::vector<std::unique_ptr<uint8_t[]>> blocks_;
    uint64_t total_ = 0;
};

// A bus access through a guard buffer: the device (or the bus) must write exactly n bytes.
template <typename Target>
void guarded_read(Target& target, uint64_t address, size_t n, uint8_t* out) {
    uint8_t buf[8 + 16];
    std::memset(buf, 0xA5, sizeof buf);
    target.read(address, std::span<uint8_t>(buf + 8, n));
    for (size_t i = 0; i < 8; ++i) check(buf[i] == 0xA5 && buf[8 + n + i] == 0xA5);
    std::memcpy(out, buf + 8, n);
}

// The libFuzzer entry of the operation-stream targets: the first byte configures a Harness, then
// each step() consumes one operation, at most 4096 per input.
template <typename Harness>
int run_operations(const uint8_t* data, size_t size) {
    Input in(data, size);
    Harness h(in.u8());
    for (unsigned ops = 0; !in.empty() && ops < 4096; ++ops) h.step(in);
    return 0;
}

}  // namespace minivmm::fuzz
