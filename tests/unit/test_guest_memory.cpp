#include <doctest/doctest.h>

#include <stdexcept>
#include <vector>

#include "vmm/base/guest_memory.hpp"

using namespace minivmm;

TEST_CASE("guest memory grants only spans wholly inside one region") {
    std::vector<uint8_t> low(0x1000), high(0x2000);
    GuestMemory mem({{0x0, low.size(), low.data()}, {0x10000, high.size(), high.data()}});

    CHECK(mem.span(0, 0x1000).has_value());
    CHECK(mem.span(0xFFF, 1).has_value());
    CHECK(mem.span(0x1000, 0).has_value());  // empty span at the very end is fine
    CHECK_FALSE(mem.span(0xFFF, 2).has_value());       // crosses the end
    CHECK_FALSE(mem.span(0x1000, 1).has_value());      // in the hole
    CHECK_FALSE(mem.span(0x0FFF0, 0x20).has_value());  // starts in the hole, ends inside
    CHECK(mem.span(0x10000, 0x2000).has_value());
    CHECK_FALSE(mem.span(0x10000, 0x2001).has_value());
    CHECK_FALSE(mem.span(~0ull - 2, 8).has_value());  // wraps
    CHECK_FALSE(mem.span(0x10, ~0ull).has_value());   // length overflow
    CHECK_FALSE(mem.span(0x20000, 1).has_value());
}

TEST_CASE("guest memory read/write objects and refuse out of range") {
    std::vector<uint8_t> ram(64);
    GuestMemory mem({{0x1000, ram.size(), ram.data()}});
    CHECK(mem.write_obj<uint32_t>(0x1000, 0xdeadbeef));
    CHECK(ram[0] == 0xef);
    CHECK(mem.read_obj<uint32_t>(0x1000) == 0xdeadbeefu);
    CHECK_FALSE(mem.read_obj<uint64_t>(0x1000 + 60).has_value());
    CHECK_FALSE(mem.write_obj<uint64_t>(0x1000 + 57, 1));
    CHECK(ram[57] == 0);  // nothing partially written
}

TEST_CASE("guest memory rejects overlapping or empty regions") {
    std::vector<uint8_t> a(0x100), b(0x100);
    CHECK_THROWS_AS(GuestMemory({{0, 0x100, a.data()}, {0x80, 0x100, b.data()}}), std::invalid_argument);
    CHECK_THROWS_AS(GuestMemory({{0, 0, a.data()}}), std::invalid_argument);
    CHECK_THROWS_AS(GuestMemory({{~0ull - 0x10, 0x100, a.data()}}), std::invalid_argument);
}
