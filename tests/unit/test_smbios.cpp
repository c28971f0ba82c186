#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

#include "devices/device.hpp"
#include "firmware/smbios.hpp"

using namespace minivmm;

namespace {
uint8_t sum(const uint8_t* p, size_t n) {
    uint8_t s = 0;
    for (size_t i = 0; i < n; ++i) s = static_cast<uint8_t>(s + p[i]);
    return s;
}

struct Parsed {
    uint8_t type;
    std::vector<std::string> strings;
};

// Walks the structure table the way a DMI decoder does: formatted length, then strings up to
// a double NUL. Fails the test on any overrun.
std::vector<Parsed> parse(const std::vector<uint8_t>& t) {
    std::vector<Parsed> out;
    size_t pos = 0;
    while (pos < t.size()) {
        REQUIRE(pos + 4 <= t.size());
        Parsed p{t[pos], {}};
        const size_t len = t[pos + 1];
        REQUIRE(len >= 4);
        size_t s = pos + len;
        REQUIRE(s + 2 <= t.size());
        if (t[s] == 0 && t[s + 1] == 0) {
            pos = s + 2;
        } else {
            while (true) {
                const size_t start = s;
                while (s < t.size() && t[s] != 0) ++s;
                REQUIRE(s + 1 < t.size());
                p.strings.emplace_back(reinterpret_cast<const char*>(t.data() + start), s - start);
                ++s;
                if (t[s] == 0) break;
            }
            pos = s + 1;
        }
        out.push_back(p);
    }
    CHECK(pos == t.size());
    return out;
}
}  // namespace

TEST_CASE("SMBIOS 2.1 entry point and structure table SeaBIOS accepts") {
    const SmbiosBlobs b = build_smbios("9.9.9");
    REQUIRE(b.anchor.size() == 31);  // SeaBIOS insists on sizeof(struct smbios_21_entry_point)
    CHECK(std::memcmp(b.anchor.data(), "_SM_", 4) == 0);
    CHECK(std::memcmp(b.anchor.data() + 16, "_DMI_", 5) == 0);
    CHECK(sum(b.anchor.data(), 31) == 0);
    CHECK(sum(b.anchor.data() + 16, 15) == 0);
    CHECK(load_le({b.anchor.data() + 22, 2}) == b.tables.size());  // SeaBIOS checks this too

    const auto structures = parse(b.tables);
    CHECK(load_le({b.anchor.data() + 28, 2}) == structures.size());
    REQUIRE(structures.size() == 3);
    CHECK(structures[0].type == 1);
    CHECK(structures[0].strings == std::vector<std::string>{"minivmm", "minivmm", "9.9.9"});
    CHECK(b.tables[1] == 27);  // type 1 formatted length, SMBIOS 2.4+
    CHECK(structures[1].type == 32);
    CHECK(structures.back().type == 127);
    CHECK(load_le({b.anchor.data() + 8, 2}) >= 27 + 2);
}

TEST_CASE("-bios none: a type 0 first, and the entry point placed as an OS finds it") {
    const SmbiosBlobs b = build_smbios("9.9.9", true);
    const auto structures = parse(b.tables);
    REQUIRE(structures.size() == 4);
    CHECK(structures[0].type == 0);
    CHECK(structures[0].strings == std::vector<std::string>{"minivmm", "9.9.9"});
    CHECK(b.tables[1] == 24);      // type 0 formatted length, SMBIOS 2.4+
    CHECK(b.tables[4] == 1);       // vendor: string 1
    CHECK(b.tables[5] == 2);       // version: string 2
    CHECK(b.tables[8] == 0);       // no release date
    CHECK(b.tables[0x13] == 0x10);  // extension byte 2: a virtual machine
    CHECK(structures[1].type == 1);
    CHECK(load_le({b.anchor.data() + 28, 2}) == 4);

    // Placed: the table address at 0x18, both checksums right again (Linux dmi_scan.c checks both).
    const std::vector<uint8_t> placed = smbios_anchor_at(b.anchor, 0x7FF1'2340);
    REQUIRE(placed.size() == 31);
    CHECK(load_le({placed.data() + 24, 4}) == 0x7FF1'2340);
    CHECK(sum(placed.data(), 31) == 0);
    CHECK(sum(placed.data() + 16, 15) == 0);
    CHECK(std::memcmp(placed.data(), b.anchor.data(), 4) == 0);
    CHECK(load_le({placed.data() + 22, 2}) == b.tables.size());
    // Placing twice gives the same bytes (the checksums are recomputed, not adjusted).
    CHECK(smbios_anchor_at(placed, 0x7FF1'2340) == placed);
    // Not an entry point: returned unchanged.
    CHECK(smbios_anchor_at({1, 2, 3}, 5) == std::vector<uint8_t>{1, 2, 3});
}
