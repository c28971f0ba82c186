// The snapshot encoding every device's state goes through (devices/device_state.hpp): what a
// writer writes reads back, and anything short, long or out of bounds is refused for good.
#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <vector>

#include "devices/device_state.hpp"

using namespace minivmm;

TEST_CASE("device state: integers, booleans and byte strings read back in order") {
    StateWriter w;
    w.u8(0xAB);
    w.u16(0x1234);
    w.u32(0xDEADBEEF);
    w.u64(0x0123456789ABCDEFull);
    w.boolean(true);
    const std::array<uint8_t, 3> fixed{1, 2, 3};
    w.bytes(fixed);
    w.bytes(std::vector<uint8_t>{9, 8});
    CHECK(w.data().size() == 1 + 2 + 4 + 8 + 1 + 4 + 3 + 4 + 2);
    CHECK(w.data()[1] == 0x34);  // little-endian

    StateReader r(w.data());
    uint8_t a = 0;
    uint16_t b = 0;
    uint32_t c = 0;
    uint64_t d = 0;
    bool e = false;
    std::array<uint8_t, 3> f{};
    std::vector<uint8_t> g;
    CHECK(r.u8(a));
    CHECK(r.u16(b));
    CHECK(r.u32(c));
    CHECK(r.u64(d));
    CHECK(r.boolean(e));
    CHECK(r.bytes(f));
    CHECK_FALSE(r.finished());
    CHECK(r.bytes(g, 2));
    CHECK(r.finished());
    CHECK((a == 0xAB && b == 0x1234 && c == 0xDEADBEEF && d == 0x0123456789ABCDEFull && e));
    CHECK(f == fixed);
    CHECK(g == std::vector<uint8_t>{9, 8});
}

TEST_CASE("device state: a short blob, a bad boolean, a wrong or too long length fail and stay failed") {
    const std::vector<uint8_t> three{1, 2, 3};
    StateReader short_read(three);
    uint32_t v = 0;
    CHECK_FALSE(short_read.u32(v));
    uint8_t b = 0;
    CHECK_FALSE(short_read.u8(b));  // sticky, although one byte is there
    CHECK_FALSE(short_read.ok());

    const std::vector<uint8_t> two{2};
    StateReader bad_bool(two);
    bool flag = false;
    CHECK_FALSE(bad_bool.boolean(flag));
    CHECK_FALSE(bad_bool.finished());

    StateWriter w;
    w.bytes(std::vector<uint8_t>{1, 2, 3, 4});
    std::array<uint8_t, 3> exact{};
    StateReader wrong_length(w.data());
    CHECK_FALSE(wrong_length.bytes(exact));
    std::vector<uint8_t> out;
    StateReader too_long(w.data());
    CHECK_FALSE(too_long.bytes(out, 3));
    CHECK(out.empty());

    // A length that claims more than the blob holds.
    std::vector<uint8_t> lying = w.data();
    lying[0] = 0xFF;
    StateReader past_end(lying);
    CHECK_FALSE(past_end.bytes(out, 1u << 20));

    // Bytes left over: read fine, but not finished.
    const std::vector<uint8_t> extra{7, 7};
    StateReader left(extra);
    CHECK(left.u8(b));
    CHECK(left.ok());
    CHECK_FALSE(left.finished());
}

TEST_CASE("device state: a nested blob is read as a view of its bytes, and a length past the end fails") {
    StateWriter inner;
    inner.u8(1);
    inner.u16(0xBEEF);
    StateWriter outer;
    outer.bytes(inner.data());
    outer.u8(9);
    StateReader r(outer.data());
    std::span<const uint8_t> view;
    CHECK(r.bytes_view(view));
    CHECK(std::vector<uint8_t>(view.begin(), view.end()) == inner.data());
    CHECK(view.data() == outer.data().data() + 4);  // not a copy
    uint8_t b = 0;
    CHECK(r.u8(b));
    CHECK((r.finished() && b == 9));

    std::vector<uint8_t> lying = outer.data();
    lying[0] = 5;  // 5 bytes claimed, 4 there
    StateReader past_end(lying);
    CHECK_FALSE(past_end.bytes_view(view));
    CHECK_FALSE(past_end.ok());
}
