// -exit-stats counting (vmm/kvm/exit_stats.hpp) on synthetic kvm_run exits and real buses.
#include <doctest/doctest.h>

#include <linux/kvm.h>

#include <cstring>
#include <memory>
#include <vector>

#include "devices/bus.hpp"
#include "vmm/kvm/exit_stats.hpp"

using namespace minivmm;

namespace {

struct Named final : Device {
    explicit Named(std::string_view n) : n_(n) {}
    std::string_view name() const noexcept override { return n_; }
    void read(uint64_t, std::span<uint8_t> data) noexcept override { std::memset(data.data(), 0, data.size()); }
    void write(uint64_t, std::span<const uint8_t>) noexcept override {}
    std::string_view n_;
};

kvm_run io(uint16_t port, bool out, uint8_t size = 1) {
    kvm_run r{};
    r.exit_reason = KVM_EXIT_IO;
    r.io.port = port;
    r.io.size = size;
    r.io.direction = out ? KVM_EXIT_IO_OUT : KVM_EXIT_IO_IN;
    return r;
}
kvm_run mmio(uint64_t addr, bool write, uint32_t len = 1) {
    kvm_run r{};
    r.exit_reason = KVM_EXIT_MMIO;
    r.mmio.phys_addr = addr;
    r.mmio.len = len;
    r.mmio.is_write = write;
    return r;
}

}  // namespace

TEST_CASE("exits are counted by reason, device and direction, and merged across vCPUs") {
    Bus pio("io"), mem("mmio");
    Named uart("uart16550"), tis("tpm-tis");
    pio.insert(0x3F8, 8, uart);
    mem.insert(0xFED40000, 0x5000, tis);

    ExitStats a, b;
    for (int i = 0; i < 3; ++i) a.count(io(0x3F8, true), pio, mem);
    a.count(io(0x3FD, false), pio, mem);
    a.count(io(0x80, true), pio, mem);  // nothing there
    a.count(mmio(0xFED40018, false, 4), pio, mem);
    a.count(mmio(0xFED4FFFF, false, 4), pio, mem);  // runs off the TIS: unmapped
    kvm_run hlt{};
    hlt.exit_reason = KVM_EXIT_HLT;
    b.count(hlt, pio, mem);
    b.count(mmio(0xFED40024, true), pio, mem);
    for (int i = 0; i < 11; ++i) b.replayed(0x1000);  // not the TPM's window: no register line
    kvm_run odd{};
    odd.exit_reason = 200;  // beyond the reasons KVM has today
    b.count(odd, pio, mem);

    CHECK(a.total() == 7);
    CHECK(a.of_reason(KVM_EXIT_IO) == 5);
    CHECK(a.of_device(&uart, false, true) == 3);
    CHECK(a.of_device(&uart, false, false) == 1);
    CHECK(a.of_device(nullptr, false, true) == 1);
    CHECK(a.of_device(nullptr, true, false) == 1);
    CHECK(a.of_device(&tis, true, false) == 1);

    a.merge(b);
    CHECK(a.total() == 10);
    CHECK(a.of_reason(KVM_EXIT_HLT) == 1);
    CHECK(a.of_reason(200) == 1);
    CHECK(a.of_device(&tis, true, true) == 1);
    CHECK(a.coalesced() == 11);

    auto lines = a.lines(2);
    REQUIRE(lines.size() >= 4);
    CHECK(lines[0] == "exit-stats boot=2 total=10 coalesced=11");
    CHECK(lines[1] == "exit-stats boot=2 reason=KVM_EXIT_IO count=5");  // most first
    bool uart_line = false;
    for (auto& l : lines) uart_line |= l == "exit-stats boot=2 reason=KVM_EXIT_IO device=uart16550 dir=write count=3";
    CHECK(uart_line);
}

TEST_CASE("more distinct devices than slots are counted as uncounted, never lost") {
    Bus pio("io"), mem("mmio");
    std::vector<std::unique_ptr<Named>> devs;
    for (int i = 0; i < 40; ++i) {
        devs.push_back(std::make_unique<Named>("d"));
        pio.insert(0x1000 + static_cast<uint64_t>(i) * 4, 4, *devs.back());
    }
    ExitStats s;
    for (int i = 0; i < 40; ++i) {
        s.count(io(static_cast<uint16_t>(0x1000 + i * 4), true), pio, mem);
        s.count(io(static_cast<uint16_t>(0x1000 + i * 4), false), pio, mem);
    }
    CHECK(s.total() == 80);
    auto lines = s.lines(1);
    CHECK(lines.back() == "exit-stats boot=1 device=uncounted count=16");
}

TEST_CASE("the TPM window's exits and coalesced writes are counted by register offset") {
    Bus pio("io"), mem("mmio");
    Named crb("tpm-crb");
    mem.insert(0xFED40000, 0x1000, crb);
    ExitStats a, b;
    a.count(mmio(0xFED4004C, false, 4), pio, mem);  // CTRL_START polled twice
    a.count(mmio(0xFED4004C, false, 4), pio, mem);
    a.replayed(0xFED4004C);                          // CTRL_START written, through the ring
    b.count(mmio(0xFED40000, false, 4), pio, mem);  // LOC_STATE
    b.count(mmio(0xFED40008, true, 4), pio, mem);   // LOC_CTRL, an exit
    b.count(mmio(0xFEC00000, false, 4), pio, mem);  // not the TPM: no register line
    a.merge(b);
    CHECK(a.coalesced() == 1);
    std::vector<std::string> regs;
    for (const std::string& l : a.lines(1))
        if (l.find("tpm-register=") != std::string::npos) regs.push_back(l);
    CHECK(regs == std::vector<std::string>{"exit-stats boot=1 tpm-register=0x0 dir=read count=1",
                                           "exit-stats boot=1 tpm-register=0x8 dir=write count=1",
                                           "exit-stats boot=1 tpm-register=0x4c dir=read count=2",
                                           "exit-stats boot=1 tpm-register=0x4c dir=coalesced count=1"});
}
