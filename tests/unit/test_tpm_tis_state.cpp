// Snapshots of the TPM front ends (devices/device_state.hpp): TpmTis with all five localities,
// interrupts and a half-read response; TpmCrb's registers (the page a RegisterMirror serves from
// memory included); TpmPpi's mailbox. Each round trip: save, a NEW device, load, the same
// register reads, the next command works. Refusals: truncated, bad version, a trailing byte,
// out-of-range values, a command executing; a refused blob leaves the device unchanged.
#include <doctest/doctest.h>

#include <cstring>
#include <vector>

#include "devices/register_mirror.hpp"
#include "devices/tpm_crb.hpp"
#include "devices/tpm_ppi.hpp"
#include "vmm/base/guest_memory.hpp"
#include "tpm_tis_fakes.hpp"

using namespace minivmm;
using namespace minivmm::test;

namespace {

// Every register word of every locality, FIFO excluded (a FIFO read consumes a byte).
std::vector<uint32_t> tis_registers(TpmTis& t) {
    std::vector<uint32_t> out;
    for (unsigned l = 0; l < 5; ++l)
        for (uint32_t r : {kAccess, kIntEnable, kIntVector, kIntStatus, kIntfCapability, kSts, kInterfaceId, kDidVid, kRid})
            out.push_back(readl(t, reg(l, r)));
    return out;
}

// A TIS in an interesting state: interrupts enabled on locality 0 (one latched, line high),
// locality 2 waiting for use, the interface locked, and half of a response read.
void busy_tis(TpmTis& t, FakeTpmBackend& be) {
    writeb(t, reg(0, kAccess), 0x02);
    writel(t, reg(0, kIntEnable), 0x80000000 | 0x87);
    writel(t, reg(0, kInterfaceId), 1u << 19);
    send_command(t, 0, kStartup);
    REQUIRE(be.submits.size() == 1);
    t.command_completed(kOkResponse);
    (void)read_response(t, 0, 4);
    writeb(t, reg(2, kAccess), 0x02);  // pending request
}

// Byte `at` of the blob changed to `v`.
std::vector<uint8_t> patched(std::vector<uint8_t> blob, size_t at, uint8_t v) {
    blob.at(at) = v;
    return blob;
}

// TIS blob layout (devices/tpm_tis_state.cpp): header 10 bytes, 14 bytes per locality.
constexpr size_t kLocAt = 10, kLocSize = 14;

}  // namespace

TEST_CASE("tis state: round trip into a new device, then the rest of the response and a next command") {
    for (TpmVersion v : {TpmVersion::v2_0, TpmVersion::v1_2}) {
        CAPTURE(static_cast<int>(v));
        FakeTpmBackend be(v);
        RecordingIrq irq;
        TpmTis a(be, &irq);
        busy_tis(a, be);
        REQUIRE(irq.level);
        const std::vector<uint8_t> blob = saved_state(a);

        FakeTpmBackend be2(v);
        RecordingIrq irq2;
        TpmTis b(be2, &irq2);
        REQUIRE(b.load_state(blob));
        CHECK(irq2.levels == std::vector<bool>{true});  // driven to the restored level
        CHECK(tis_registers(b) == tis_registers(a));
        CHECK(saved_state(b) == blob);
        CHECK(b.active_locality() == 0);
        const std::vector<uint8_t> rest(kOkResponse.begin() + 4, kOkResponse.end());
        CHECK(read_response(b, 0, 6) == rest);
        CHECK(read_response(a, 0, 6) == rest);
        CHECK(tis_registers(b) == tis_registers(a));  // both completed the read the same way
        // The next command goes to the new port.
        writeb(b, reg(0, kSts), 0x40);
        send_command(b, 0, kStartup);
        REQUIRE(be2.submits.size() == 1);
        CHECK(be2.submits[0].command == kStartup);
        b.command_completed(kOkResponse);
        CHECK(read_response(b, 0, 10) == kOkResponse);
    }
}

TEST_CASE("tis state: a fresh device round-trips, and its IRQ line is driven low") {
    FakeTpmBackend be;
    TpmTis a(be, nullptr);
    RecordingIrq irq;
    TpmTis b(be, &irq);
    REQUIRE(b.load_state(saved_state(a)));
    CHECK(irq.levels == std::vector<bool>{false});
    CHECK(tis_registers(b) == tis_registers(a));
}

TEST_CASE("tis state: refused blobs leave the device unchanged") {
    FakeTpmBackend be;
    RecordingIrq irq;
    TpmTis src(be, &irq);
    busy_tis(src, be);
    const std::vector<uint8_t> blob = saved_state(src);
    REQUIRE(blob.size() == kLocAt + 5 * kLocSize + 1 + 4 + 4096 + 4 + 4 + 1);

    FakeTpmBackend be2;
    RecordingIrq irq2;
    TpmTis dst(be2, &irq2);
    const std::vector<uint8_t> before = saved_state(dst);
    std::vector<std::pair<const char*, std::vector<uint8_t>>> bad = {
        {"empty", {}},
        {"truncated", std::vector<uint8_t>(blob.begin(), blob.end() - 1)},
        {"trailing byte", [&] { auto b = blob; b.push_back(0); return b; }()},
        {"format version 2", patched(blob, 0, 2)},
        {"TPM 1.2 blob into a TPM 2.0 device", patched(blob, 1, 1)},
        {"another buffer size", patched(blob, 3, 0x08)},
        {"interface id without its base", patched(blob, 7, 0)},
        {"locality 0 executing", patched(blob, kLocAt, 3)},
        {"unknown state", patched(blob, kLocAt, 9)},
        {"access without tpmRegValidSts", patched(blob, kLocAt + 1, 0x20)},
        {"access with seize stored", patched(blob, kLocAt + 1, 0xA8)},
        {"two active localities", patched(blob, kLocAt + kLocSize + 1, 0xA0)},
        {"STS of another family", patched(blob, kLocAt + 2 + 3, 0x00)},
        {"STS with tpmGo stored", patched(blob, kLocAt + 2, 0xB0)},
        {"INT_STATUS with unsupported bits", patched(blob, kLocAt + 10, 0x40)},
        {"locality 4 requesting use", patched(blob, kLocAt + 4 * kLocSize + 1, 0x82)},
        {"active locality 4", patched(blob, kLocAt + 5 * kLocSize, 4)},
        {"active locality 7", patched(blob, kLocAt + 5 * kLocSize, 7)},
        {"buffer length field not 4096", patched(blob, kLocAt + 5 * kLocSize + 1, 0xFF)},
        {"FIFO position past the buffer", patched(blob, blob.size() - 9 + 1, 0x20)},
        {"response length past the buffer", patched(blob, blob.size() - 5 + 1, 0x20)},
        {"boolean 2", patched(blob, blob.size() - 1, 2)},
    };
    // The line level with no interrupt latched anywhere.
    std::vector<uint8_t> no_ints = blob;
    for (size_t i = 0; i < 4; ++i) no_ints = patched(no_ints, kLocAt + 10 + i, 0);
    bad.push_back({"line high with nothing latched", no_ints});
    for (const auto& entry : bad) {
        const char* what = entry.first;
        CAPTURE(what);
        CHECK_FALSE(dst.load_state(entry.second));
        CHECK(saved_state(dst) == before);
    }
    CHECK(irq2.levels.empty());
    // The same blob with the line low is fine (an event latched, line lowered by another locality).
    CHECK(dst.load_state(patched(blob, blob.size() - 1, 0)));
}

TEST_CASE("tis state: a blob saved while a command executes is refused") {
    FakeTpmBackend be;
    TpmTis a(be, nullptr);
    send_command(a, 0, kStartup);
    REQUIRE(a.command_outstanding());
    TpmTis b(be, nullptr);
    CHECK_FALSE(b.load_state(saved_state(a)));
}

TEST_CASE("crb state: round trip, the mirror page shows the restored registers, the next command works") {
    constexpr uint64_t kGpa = 0xFED41000;
    constexpr size_t kCap = 0x2000;
    FakeTpmBackend be(TpmVersion::v2_0, 4096);
    std::vector<uint8_t> ram(kCap, 0);
    GuestMemory mem({{kGpa, kCap, ram.data()}});
    TpmCrb a(be, mem, kGpa, kCap);
    writel(a, crb::kRegLocCtrl, 1);
    writel(a, crb::kRegCtrlReq, 1);
    writel(a, crb::kRegCtrlCancel, 1);
    const std::vector<uint8_t> blob = saved_state(a);

    FakeTpmBackend be2(TpmVersion::v2_0, 4096);
    TpmCrb b(be2, mem, kGpa, kCap);
    alignas(4096) static uint8_t page[crb::kPageSize];
    RegisterMirror mirror(b, std::span<uint8_t>(page, sizeof page), crb::kRegisterSpace, crb::kChangingRegisters);
    REQUIRE(b.load_state(blob));
    mirror.refresh();
    for (uint32_t off = 0; off < crb::kRegisterSpace; off += 4) {
        CAPTURE(off);
        uint32_t in_page;
        std::memcpy(&in_page, page + off, 4);
        CHECK(readl(b, off) == readl(a, off));
        CHECK(in_page == readl(a, off));
    }
    CHECK(saved_state(b) == blob);
    writel(b, crb::kRegCtrlCancel, 0);
    std::copy(kStartup.begin(), kStartup.end(), ram.begin());
    writel(b, crb::kRegCtrlStart, 1);
    REQUIRE(be2.submits.size() == 1);
    CHECK(be2.submits[0].command == kStartup);
    b.command_completed(kOkResponse);
    CHECK(std::vector<uint8_t>(ram.begin(), ram.begin() + 10) == kOkResponse);

    // Refusals: truncated, trailing byte, version, another buffer, a command started, bad cancel.
    const std::vector<uint8_t> before = saved_state(b);
    auto started = blob;
    started[1 + 4 + 8 + 3] = 1;
    auto cancel2 = blob;
    cancel2[blob.size() - 4] = 2;
    for (const auto& bad : {std::vector<uint8_t>(blob.begin(), blob.end() - 1), [&] { auto x = blob; x.push_back(0); return x; }(),
                            patched(blob, 0, 0), patched(blob, 2, 0x20), patched(blob, 6, 0), started, cancel2,
                            patched(blob, 13, 2)}) {
        CHECK_FALSE(b.load_state(bad));
        CHECK(saved_state(b) == before);
    }
}

TEST_CASE("ppi state: the mailbox and the pending request survive; unsupported operations are refused") {
    TpmPpi a({ppi::kOpClear});
    writel(a, ppi::kOp, ppi::kOpClear);
    writel(a, ppi::kFunc, ppi::kFnSubmitRequest);
    const std::vector<uint8_t> blob = saved_state(a);
    TpmPpi b({ppi::kOpClear});
    REQUIRE(b.load_state(blob));
    REQUIRE(b.pending());
    CHECK(b.pending()->operation == ppi::kOpClear);
    for (uint64_t off = 0; off < ppi::kRegisterBlockSize; off += 4) CHECK(readl(b, off) == readl(a, off));
    writel(b, ppi::kFunc, ppi::kFnGetRequest);
    CHECK(readl(b, ppi::kRet1) == ppi::kOpClear);

    TpmPpi c({});  // a platform that carries out nothing: the pending clear is not one of its
    const std::vector<uint8_t> before = saved_state(c);
    CHECK_FALSE(c.load_state(blob));
    CHECK_FALSE(b.load_state(std::vector<uint8_t>(blob.begin(), blob.end() - 1)));
    CHECK_FALSE(b.load_state(patched(blob, 0, 2)));
    auto trailing = blob;
    trailing.push_back(0);
    CHECK_FALSE(b.load_state(trailing));
    auto param_without_op = saved_state(c);
    param_without_op[1 + 4 * 8] = 1;  // the pending request's parameter, operation 0
    CHECK_FALSE(c.load_state(param_without_op));
    CHECK(saved_state(c) == before);
}
