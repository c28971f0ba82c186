#include <doctest/doctest.h>

#include <stdexcept>
#include <vector>

#include "devices/bus.hpp"

using namespace minivmm;

namespace {
struct Recorder final : Device {
    std::string_view name() const noexcept override { return "recorder"; }
    void read(uint64_t offset, std::span<uint8_t> data) noexcept override {
        reads.push_back({offset, data.size()});
        for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(offset + i);
    }
    void write(uint64_t offset, std::span<const uint8_t> data) noexcept override {
        writes.push_back({offset, data.size()});
        last = load_le(data);
    }
    std::vector<std::pair<uint64_t, size_t>> reads, writes;
    uint64_t last = 0;
};
}  // namespace

TEST_CASE("bus dispatches whole accesses with device-relative offsets") {
    Bus bus("test");
    Recorder a, b;
    bus.insert(0x100, 8, a);
    bus.insert(0x108, 4, b);
    uint8_t buf[4];
    CHECK(bus.read(0x102, buf));
    CHECK(a.reads.back() == std::pair<uint64_t, size_t>{2, 4});
    CHECK(buf[0] == 2);
    uint8_t w[2] = {0x34, 0x12};
    CHECK(bus.write(0x10A, w));
    CHECK(b.writes.back() == std::pair<uint64_t, size_t>{2, 2});
    CHECK(b.last == 0x1234);
}

TEST_CASE("bus: accesses straddling devices or holes read all-ones and are dropped") {
    Bus bus("test");
    Recorder a, b;
    bus.insert(0x100, 8, a);
    bus.insert(0x108, 8, b);
    uint8_t buf[4] = {0, 0, 0, 0};
    CHECK_FALSE(bus.read(0x106, buf));  // spans a and b
    CHECK(buf[0] == 0xff);
    CHECK(buf[3] == 0xff);
    CHECK(a.reads.empty());
    CHECK(b.reads.empty());
    CHECK_FALSE(bus.read(0x0FF, std::span<uint8_t>(buf, 2)));  // starts in the hole
    CHECK_FALSE(bus.write(0x200, std::span<const uint8_t>(buf, 1)));
    CHECK(a.writes.empty());
    CHECK_FALSE(bus.read(~0ull, std::span<uint8_t>(buf, 2)));  // wraps
}

TEST_CASE("bus insertion rejects zero size, wrap-around and overlap") {
    Bus bus("test");
    Recorder a;
    CHECK_THROWS_AS(bus.insert(0x10, 0, a), std::invalid_argument);
    CHECK_THROWS_AS(bus.insert(~0ull - 3, 8, a), std::invalid_argument);
    bus.insert(0x100, 0x10, a);
    CHECK_FALSE(bus.try_insert(0x10F, 1, a));
    CHECK_FALSE(bus.try_insert(0xF8, 9, a));
    CHECK_FALSE(bus.try_insert(0x80, 0x100, a));  // covers it
    CHECK(bus.try_insert(0x110, 1, a));
    CHECK(bus.try_insert(0xFF, 1, a));
    CHECK(bus.remove(0x110, a));
    CHECK_FALSE(bus.remove(0x110, a));
    Recorder other;
    CHECK_FALSE(bus.remove(0x100, other));  // only the owner can be removed
    CHECK(bus.find(0x105, 1).device == &a);
}
