// RegisterMirror over a TpmCrb (the machine's use): the page holds the device's registers from the
// start, every write through the mirror reaches the device and shows in the page at once, a
// change made elsewhere (a command completing) shows after refresh(), and the page beyond the
// register space is never touched. The page stands in for the read-only KVM slot's host page.
#include <doctest/doctest.h>

#include <cstring>
#include <vector>

#include "devices/register_mirror.hpp"
#include "devices/tpm_crb.hpp"
#include "devices/tpm_crb_regs.hpp"
#include "vmm/base/guest_memory.hpp"
#include "tpm_tis_fakes.hpp"

using namespace minivmm;
using namespace minivmm::test;

namespace {

constexpr uint64_t kBufferGpa = 0xFED41000;
constexpr size_t kCapacity = 0x2000;

uint32_t page_word(const std::vector<uint8_t>& page, uint32_t offset) {
    uint32_t v;
    std::memcpy(&v, page.data() + offset, 4);
    return v;
}

}  // namespace

TEST_CASE("the mirror page always reads what the CRB's registers read") {
    FakeTpmBackend be(TpmVersion::v2_0, 4096);
    std::vector<uint8_t> ram(kCapacity, 0);
    GuestMemory mem({{kBufferGpa, kCapacity, ram.data()}});
    TpmCrb crb(be, mem, kBufferGpa, kCapacity);
    alignas(4096) static uint8_t storage[crb::kPageSize];
    std::memset(storage, 0xAB, sizeof storage);  // beyond the registers: must stay as it is
    std::vector<uint8_t> page;
    RegisterMirror mirror(crb, std::span<uint8_t>(storage, sizeof storage), crb::kRegisterSpace, crb::kChangingRegisters);
    auto sync = [&] { page.assign(storage, storage + sizeof storage); };
    auto all_registers_match = [&] {
        sync();
        for (uint32_t off = 0; off < crb::kRegisterSpace; off += 4)
            if (page_word(page, off) != readl(crb, off)) return false;
        return true;
    };

    CHECK(all_registers_match());  // rendered at construction
    sync();
    CHECK(page_word(page, crb::kRegLocState) == 0x81);
    CHECK(page_word(page, crb::kRegCmdSize) == 4096);
    CHECK(page_word(page, crb::kRegCmdLaddr) == kBufferGpa);

    writel(mirror, crb::kRegLocCtrl, 1);  // requestAccess: the device saw it, the page shows it
    sync();
    CHECK((page_word(page, crb::kRegLocState) & 0x2) != 0);  // locAssigned
    writel(mirror, crb::kRegCtrlReq, 1);  // cmdReady
    CHECK(all_registers_match());

    const std::vector<uint8_t> cmd = {0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7B, 0, 8};
    std::copy(cmd.begin(), cmd.end(), ram.begin());
    writel(mirror, crb::kRegCtrlStart, 1);
    REQUIRE(be.submits.size() == 1);
    sync();
    CHECK(page_word(page, crb::kRegCtrlStart) == 1);  // executing

    const std::vector<uint8_t> rsp = {0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0};
    crb.command_completed(rsp);  // the worker's completion, before its refresh
    sync();
    CHECK(page_word(page, crb::kRegCtrlStart) == 1);
    mirror.refresh();
    sync();
    CHECK(page_word(page, crb::kRegCtrlStart) == 0);
    CHECK(std::equal(rsp.begin(), rsp.end(), ram.begin()));
    CHECK(all_registers_match());

    for (size_t i = crb::kRegisterSpace; i < sizeof storage; ++i) REQUIRE(storage[i] == 0xAB);
    CHECK(readl(mirror, crb::kRegIntfId) == readl(crb, crb::kRegIntfId));  // a read that exits anyway
    CHECK(mirror.name() == crb.name());
}
