// vmm/base/bytes.hpp against literal byte strings: the one place that reads and writes multi-byte
// values, so every device, table and protocol encoder depends on it.
#include <doctest/doctest.h>

#include <array>
#include <vector>

#include "vmm/base/bytes.hpp"

using namespace minivmm;

TEST_CASE("little- and big-endian loads of 1 to 8 bytes") {
    const std::array<uint8_t, 8> b = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x88};
    CHECK(load_le(std::span(b).first(1)) == 0x01);
    CHECK(load_le(std::span(b).first(2)) == 0x0201);
    CHECK(load_le(std::span(b).first(4)) == 0x04030201);
    CHECK(load_le(b) == 0x8807060504030201ull);
    CHECK(load_be(std::span(b).first(2)) == 0x0102);
    CHECK(load_be(std::span(b).first(4)) == 0x01020304);
    CHECK(load_be(b) == 0x0102030405060788ull);
    CHECK(load_be16(b, 6) == 0x0788);
    CHECK(load_be32(b, 4) == 0x05060788);
    CHECK(load_le16(b, 6) == 0x8807);
    CHECK(load_le32(b, 1) == 0x05040302);
    CHECK(load_le(std::span<const uint8_t>{}) == 0);
    CHECK(load_be(std::span<const uint8_t>{}) == 0);
}

TEST_CASE("stores write exactly the span, in order, and truncate the value") {
    std::array<uint8_t, 6> b{};
    store_le(std::span(b).subspan(1, 4), 0xaabbccddeeull);  // the top byte does not fit
    CHECK(b == std::array<uint8_t, 6>{0, 0xee, 0xdd, 0xcc, 0xbb, 0});
    b = {};
    store_be(std::span(b).subspan(1, 4), 0xaabbccddeeull);
    CHECK(b == std::array<uint8_t, 6>{0, 0xbb, 0xcc, 0xdd, 0xee, 0});
    b = {};
    store_be(std::span(b).first(2), 0x1234);
    CHECK(load_be16(b) == 0x1234);
    store_le(std::span(b).subspan(2, 4), 0x89abcdef);
    CHECK(load_le32(b, 2) == 0x89abcdef);
}

TEST_CASE("spans longer than 8 bytes: little-endian uses the first 8, big-endian the last 8") {
    std::array<uint8_t, 10> b{};
    store_le(b, ~0ull);
    CHECK(b == std::array<uint8_t, 10>{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0});
    b = {};
    store_be(b, ~0ull);
    CHECK(b == std::array<uint8_t, 10>{0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
    CHECK(load_be(b) == ~0ull);
}

TEST_CASE("appends grow the buffer by exactly the size, zero-padded beyond 8 bytes") {
    std::vector<uint8_t> v = {0x55};
    append_le(v, 0x11223344, 4);
    append_be(v, 0x11223344, 4);
    append_le(v, 0x0102, 3);
    CHECK(v == std::vector<uint8_t>{0x55, 0x44, 0x33, 0x22, 0x11, 0x11, 0x22, 0x33, 0x44, 0x02, 0x01, 0x00});
    std::vector<uint8_t> wide;
    append_le(wide, ~0ull, 10);
    append_be(wide, ~0ull, 10);
    CHECK(wide.size() == 20);
    CHECK(wide[7] == 0xff);
    CHECK(wide[8] == 0);
    CHECK(wide[9] == 0);
    CHECK(wide[10] == 0);
    CHECK(wide[11] == 0);
    CHECK(wide[12] == 0xff);
}
