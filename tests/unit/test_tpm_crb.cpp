// TpmCrb against a scripted backend: the register values after reset (as QEMU tpm-crb and the
// TCG PC Client PTP "CRB Interface" define them), locality request/relinquish, cmdReady/goIdle,
// the command start and completion as Linux tpm_crb and SeaBIOS drive them, cancel, and every
// kind of bad access or bad command (nothing crashes; the guest sees a clear error bit). The
// buffer is guest RAM (a GuestMemory over a plain array here): the guest reads and writes it
// directly, the device only at CTRL_START and at completion.
#include <doctest/doctest.h>

#include <vector>

#include "devices/tpm_crb.hpp"
#include "vmm/base/guest_memory.hpp"
#include "tpm_tis_fakes.hpp"

using namespace minivmm;
using namespace minivmm::test;

namespace {

// Locality 0 registers (PTP CRB register space), as in Linux's struct crb_regs_head/tail.
constexpr uint64_t kLocState = 0x00, kLocCtrl = 0x08, kLocSts = 0x0C, kIntfId = 0x30, kIntfId2 = 0x34,
                   kCtrlReq = 0x40, kCtrlSts = 0x44, kCtrlCancel = 0x48, kCtrlStart = 0x4C, kCrbIntEnable = 0x50,
                   kCmdSize = 0x58, kCmdLaddr = 0x5C, kCmdHaddr = 0x60, kRspSize = 0x64, kRspAddr = 0x68,
                   kRspAddrHigh = 0x6C;
constexpr uint64_t kBufferGpa = 0xFED41000;  // platform::kTpmCrbBufferBase
constexpr size_t kCapacity = 0x2000;

// The device, its backend and the guest RAM its buffer lives in (filled with a pattern, as RAM a
// guest used before).
struct Rig {
    explicit Rig(size_t backend_buffer = 4096, uint64_t gpa = kBufferGpa)
        : be(TpmVersion::v2_0, backend_buffer), crb(be, mem, gpa, kCapacity) {}
    FakeTpmBackend be;
    std::vector<uint8_t> ram = std::vector<uint8_t>(kCapacity, 0xCC);
    GuestMemory mem{{{kBufferGpa, kCapacity, ram.data()}}};
    TpmCrb crb;

    void put(const std::vector<uint8_t>& bytes, size_t at = 0) { std::copy(bytes.begin(), bytes.end(), ram.begin() + static_cast<ptrdiff_t>(at)); }
    std::vector<uint8_t> get(size_t n, size_t at = 0) const {
        return std::vector<uint8_t>(ram.begin() + static_cast<ptrdiff_t>(at), ram.begin() + static_cast<ptrdiff_t>(at + n));
    }
};

// Linux tpm_crb's sequence for one command: request locality 0, cmdReady, zero the cancel
// register, the command into the buffer, start.
void linux_send(Rig& r, const std::vector<uint8_t>& cmd) {
    writel(r.crb, kLocCtrl, 1);
    writel(r.crb, kCtrlReq, 1);
    writel(r.crb, kCtrlCancel, 0);
    r.put(cmd);
    writel(r.crb, kCtrlStart, 1);
}

}  // namespace

TEST_CASE("CRB registers after reset are QEMU tpm-crb's") {
    Rig r;
    FakeTpmBackend& be = r.be;
    TpmCrb& crb = r.crb;
    CHECK(readl(crb, kLocState) == 0x81);  // tpmRegValidSts, tpmEstablished reads 1 while not established
    be.est = true;
    CHECK(readl(crb, kLocState) == 0x80);
    CHECK(readl(crb, kLocSts) == 0);
    CHECK(readl(crb, kIntfId) == 0x25811);  // CRB active, version 1, 64-byte transfers, CapCRB, selector CRB
    CHECK(readl(crb, kIntfId2) == 0x1014);
    CHECK(readl(crb, kCtrlReq) == 0);
    CHECK(readl(crb, kCtrlSts) == 2);  // tpmIdle
    CHECK(readl(crb, kCtrlStart) == 0);
    CHECK(readl(crb, kCrbIntEnable) == 0);
    CHECK(readl(crb, kCmdSize) == 4096);  // the backend's buffer, smaller than the RAM behind it
    CHECK(readl(crb, kCmdLaddr) == 0xFED41000);
    CHECK(readl(crb, kCmdHaddr) == 0);
    CHECK(readl(crb, kRspSize) == 4096);
    CHECK(readl(crb, kRspAddr) == 0xFED41000);
    CHECK(readl(crb, kRspAddrHigh) == 0);
    CHECK(read_n(crb, kRspAddr, 8) == 0xFED41000);  // Linux reads the response address as 64 bits
    CHECK(readb(crb, kIntfId + 1) == 0x58);          // narrower reads see the word shifted
    CHECK(read_n(crb, kIntfId + 2, 2) == 0x0002);
}

TEST_CASE("CRB locality 0 is requested and relinquished with single-request LOC_CTRL writes") {
    Rig r;
    FakeTpmBackend& be = r.be;
    TpmCrb& crb = r.crb;
    writeb(crb, kLocCtrl, 1);  // SeaBIOS writes a byte
    CHECK(readl(crb, kLocState) == 0x83);
    CHECK(readl(crb, kLocSts) == 1);
    writel(crb, kLocCtrl, 2);
    CHECK(readl(crb, kLocState) == 0x81);
    CHECK(readl(crb, kLocSts) == 0);
    writel(crb, kLocCtrl, 3);  // two requests at once: none is carried out
    CHECK(readl(crb, kLocState) == 0x81);
    writeb(crb, kLocCtrl + 1, 1);  // not at the register's first byte
    CHECK(readl(crb, kLocState) == 0x81);
    writel(crb, kLocCtrl, 8);  // resetEstablishment from locality 0 is not honoured
    CHECK(be.reset_established_calls.empty());
}

TEST_CASE("CRB cmdReady and goIdle move the idle bit; both at once do nothing") {
    Rig r;
    FakeTpmBackend& be = r.be;
    TpmCrb& crb = r.crb;
    writel(crb, kCtrlReq, 1);
    CHECK(readl(crb, kCtrlSts) == 0);
    CHECK(readl(crb, kCtrlReq) == 0);  // done at once: Linux waits for the bit to clear
    writel(crb, kCtrlReq, 3);
    CHECK(readl(crb, kCtrlSts) == 0);
    writel(crb, kCtrlReq, 2);
    CHECK(readl(crb, kCtrlSts) == 2);
}

TEST_CASE("CRB runs a command: paramSize bytes to the TPM, the response in the buffer") {
    Rig r;
    FakeTpmBackend& be = r.be;
    TpmCrb& crb = r.crb;
    std::vector<uint8_t> cmd = kStartup;
    cmd.resize(40, 0xEE);  // bytes past paramSize stay in the buffer, unsent
    linux_send(r, cmd);
    REQUIRE(be.submits.size() == 1);
    CHECK(be.submits[0].locality == 0);
    CHECK(be.submits[0].command == kStartup);
    CHECK(crb.command_outstanding());
    CHECK(readl(crb, kCtrlStart) == 1);
    writel(crb, kCtrlStart, 1);  // a second start while executing is ignored
    CHECK(be.submits.size() == 1);

    std::vector<uint8_t> rsp = {0x80, 0x01, 0, 0, 0, 0x0E, 0, 0, 0, 0, 1, 2, 3, 4, 9, 9, 9};  // paramSize 14
    crb.command_completed(rsp);
    CHECK(readl(crb, kCtrlStart) == 0);
    CHECK(readl(crb, kCtrlSts) == 0);
    CHECK(r.get(14) == std::vector<uint8_t>(rsp.begin(), rsp.begin() + 14));
    CHECK(r.get(4096 - 14, 14) == std::vector<uint8_t>(4096 - 14, 0));  // the rest of the buffer is cleared
    CHECK(r.get(kCapacity - 4096, 4096) == std::vector<uint8_t>(kCapacity - 4096, 0xCC));  // not past its size
    crb.command_completed(rsp);  // no command outstanding: ignored
    CHECK(readl(crb, kCtrlStart) == 0);

    writel(crb, kCtrlReq, 2);
    writel(crb, kLocCtrl, 2);
    CHECK(readl(crb, kCtrlSts) == 2);
    CHECK(readl(crb, kLocState) == 0x81);
}

TEST_CASE("CRB start without the locality, or with a command shorter than its header") {
    Rig r;
    FakeTpmBackend& be = r.be;
    TpmCrb& crb = r.crb;
    r.put(kStartup);
    writel(crb, kCtrlStart, 1);  // no locality assigned
    CHECK(be.submits.empty());
    CHECK(readl(crb, kCtrlStart) == 0);

    writel(crb, kLocCtrl, 1);
    r.put({0x80, 0x01, 0, 0, 0, 0x09});  // paramSize 9 < 10: tpmSts, nothing sent
    writel(crb, kCtrlStart, 1);
    CHECK(be.submits.empty());
    CHECK((readl(crb, kCtrlSts) & 1) == 1);
    CHECK(readl(crb, kCtrlStart) == 0);
}

TEST_CASE("CRB commands longer than the backend's buffer are cut to it") {
    Rig r(64);
    FakeTpmBackend& be = r.be;
    TpmCrb& crb = r.crb;
    std::vector<uint8_t> cmd(200, 0xAB);
    cmd[0] = 0x80, cmd[1] = 0x01, cmd[2] = 0, cmd[3] = 0, cmd[4] = 0, cmd[5] = 200;
    linux_send(r, cmd);
    REQUIRE(be.submits.size() == 1);
    CHECK(be.submits[0].command.size() == 64);
    CHECK(readl(crb, kCmdSize) == 64);
    const std::vector<uint8_t> huge(kCapacity + 100, 0x11);  // a response bigger than the buffer
    crb.command_completed(huge);  // paramSize 0x11111111: the buffer's size is the limit
    CHECK(r.get(64) == std::vector<uint8_t>(64, 0x11));
    CHECK(r.ram[64] == 0xAB);  // the command's bytes past the buffer's size: untouched
    CHECK(readl(crb, kCtrlSts) == 0);
}

TEST_CASE("CRB a response shorter than a header is a fatal error the guest can see") {
    Rig r;
    FakeTpmBackend& be = r.be;
    TpmCrb& crb = r.crb;
    linux_send(r, kStartup);
    crb.command_completed(std::vector<uint8_t>{0x80, 0x01, 0});
    CHECK(readl(crb, kCtrlStart) == 0);
    CHECK((readl(crb, kCtrlSts) & 1) == 1);
    CHECK(r.get(4) == std::vector<uint8_t>(4, 0));
}

TEST_CASE("CRB cancel reaches the backend only while a command executes, and reads back") {
    Rig r;
    FakeTpmBackend& be = r.be;
    TpmCrb& crb = r.crb;
    writel(crb, kCtrlCancel, 1);  // nothing executing
    CHECK(be.cancels == 0);
    CHECK(readl(crb, kCtrlCancel) == 1);
    linux_send(r, kStartup);  // Linux zeroes it first
    CHECK(readl(crb, kCtrlCancel) == 0);
    writel(crb, kCtrlCancel, 1);
    CHECK(be.cancels == 1);
    crb.command_completed(kOkResponse);
    CHECK(readl(crb, kCtrlStart) == 0);
}

TEST_CASE("CRB bad accesses: unaligned registers read all-ones, out of range does nothing") {
    Rig r;
    FakeTpmBackend& be = r.be;
    TpmCrb& crb = r.crb;
    CHECK(read_n(crb, kLocState + 1, 2) == 0xFFFF);
    CHECK(read_n(crb, kLocState + 2, 4) == 0xFFFFFFFF);
    CHECK(read_n(crb, kLocState + 4, 8) == 0xFFFFFFFF'FFFFFFFFull);  // 8 bytes not 8-aligned
    write_n(crb, kLocCtrl - 1, 0x0100, 2);                          // misaligned: dropped
    CHECK(readl(crb, kLocState) == 0x81);
    write_n(crb, kLocCtrl, 0x00000000'00000001ull, 8);  // aligned 8 bytes: LOC_CTRL then LOC_STS
    CHECK(readl(crb, kLocState) == 0x83);
    uint8_t big[16] = {};
    crb.read(0xFF8, std::span<uint8_t>(big, 16));  // over 8 bytes: all-ones, never past the page
    CHECK(big[0] == 0xFF);
    crb.read(0x1000, std::span<uint8_t>(big, 1));
    CHECK(big[0] == 0xFF);
    crb.write(0xFFC, std::span<const uint8_t>(big, 8));  // runs past the page: dropped
    CHECK(readl(crb, 0xFFC) == 0);
    writel(crb, 0x80, 0xAABBCCDD);  // where QEMU has its buffer: reserved here
    CHECK(readl(crb, 0x80) == 0);
    CHECK(read_n(crb, 0x80, 8) == 0);
    CHECK(read_n(crb, 0xFFD, 3) == 0xFFFFFF);  // unaligned: all-ones
    CHECK(readl(crb, 0x74) == 0);  // reserved register words read 0
}

TEST_CASE("CRB copies the command out of guest RAM once: a guest changing it after CTRL_START changes nothing") {
    Rig r;
    std::vector<uint8_t> cmd = kStartup;
    linux_send(r, cmd);
    REQUIRE(r.be.submits.size() == 1);
    std::fill(r.ram.begin(), r.ram.end(), uint8_t{0xEE});  // scribbled on while the TPM executes
    CHECK(r.be.submits[0].command == kStartup);
    CHECK(readl(r.crb, kCtrlStart) == 1);
    r.crb.command_completed(kOkResponse);
    CHECK(r.get(kOkResponse.size()) == kOkResponse);
}

TEST_CASE("CRB with a buffer address outside guest RAM: tpmSts, never a host access") {
    Rig r(4096, 0xFED50000);  // the RAM is elsewhere
    CHECK(readl(r.crb, kCmdLaddr) == 0xFED50000);
    linux_send(r, kStartup);
    CHECK(r.be.submits.empty());
    CHECK((readl(r.crb, kCtrlSts) & 1) == 1);
    CHECK(readl(r.crb, kCtrlStart) == 0);
}

TEST_CASE("CRB buffer above 4 GiB: the high address words say so") {
    FakeTpmBackend be;
    std::vector<uint8_t> ram(kCapacity);
    GuestMemory mem({{0x1'2345'6000, kCapacity, ram.data()}});
    TpmCrb crb(be, mem, 0x1'2345'6000, kCapacity);
    CHECK(readl(crb, kCmdLaddr) == 0x23456000);
    CHECK(readl(crb, kCmdHaddr) == 1);
    CHECK(read_n(crb, kRspAddr, 8) == 0x1'2345'6000ull);
}
