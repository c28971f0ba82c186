// Snapshots of the PCI host, a PCI function's config space and an MSI-X table
// (devices/device_state.hpp): programmed through the config ports as firmware does, saved, loaded
// into a new machine, which then decodes and answers the same way; bad blobs change nothing.
#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <vector>

#include "devices/bus.hpp"
#include "devices/msix.hpp"
#include "devices/pci_function.hpp"
#include "devices/pci_host.hpp"

using namespace minivmm;

namespace {

struct Answering final : Device {
    uint8_t tag;
    explicit Answering(uint8_t t) : tag(t) {}
    std::string_view name() const noexcept override { return "answering"; }
    void read(uint64_t, std::span<uint8_t> data) noexcept override { std::fill(data.begin(), data.end(), tag); }
    void write(uint64_t, std::span<const uint8_t>) noexcept override {}
};

struct Function final : PciFunction {
    Answering mem{0x11}, io{0x22};
    uint8_t cap = 0;
    Function() : PciFunction("state-fn", PciIdentity{0x1234, 0x5678, 1, 0x028000, 0xAAAA, 0xBBBB, 1}) {
        add_bar(0, PciBarType::mem32, 0x1000, mem);
        add_bar(1, PciBarType::io, 0x20, io);
        cap = add_capability(0x09, 8);
        set_writable(cap + 4, 2, 0x0f);  // a capability register the guest writes
    }
};

constexpr unsigned kSlot = 3;

struct Machine {
    Bus pio{"pio"};
    Bus mmio{"mmio"};
    PciHost host{pio, mmio};
    Function fn;
    Machine() {
        pio.insert(PciHost::kPortBase, PciHost::kPortSize, host);
        host.add(kSlot, fn);
    }
    void address(uint32_t v) {
        std::array<uint8_t, 4> a{};
        store_le(a, v);
        pio.write(0xCF8, a);
    }
    uint32_t address() {
        std::array<uint8_t, 4> a{};
        pio.read(0xCF8, a);
        return static_cast<uint32_t>(load_le(a));
    }
    uint32_t cfg_read(unsigned dev, unsigned reg) {
        address(0x8000'0000u | dev << 11 | reg);
        std::array<uint8_t, 4> d{};
        pio.read(0xCFC, d);
        return static_cast<uint32_t>(load_le(d));
    }
    void cfg_write(unsigned dev, unsigned reg, uint32_t v) {
        address(0x8000'0000u | dev << 11 | reg);
        std::array<uint8_t, 4> d{};
        store_le(d, v);
        pio.write(0xCFC, d);
    }
    uint8_t mem_at(uint64_t a) {
        uint8_t v = 0;
        mmio.read(a, std::span(&v, 1));
        return v;
    }
    uint8_t io_at(uint64_t a) {
        uint8_t v = 0;
        pio.read(a, std::span(&v, 1));
        return v;
    }
};

}  // namespace

TEST_CASE("pci state: BARs, COMMAND, interrupt line and capability registers come back, and are decoded") {
    Machine a;
    a.cfg_write(kSlot, pci::kBar0, 0xFEB0'0000);
    a.cfg_write(kSlot, pci::kBar0 + 4, 0xC040);
    a.cfg_write(kSlot, pci::kCommand, pci::kCommandIo | pci::kCommandMemory | pci::kCommandMaster);
    a.cfg_write(kSlot, pci::kInterruptLine, 11);
    a.cfg_write(kSlot, a.fn.cap + 4, 0xFFFF);
    a.cfg_write(0, pci::kCommand, pci::kCommandMemory);  // the host bridge's own COMMAND
    a.address(0x8000'0000u | kSlot << 11 | 0x3C);         // left pointing at a register
    REQUIRE(a.mem_at(0xFEB0'0000) == 0x11);
    const std::vector<uint8_t> fn_blob = saved_state(a.fn);
    const std::vector<uint8_t> host_blob = saved_state(a.host);

    Machine b;
    CHECK(b.mem_at(0xFEB0'0000) == 0xFF);  // nothing decoded yet
    REQUIRE(b.fn.load_state(fn_blob));      // functions first ...
    CHECK(b.mem_at(0xFEB0'0000) == 0xFF);   // (the host maps)
    REQUIRE(b.host.load_state(host_blob));  // ... then the host, which maps their BARs
    CHECK(b.address() == a.address());
    CHECK((b.mem_at(0xFEB0'0000) == 0x11 && b.io_at(0xC040) == 0x22));
    CHECK((saved_state(b.fn) == fn_blob && saved_state(b.host) == host_blob));
    for (unsigned dev : {0u, kSlot})
        for (unsigned reg = 0; reg < PciFunction::kConfigSize; reg += 4) CHECK(b.cfg_read(dev, reg) == a.cfg_read(dev, reg));
    CHECK(b.cfg_read(kSlot, b.fn.cap + 4) == 0x0F0F);
    // And behaves the same afterwards: moving the BAR moves the decode.
    b.cfg_write(kSlot, pci::kBar0, 0xFEC0'0000);
    CHECK((b.mem_at(0xFEB0'0000) == 0xFF && b.mem_at(0xFEC0'0000) == 0x11));
}

TEST_CASE("pci state: blobs a function or host could not have written are refused and change nothing") {
    Machine a;
    a.cfg_write(kSlot, pci::kBar0, 0xFEB0'0000);
    a.cfg_write(kSlot, pci::kCommand, pci::kCommandMemory);
    const std::vector<uint8_t> fn_good = saved_state(a.fn);
    const std::vector<uint8_t> host_good = saved_state(a.host);
    Machine b;
    b.cfg_write(kSlot, pci::kInterruptLine, 5);
    const std::vector<uint8_t> fn_before = saved_state(b.fn), host_before = saved_state(b.host);
    auto refused = [&](SavesState& d, const std::vector<uint8_t>& blob, const std::vector<uint8_t>& before) {
        CHECK_FALSE(d.load_state(blob));
        CHECK(saved_state(d) == before);
    };
    auto with = [](std::vector<uint8_t> blob, size_t at, uint8_t v) {
        blob.at(at) = v;
        return blob;
    };
    for (size_t n = 0; n < fn_good.size(); ++n) refused(b.fn, {fn_good.begin(), fn_good.begin() + static_cast<std::ptrdiff_t>(n)}, fn_before);
    for (size_t n = 0; n < host_good.size(); ++n)
        refused(b.host, {host_good.begin(), host_good.begin() + static_cast<std::ptrdiff_t>(n)}, host_before);
    // Function: version@0, length@1, config@5.
    refused(b.fn, with(fn_good, 0, 2), fn_before);
    auto trailing = fn_good;
    trailing.push_back(0);
    refused(b.fn, trailing, fn_before);
    refused(b.fn, with(fn_good, 5 + pci::kVendorId, 0x35), fn_before);               // another device
    refused(b.fn, with(fn_good, 5 + pci::kBar0, 0x01), fn_before);                   // BAR type bits
    refused(b.fn, with(fn_good, 5 + pci::kStatus, pci::kStatusInterrupt), fn_before);  // not this function's to set
    refused(b.fn, with(fn_good, 5 + b.fn.cap + 4, 0x10), fn_before);                  // outside its write mask
    // Host: version@0, address@1, bridge blob length@5, bridge blob@9.
    refused(b.host, with(host_good, 0, 2), host_before);
    refused(b.host, with(host_good, 4, 0x40), host_before);  // reserved address bits 30:24
    refused(b.host, with(host_good, 1, 0x01), host_before);  // type bits 1:0 are not stored
    refused(b.host, with(host_good, 9 + 5 + pci::kDeviceId, 0x99), host_before);
    trailing = host_good;
    trailing.push_back(0);
    refused(b.host, trailing, host_before);
    CHECK(b.mem_at(0xFEB0'0000) == 0xFF);
}

TEST_CASE("msix state: table and pending bits come back; a pending message is sent on unmask") {
    struct Sink final : MsiSink {
        std::vector<std::pair<uint64_t, uint32_t>> sent;
        void signal(uint64_t a, uint32_t d) noexcept override { sent.emplace_back(a, d); }
    } sink_a, sink_b;
    MsixTable a(4, sink_a);
    const uint8_t entry[12] = {0x00, 0x10, 0xE0, 0xFE, 0, 0, 0, 0, 0x41, 0, 0, 0};  // 0xFEE01000, data 0x41
    a.write_table(2 * MsixTable::kEntrySize, entry);
    a.set_control(true, false);
    a.notify(2);  // vector 2 still masked (reset state): pending
    CHECK((sink_a.sent.empty() && a.pending(2)));
    const std::vector<uint8_t> blob = saved_state(a);

    MsixTable b(4, sink_b);
    REQUIRE(b.load_state(blob));
    CHECK((sink_b.sent.empty() && b.pending(2) && b.enabled() && !b.function_masked()));
    std::array<uint8_t, 64> ta{}, tb{};
    a.read_table(0, ta);
    b.read_table(0, tb);
    CHECK(ta == tb);
    std::array<uint8_t, 8> pba{};
    b.read_pba(0, pba);
    CHECK(pba[0] == 0x04);
    const uint8_t unmask = 0;
    b.write_table(2 * MsixTable::kEntrySize + 12, std::span(&unmask, 1));
    REQUIRE(sink_b.sent.size() == 1);
    CHECK((sink_b.sent[0].first == 0xFEE01000 && sink_b.sent[0].second == 0x41 && !b.pending(2)));

    // Refused, b unchanged: layout version@0, length@1, table@5 (64 bytes), pending@69, enabled@77, mask@78.
    const std::vector<uint8_t> before = saved_state(b);
    auto with = [&](size_t at, uint8_t v) {
        auto x = blob;
        x.at(at) = v;
        return x;
    };
    std::vector<std::vector<uint8_t>> bad = {with(0, 2), with(69, 0x10),  // pending bit past 4 vectors
                                             with(5 + 2 * 16 + 12, 0x03),    // reserved vector-control bit
                                             with(5 + 2 * 16 + 13, 0x01), with(5 + 2 * 16 + 12, 0x00),  // deliverable
                                             with(77, 2), {blob.begin(), blob.end() - 1}};
    auto trailing = blob;
    trailing.push_back(0);
    bad.push_back(trailing);
    MsixTable other(8, sink_b);
    CHECK_FALSE(other.load_state(blob));  // another table size
    for (const auto& x : bad) {
        CHECK_FALSE(b.load_state(x));
        CHECK(saved_state(b) == before);
    }
    CHECK(sink_b.sent.size() == 1);
}
