// Helpers shared by the fw_cfg unit tests: guest RAM over a vector, port-level access to a
// FwCfg the way SeaBIOS's non-DMA path does it, and DMA descriptors.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "devices/fw_cfg.hpp"
#include "vmm/base/bytes.hpp"

namespace minivmm::test {

// Guest RAM backed by a vector at [base, base+size).
struct Ram {
    std::vector<uint8_t> bytes;
    GuestMemory memory;
    explicit Ram(size_t size, uint64_t base = 0)
        : bytes(size, 0xAA), memory({GuestRegion{base, size, bytes.data()}}) {}
};

inline void select(FwCfg& fw, uint16_t key) {
    uint8_t b[2] = {static_cast<uint8_t>(key), static_cast<uint8_t>(key >> 8)};
    fw.write(fw_cfg::kSelectorOffset, b);
}

inline std::vector<uint8_t> port_read(FwCfg& fw, size_t n) {
    std::vector<uint8_t> out(n);
    for (auto& b : out) fw.read(fw_cfg::kDataOffset, std::span(&b, 1));
    return out;
}

inline void put_be(std::vector<uint8_t>& mem, size_t at, uint64_t v, size_t n) { store_be(std::span(mem).subspan(at, n), v); }

inline uint64_t get_be(const uint8_t* p, size_t n) {
    return load_be({p, n});
}

inline void put_descriptor(std::vector<uint8_t>& mem, size_t at, uint32_t control, uint32_t length, uint64_t address) {
    put_be(mem, at, control, 4);
    put_be(mem, at + 4, length, 4);
    put_be(mem, at + 8, address, 8);
}

// The two-write sequence SeaBIOS uses (high half, then low half which starts the transfer).
inline void kick(FwCfg& fw, uint64_t descriptor) {
    uint8_t hi[4], lo[4];
    for (int i = 0; i < 4; ++i) {
        hi[i] = static_cast<uint8_t>(descriptor >> (56 - 8 * i));
        lo[i] = static_cast<uint8_t>(descriptor >> (24 - 8 * i));
    }
    fw.write(fw_cfg::kDmaOffset, hi);
    fw.write(fw_cfg::kDmaLowOffset, lo);
}

inline uint32_t control_at(const Ram& ram, size_t at) { return static_cast<uint32_t>(get_be(&ram.bytes[at], 4)); }

inline std::vector<uint8_t> bytes_of(std::string_view s) { return {s.begin(), s.end()}; }

struct DirEntry {
    uint32_t size;
    uint16_t key;
    std::string name;
};

inline std::vector<DirEntry> read_directory(FwCfg& fw) {
    select(fw, fw_cfg::kFileDir);
    auto count_bytes = port_read(fw, 4);
    uint32_t count = static_cast<uint32_t>(get_be(count_bytes.data(), 4));
    std::vector<DirEntry> dir;
    for (uint32_t i = 0; i < count; ++i) {
        auto e = port_read(fw, 64);
        CHECK(e[6] == 0);
        CHECK(e[7] == 0);
        CHECK(e[63] == 0);
        dir.push_back({static_cast<uint32_t>(get_be(e.data(), 4)), static_cast<uint16_t>(get_be(e.data() + 4, 2)),
                       std::string(reinterpret_cast<const char*>(e.data() + 8))});
    }
    return dir;
}

inline std::vector<uint8_t> read_file(FwCfg& fw, const std::string& name) {
    for (const auto& e : read_directory(fw)) {
        if (e.name != name) continue;
        select(fw, e.key);
        return port_read(fw, e.size);
    }
    FAIL("file not found: " << name);
    return {};
}


}  // namespace minivmm::test
