// The exit handler is fed synthetic kvm_run exits: every shape a (buggy or hostile) kernel or
// guest could produce must be handled without touching memory outside the kvm_run area.
#include <doctest/doctest.h>

#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "vmm/kvm/exit_handler.hpp"

using namespace minivmm;

namespace {
struct Port final : Device {
    std::string_view name() const noexcept override { return "port"; }
    void read(uint64_t offset, std::span<uint8_t> data) noexcept override {
        for (auto& b : data) b = static_cast<uint8_t>(next++);
        reads.push_back({offset, data.size()});
    }
    void write(uint64_t offset, std::span<const uint8_t> data) noexcept override {
        writes.push_back({offset, data.size()});
        bytes.insert(bytes.end(), data.begin(), data.end());
    }
    uint8_t next = 1;
    std::vector<std::pair<uint64_t, size_t>> reads, writes;
    std::vector<uint8_t> bytes;
};

struct Fixture {
    std::vector<uint8_t> area = std::vector<uint8_t>(8192);
    kvm_run& run = *reinterpret_cast<kvm_run*>(area.data());
    Bus pio{"pio"}, mmio{"mmio"};
    Port port, mem;
    Fixture() {
        pio.insert(0x3F8, 8, port);
        mmio.insert(0xFED40000, 0x5000, mem);
    }
    void io(uint8_t dir, uint16_t p, uint8_t size, uint32_t count, uint64_t offset = 4096) {
        run.exit_reason = KVM_EXIT_IO;
        run.io.direction = dir;
        run.io.port = p;
        run.io.size = size;
        run.io.count = count;
        run.io.data_offset = offset;
    }
    ExitOutcome handle() { return handle_exit(run, area.size(), pio, mmio); }
};
}  // namespace

TEST_CASE("port output and input, including rep string I/O split into single accesses") {
    Fixture f;
    f.io(KVM_EXIT_IO_OUT, 0x3F8, 1, 3);
    std::memcpy(f.area.data() + 4096, "abc", 3);
    CHECK(f.handle().action == ExitAction::resume);
    CHECK(f.port.writes.size() == 3);
    CHECK(std::string(f.port.bytes.begin(), f.port.bytes.end()) == "abc");

    f.io(KVM_EXIT_IO_IN, 0x3FC, 2, 2);
    CHECK(f.handle().action == ExitAction::resume);
    REQUIRE(f.port.reads.size() == 2);
    CHECK(f.port.reads[0] == std::pair<uint64_t, size_t>{4, 2});
    CHECK(f.area[4096] == 1);
    CHECK(f.area[4099] == 4);
}

TEST_CASE("unmapped ports read all-ones") {
    Fixture f;
    f.io(KVM_EXIT_IO_IN, 0x60, 4, 1);
    CHECK(f.handle().action == ExitAction::resume);
    CHECK(f.area[4096] == 0xff);
    CHECK(f.area[4099] == 0xff);
    // an access that straddles the end of the UART is not delivered to it
    f.io(KVM_EXIT_IO_IN, 0x3FE, 4, 1);
    CHECK(f.handle().action == ExitAction::resume);
    CHECK(f.port.reads.empty());
}

TEST_CASE("malformed I/O exits are fatal, never out-of-bounds") {
    Fixture f;
    f.io(KVM_EXIT_IO_OUT, 0x3F8, 3, 1);
    CHECK(f.handle().action == ExitAction::fatal);
    f.io(KVM_EXIT_IO_OUT, 0x3F8, 4, 2048, 4096);  // 8192 bytes from 4096: past the end
    CHECK(f.handle().action == ExitAction::fatal);
    f.io(KVM_EXIT_IO_OUT, 0x3F8, 1, 1, ~0ull);
    CHECK(f.handle().action == ExitAction::fatal);
    f.io(KVM_EXIT_IO_OUT, 0x3F8, 4, 0xFFFFFFFFu, 4096);
    CHECK(f.handle().action == ExitAction::fatal);
    CHECK(f.port.writes.empty());
    f.io(KVM_EXIT_IO_OUT, 0x3F8, 1, 0);  // nothing to do
    CHECK(f.handle().action == ExitAction::resume);
}

// Found by tests/fuzz/fuzz_exit_handler: with data_offset pointing at the exit's own count field,
// the input data of a rep INS rewrote the loop bound while the loop ran (up to 4 G accesses,
// writing past the kvm_run area). The handler now works on a copy of the exit fields.
TEST_CASE("input data landing on the I/O exit fields does not change the access") {
    Fixture f;
    f.io(KVM_EXIT_IO_IN, 0x3F8, 1, 4, offsetof(kvm_run, io.count));
    f.port.next = 0xFE;  // the first byte read would make the count 0xFE
    CHECK(f.handle().action == ExitAction::resume);
    CHECK(f.port.reads.size() == 4);
    CHECK(f.run.io.count == 0x0100FFFEu);  // the four bytes read, nothing more

    f.port.reads.clear();
    f.io(KVM_EXIT_IO_IN, 0x3F8, 2, 2, offsetof(kvm_run, io.size));  // overwrites size, port, count
    CHECK(f.handle().action == ExitAction::resume);
    CHECK(f.port.reads.size() == 2);
    CHECK(f.port.reads[1] == std::pair<uint64_t, size_t>{0, 2});
}

TEST_CASE("MMIO exits of every legal length reach the device; bad lengths are fatal") {
    Fixture f;
    for (uint32_t len : {1u, 2u, 4u, 8u}) {
        f.run.exit_reason = KVM_EXIT_MMIO;
        f.run.mmio.phys_addr = 0xFED40F00;
        f.run.mmio.len = len;
        f.run.mmio.is_write = 0;
        CHECK(f.handle().action == ExitAction::resume);
        CHECK(f.mem.reads.back() == std::pair<uint64_t, size_t>{0xF00, len});
    }
    f.run.mmio.len = 9;
    CHECK(f.handle().action == ExitAction::fatal);
    f.run.mmio.len = 0;
    CHECK(f.handle().action == ExitAction::fatal);
    f.run.mmio.len = 4;
    f.run.mmio.phys_addr = 0xE0000000;  // unmapped
    CHECK(f.handle().action == ExitAction::resume);
    CHECK(f.run.mmio.data[0] == 0xff);
}

TEST_CASE("shutdown resets, internal errors and unknown exits are fatal") {
    Fixture f;
    f.run.exit_reason = KVM_EXIT_SHUTDOWN;
    CHECK(f.handle().action == ExitAction::reset);
    f.run.exit_reason = KVM_EXIT_INTERNAL_ERROR;
    f.run.internal.suberror = KVM_INTERNAL_ERROR_EMULATION;
    auto out = f.handle();
    CHECK(out.action == ExitAction::fatal);
    CHECK(std::string(out.reason).find("emulate") != std::string::npos);
    f.run.exit_reason = KVM_EXIT_FAIL_ENTRY;
    CHECK(f.handle().action == ExitAction::fatal);
    f.run.exit_reason = 9999;
    CHECK(f.handle().action == ExitAction::fatal);
    f.run.exit_reason = KVM_EXIT_INTR;
    CHECK(f.handle().action == ExitAction::resume);
    f.run.exit_reason = KVM_EXIT_SYSTEM_EVENT;
    f.run.system_event.type = KVM_SYSTEM_EVENT_SHUTDOWN;
    CHECK(f.handle().action == ExitAction::poweroff);
    f.run.system_event.type = KVM_SYSTEM_EVENT_RESET;
    CHECK(f.handle().action == ExitAction::reset);
    CHECK(std::string(exit_reason_name(KVM_EXIT_INTERNAL_ERROR)) == "KVM_EXIT_INTERNAL_ERROR");
}
