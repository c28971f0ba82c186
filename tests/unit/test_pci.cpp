#include <doctest/doctest.h>

#include <array>
#include <stdexcept>
#include <vector>

#include "devices/pci_function.hpp"
#include "devices/cf9_decoder.hpp"
#include "devices/pci_host.hpp"
#include "devices/bus.hpp"

using namespace minivmm;

namespace {

// A BAR target that answers reads with (offset & 0xff) and records writes.
struct RecordingDevice final : Device {
    std::string_view name() const noexcept override { return "recorder"; }
    void read(uint64_t offset, std::span<uint8_t> data) noexcept override {
        for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(offset + i);
        last_read = offset;
    }
    void write(uint64_t offset, std::span<const uint8_t> data) noexcept override {
        writes.push_back({offset, load_le(data)});
    }
    struct W {
        uint64_t offset;
        uint64_t value;
    };
    std::vector<W> writes;
    uint64_t last_read = ~0ull;
};

constexpr PciIdentity kTestId{0x1234, 0x5678, 0x03, 0x028000, 0xAAAA, 0xBBBB, 1};

struct TestFunction final : PciFunction {
    RecordingDevice mem, io, mem64, pref;
    uint8_t cap1 = 0, cap2 = 0;
    TestFunction() : PciFunction("test-fn", kTestId) {
        add_bar(0, PciBarType::mem32, 0x1000, mem);
        add_bar(1, PciBarType::io, 0x20, io);
        add_bar(2, PciBarType::mem64, 0x4000, mem64);  // uses BAR2 and BAR3
        add_bar(4, PciBarType::mem32, 0x100, pref, true);
        cap1 = add_capability(0x09, 6);
        init8(cap1 + 2, 0x42);
        set_writable(cap1 + 3, 1, 0x0f);
        cap2 = add_capability(0x05, 8);
    }
    void add_bar_for_test(int index, PciBarType type, uint64_t size) { add_bar(index, type, size, mem); }
};

struct Fixture {
    Bus pio{"pio"};
    Bus mmio{"mmio"};
    RecordingDevice cf9;
    PciHost host{pio, mmio};
    Cf9Decoder ports{host, cf9};  // as the machine wires 0xCF8-0xCFF
    TestFunction fn;
    Fixture() {
        pio.insert(PciHost::kPortBase, PciHost::kPortSize, ports);
        host.add(3, fn);
    }
    static uint32_t address(unsigned bus, unsigned dev, unsigned func, unsigned reg) {
        return 0x8000'0000u | bus << 16 | dev << 11 | func << 8 | (reg & 0xfc);
    }
    void select(unsigned dev, unsigned reg, unsigned bus = 0, unsigned func = 0) {
        std::array<uint8_t, 4> a{};
        store_le(a, address(bus, dev, func, reg));
        pio.write(0xCF8, a);
    }
    uint32_t cfg_read(unsigned dev, unsigned reg, size_t size, unsigned func = 0, unsigned bus = 0) {
        select(dev, reg, bus, func);
        std::array<uint8_t, 4> d{};
        pio.read(0xCFC + (reg & 3), std::span<uint8_t>(d.data(), size));
        return static_cast<uint32_t>(load_le(std::span<const uint8_t>(d.data(), size)));
    }
    void cfg_write(unsigned dev, unsigned reg, size_t size, uint32_t value) {
        select(dev, reg);
        std::array<uint8_t, 4> d{};
        store_le(std::span<uint8_t>(d.data(), size), value);
        pio.write(0xCFC + (reg & 3), std::span<const uint8_t>(d.data(), size));
    }
    uint32_t mmio_read32(uint64_t addr) {
        std::array<uint8_t, 4> d{};
        mmio.read(addr, d);
        return static_cast<uint32_t>(load_le(d));
    }
};

}  // namespace

TEST_CASE("pci host bridge header") {
    Fixture f;
    CHECK(f.cfg_read(0, 0x00, 2) == 0x1B36);
    CHECK(f.cfg_read(0, 0x02, 2) == 0x0008);
    CHECK((f.cfg_read(0, 0x08, 4) >> 8) == 0x060000);
    CHECK(f.cfg_read(0, 0x0E, 1) == 0x00);  // type 0, single function
    CHECK(f.cfg_read(0, 0x2C, 2) == 0x1AF4);
    CHECK(f.cfg_read(0, 0x2E, 2) == 0x1100);
    CHECK(f.cfg_read(0, 0x10, 4) == 0);  // no BARs
    // Not an i440FX/Q35 id, so SeaBIOS will not try PAM/MMCONFIG set-up.
    CHECK(f.cfg_read(0, 0x00, 4) != 0x12378086u);
}

TEST_CASE("pci config address register, behind the 0xCF9 decoder") {
    Fixture f;
    std::array<uint8_t, 4> d{};
    store_le(d, 0x8000'0000);
    f.pio.write(0xCF8, d);
    d.fill(0);
    f.pio.read(0xCF8, d);
    CHECK(load_le(d) == 0x8000'0000);  // SeaBIOS pci_probe_host() expects this back
    store_le(d, 0xFFFF'FFFF);
    f.pio.write(0xCF8, d);
    f.pio.read(0xCF8, d);
    CHECK(load_le(d) == 0x80FF'FFFC);  // reserved bits 30:24 and 1:0 read 0

    // A byte write at 0xCF9 goes to the reset-control device, not to the address register.
    const uint8_t six = 0x06;
    f.pio.write(0xCF9, std::span<const uint8_t>(&six, 1));
    REQUIRE(f.cf9.writes.size() == 1);
    CHECK(f.cf9.writes[0].offset == 0);
    CHECK(f.cf9.writes[0].value == 6);
    f.pio.read(0xCF8, d);
    CHECK(load_le(d) == 0x80FF'FFFC);
    // Other non-dword accesses to 0xCF8-0xCFB read all-ones and do not touch the register.
    uint8_t b = 0;
    f.pio.read(0xCF8, std::span<uint8_t>(&b, 1));
    CHECK(b == 0xff);
    std::array<uint8_t, 2> w{};
    f.pio.write(0xCFA, w);
    f.pio.write(0xCFB, std::span<const uint8_t>(&b, 1));  // Linux's type-1 probe does outb(0x01, 0xCFB)
    f.pio.read(0xCF8, d);
    CHECK(load_le(d) == 0x80FF'FFFC);
    CHECK(f.cf9.writes.size() == 1);
}

TEST_CASE("pci unknown slots, functions, buses and disabled cycles read all-ones") {
    Fixture f;
    CHECK(f.cfg_read(7, 0x00, 4) == 0xFFFF'FFFF);             // empty slot
    CHECK(f.cfg_read(3, 0x00, 4, /*func*/ 1) == 0xFFFF'FFFF);  // function 1
    CHECK(f.cfg_read(3, 0x00, 4, 0, /*bus*/ 1) == 0xFFFF'FFFF);
    CHECK(f.cfg_read(3, 0x00, 4) == 0x5678'1234);
    // Enable bit clear: data port floats.
    std::array<uint8_t, 4> d{};
    store_le(d, Fixture::address(0, 3, 0, 0) & 0x7FFF'FFFF);
    f.pio.write(0xCF8, d);
    f.pio.read(0xCFC, d);
    CHECK(load_le(d) == 0xFFFF'FFFF);
    // Writes to an empty slot are dropped without effect.
    f.cfg_write(7, 0x04, 2, 0xffff);
    CHECK(f.cfg_read(7, 0x04, 2) == 0xFFFF);
}

TEST_CASE("pci odd-width config accesses") {
    Fixture f;
    CHECK(f.cfg_read(3, 0x01, 1) == 0x12);      // 0xCFD
    CHECK(f.cfg_read(3, 0x02, 2) == 0x5678);    // 0xCFE
    CHECK(f.cfg_read(3, 0x03, 1) == 0x56);      // 0xCFF
    CHECK(f.cfg_read(3, 0x09, 2) == 0x8000);    // prog-if + subclass
    CHECK(f.cfg_read(3, 0x0B, 1) == 0x02);      // base class
    CHECK(f.cfg_read(3, 0x3D, 1) == 1);         // INTA#
    // A word access at 0xCFD covers config bytes 1-2.
    f.select(3, 0x00);
    std::array<uint8_t, 2> w{};
    f.pio.read(0xCFD, w);
    CHECK(load_le(w) == 0x7812);
    // A dword access at 0xCFD would run past 0xCFF: the bus rejects it (all-ones).
    std::array<uint8_t, 4> dw{};
    CHECK_FALSE(f.pio.read(0xCFD, dw));
    CHECK(load_le(dw) == 0xFFFF'FFFF);
}

TEST_CASE("pci read-only fields stay read-only") {
    Fixture f;
    f.cfg_write(3, 0x00, 4, 0xDEAD'BEEF);
    CHECK(f.cfg_read(3, 0x00, 4) == 0x5678'1234);
    f.cfg_write(3, 0x08, 4, 0xFFFF'FFFF);
    CHECK(f.cfg_read(3, 0x08, 4) == 0x0280'0003);
    f.cfg_write(3, 0x0E, 1, 0x80);
    CHECK(f.cfg_read(3, 0x0E, 1) == 0);
    f.cfg_write(3, 0x04, 2, 0xFFFF);
    CHECK(f.cfg_read(3, 0x04, 2) == 0x0547);  // IO, MEM, MASTER, PARITY, SERR, INTX_DISABLE
    f.cfg_write(3, 0x06, 2, 0xFFFF);
    CHECK(f.cfg_read(3, 0x06, 2) == 0x0010);  // status: only "capabilities list"
    f.cfg_write(3, 0x3C, 1, 0x0B);
    CHECK(f.cfg_read(3, 0x3C, 1) == 0x0B);
    f.cfg_write(3, 0x3D, 1, 0x04);
    CHECK(f.cfg_read(3, 0x3D, 1) == 1);
    f.cfg_write(3, 0x2C, 4, 0);
    CHECK(f.cfg_read(3, 0x2C, 4) == 0xBBBB'AAAA);
    // Capability body bytes: only the bits given a write mask change.
    f.cfg_write(3, f.fn.cap1 + 2, 2, 0xFFFF);
    CHECK(f.cfg_read(3, f.fn.cap1 + 2, 2) == 0x0F42);
}

TEST_CASE("pci capability list") {
    Fixture f;
    CHECK((f.cfg_read(3, 0x06, 2) & 0x10) != 0);
    const unsigned first = f.cfg_read(3, 0x34, 1);
    CHECK(first == 0x40);
    CHECK(f.cfg_read(3, first, 1) == 0x09);
    const unsigned second = f.cfg_read(3, first + 1, 1);
    CHECK(second == 0x48);  // 6 bytes, dword aligned
    CHECK(f.cfg_read(3, second, 1) == 0x05);
    CHECK(f.cfg_read(3, second + 1, 1) == 0);
    CHECK(f.cfg_read(0, 0x34, 1) == 0);  // host bridge: no list
    CHECK((f.cfg_read(0, 0x06, 2) & 0x10) == 0);
}

TEST_CASE("pci BAR sizing") {
    Fixture f;
    CHECK(f.cfg_read(3, 0x10, 4) == 0x0);         // mem32, not yet assigned
    CHECK(f.cfg_read(3, 0x14, 4) == 0x1);         // I/O
    CHECK(f.cfg_read(3, 0x18, 4) == 0x4);         // mem64
    CHECK(f.cfg_read(3, 0x20, 4) == 0x8);         // prefetchable mem32
    for (unsigned reg = 0x10; reg <= 0x24; reg += 4) f.cfg_write(3, reg, 4, 0xFFFF'FFFF);
    CHECK(f.cfg_read(3, 0x10, 4) == 0xFFFF'F000);
    CHECK(f.cfg_read(3, 0x14, 4) == 0xFFFF'FFE1);
    CHECK(f.cfg_read(3, 0x18, 4) == 0xFFFF'C004);
    CHECK(f.cfg_read(3, 0x1C, 4) == 0xFFFF'FFFF);
    CHECK(f.cfg_read(3, 0x20, 4) == 0xFFFF'FF08);
    CHECK(f.cfg_read(3, 0x24, 4) == 0);  // BAR5 not implemented
    f.cfg_write(3, 0x30, 4, 0xFFFF'FFFE);
    CHECK(f.cfg_read(3, 0x30, 4) == 0);  // no expansion ROM
}

TEST_CASE("pci BAR set-up errors") {
    TestFunction fn;
    CHECK_THROWS_AS(fn.add_bar_for_test(0, PciBarType::mem32, 0x1000), std::invalid_argument);  // in use
    CHECK_THROWS_AS(fn.add_bar_for_test(3, PciBarType::mem32, 0x1000), std::invalid_argument);  // upper half
    CHECK_THROWS_AS(fn.add_bar_for_test(5, PciBarType::mem64, 0x1000), std::invalid_argument);  // no room
    CHECK_THROWS_AS(fn.add_bar_for_test(5, PciBarType::mem32, 0x1800), std::invalid_argument);  // not 2^n
    CHECK_THROWS_AS(fn.add_bar_for_test(5, PciBarType::io, 0x200), std::invalid_argument);      // > 256
    CHECK_THROWS_AS(fn.add_bar_for_test(6, PciBarType::mem32, 0x1000), std::invalid_argument);
    CHECK_NOTHROW(fn.add_bar_for_test(5, PciBarType::mem32, 0x10));
}

TEST_CASE("pci BARs are mapped on the buses when decode is enabled") {
    Fixture f;
    f.cfg_write(3, 0x10, 4, 0xFE00'0000);
    f.cfg_write(3, 0x14, 4, 0xC000);
    f.cfg_write(3, 0x18, 4, 0x0000'0000);
    f.cfg_write(3, 0x1C, 4, 0x0000'0001);  // 64-bit BAR at 4 GiB
    f.cfg_write(3, 0x20, 4, 0xFE10'0000);
    // Decode off: nothing mapped.
    CHECK(f.mmio_read32(0xFE00'0010) == 0xFFFF'FFFF);
    CHECK(f.mmio.find(0xFE00'0000, 4).device == nullptr);

    f.cfg_write(3, 0x04, 2, pci::kCommandMemory);
    CHECK(f.mmio_read32(0xFE00'0010) == 0x13121110);
    CHECK(f.fn.mem.last_read == 0x10);
    CHECK(f.mmio.find(0x1'0000'0000, 4).device == &f.fn.mem64);
    CHECK(f.mmio.find(0x1'0000'3FFC, 4).device == &f.fn.mem64);
    CHECK(f.mmio.find(0xFE10'00FC, 4).device == &f.fn.pref);
    CHECK(f.pio.find(0xC000, 1).device == nullptr);  // I/O decode still off
    std::array<uint8_t, 4> v{};
    store_le(v, 0xCAFEF00D);
    f.mmio.write(0xFE00'0FFC, v);
    REQUIRE(f.fn.mem.writes.size() == 1);
    CHECK(f.fn.mem.writes[0].offset == 0xFFC);
    CHECK(f.fn.mem.writes[0].value == 0xCAFEF00D);

    f.cfg_write(3, 0x04, 2, pci::kCommandMemory | pci::kCommandIo);
    CHECK(f.pio.find(0xC01F, 1).device == &f.fn.io);
    CHECK(f.pio.find(0xC020, 1).device == nullptr);

    // Moving a BAR unmaps the old window.
    f.cfg_write(3, 0x10, 4, 0xFD00'0000);
    CHECK(f.mmio.find(0xFE00'0000, 4).device == nullptr);
    CHECK(f.mmio.find(0xFD00'0000, 4).device == &f.fn.mem);

    // Turning memory decode off unmaps every memory BAR but keeps I/O.
    f.cfg_write(3, 0x04, 2, pci::kCommandIo);
    CHECK(f.mmio.find(0xFD00'0000, 4).device == nullptr);
    CHECK(f.mmio.find(0x1'0000'0000, 4).device == nullptr);
    CHECK(f.mmio_read32(0xFD00'0000) == 0xFFFF'FFFF);
    CHECK(f.pio.find(0xC000, 1).device == &f.fn.io);
}

TEST_CASE("pci BAR sizing with decode on does not leave stray mappings") {
    Fixture f;
    f.cfg_write(3, 0x10, 4, 0xFE00'0000);
    f.cfg_write(3, 0x04, 2, pci::kCommandMemory);
    f.cfg_write(3, 0x10, 4, 0xFFFF'FFFF);  // sizing while decoding (Linux does this for bridges)
    CHECK(f.mmio.find(0xFE00'0000, 4).device == nullptr);
    f.cfg_write(3, 0x10, 4, 0xFE00'0000);
    CHECK(f.mmio.find(0xFE00'0000, 4).device == &f.fn.mem);
    CHECK(f.mmio.find(0xFFFF'F000, 4).device == nullptr);  // the transient sizing window is gone
    // Address 0 means "unassigned".
    f.cfg_write(3, 0x10, 4, 0);
    CHECK(f.mmio.find(0, 4).device == nullptr);
}

TEST_CASE("pci BAR conflicts are not fatal and are retried") {
    Fixture f;
    RecordingDevice squatter;
    f.mmio.insert(0xFE00'0800, 0x10, squatter);
    f.cfg_write(3, 0x10, 4, 0xFE00'0000);
    f.cfg_write(3, 0x04, 2, pci::kCommandMemory);  // conflicts: left unmapped
    CHECK(f.mmio.find(0xFE00'0000, 4).device == nullptr);
    CHECK(f.mmio.find(0xFE00'0800, 4).device == &squatter);
    f.mmio.remove(0xFE00'0800, squatter);
    f.cfg_write(3, 0x3C, 1, 0x0A);  // any later config write retries
    CHECK(f.mmio.find(0xFE00'0000, 4).device == &f.fn.mem);
}

TEST_CASE("pci I/O BAR outside the 64 KiB port space stays unmapped") {
    Fixture f;
    f.cfg_write(3, 0x14, 4, 0x0001'0000);
    f.cfg_write(3, 0x04, 2, pci::kCommandIo);
    CHECK(f.pio.find(0x0, 1).device == nullptr);
    f.cfg_write(3, 0x14, 4, 0xFFE0);
    CHECK(f.pio.find(0xFFE0, 1).device == &f.fn.io);
}

TEST_CASE("pci host add() rejects bad slots") {
    Bus pio{"pio"}, mmio{"mmio"};
    PciHost host(pio, mmio);
    TestFunction a, b;
    CHECK_THROWS_AS(host.add(32, a), std::invalid_argument);
    CHECK_THROWS_AS(host.add(0, a), std::invalid_argument);  // host bridge
    host.add(5, a);
    CHECK_THROWS_AS(host.add(5, b), std::invalid_argument);
}

TEST_CASE("pci host destruction unmaps BARs") {
    Bus pio{"pio"}, mmio{"mmio"};
    TestFunction fn;
    {
        PciHost host(pio, mmio);
        pio.insert(PciHost::kPortBase, PciHost::kPortSize, host);
        host.add(2, fn);
        std::array<uint8_t, 4> d{};
        auto cfg_write = [&](unsigned reg, uint32_t value) {
            store_le(d, 0x8000'0000u | 2u << 11 | reg);
            pio.write(0xCF8, d);
            store_le(d, value);
            pio.write(0xCFC, d);
        };
        cfg_write(0x10, 0xFE00'0000);
        cfg_write(0x04, pci::kCommandMemory);
        CHECK(mmio.find(0xFE00'0000, 4).device == &fn.mem);
        pio.remove(PciHost::kPortBase, host);
    }
    CHECK(mmio.find(0xFE00'0000, 4).device == nullptr);
}
