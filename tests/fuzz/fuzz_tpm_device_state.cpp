// libFuzzer target for the snapshot blobs of the TPM interfaces' state (devices/device_state.hpp;
// the other devices: fuzz_device_state): a snapshot is a file a user may be handed. The first byte
// picks the device (TPM TIS 2.0 or 1.2 with an IRQ line, the CRB under its register mirror, the PPI
// mailbox), the rest is the blob given to a fresh device's load_state.
// Checks: a refused blob leaves the device exactly as it was (its own saved state unchanged, no IRQ
// edge); an accepted blob saves back byte for byte (the encoding has one spelling per state), and
// the device then survives register accesses of every kind (ASan/UBSan watch the indexes the blob
// set: the TIS FIFO position, response length and active locality). The TPM devices must then take
// a whole command and its response.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "devices/device_state.hpp"
#include "devices/register_mirror.hpp"
#include "devices/tpm_crb.hpp"
#include "devices/tpm_ppi.hpp"
#include "devices/tpm_tis.hpp"
#include "vmm/base/bytes.hpp"
#include "vmm/base/guest_memory.hpp"

using namespace minivmm;

namespace {

struct CountingIrq : IrqLine {
    int edges = 0;
    void set(bool) noexcept override { ++edges; }
};

void check(bool ok) {
    if (!ok) std::abort();
}

// A TPM port that records commands; the fuzzer completes them itself.
struct FakePort : TpmPort {
    explicit FakePort(TpmVersion v) : v(v) {}
    TpmVersion version() const noexcept override { return v; }
    size_t buffer_size() const noexcept override { return 4096; }
    void submit(uint8_t, std::span<const uint8_t>) noexcept override { ++submits; }
    void cancel() noexcept override {}
    bool established() const noexcept override { return false; }
    void reset_established(uint8_t) noexcept override {}
    TpmVersion v;
    int submits = 0;
};

void put32(Device& d, uint64_t off, uint32_t v) {
    uint8_t b[4];
    store_le(std::span<uint8_t>(b), v);
    d.write(off, b);
}
uint32_t get32(Device& d, uint64_t off) {
    uint8_t b[4] = {};
    d.read(off, b);
    return static_cast<uint32_t>(load_le(std::span<const uint8_t>(b)));
}

const uint8_t kStartup[] = {0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x44, 0, 0};
const uint8_t kOk[] = {0x80, 0x01, 0, 0, 0, 0x0a, 0, 0, 0, 0};

void fuzz_tis(std::span<const uint8_t> blob, TpmVersion v) {
    FakePort port(v);
    CountingIrq irq;
    TpmTis tis(port, &irq);
    const std::vector<uint8_t> before = saved_state(tis);
    if (!tis.load_state(blob)) {
        check(saved_state(tis) == before && irq.edges == 0);
        return;
    }
    check(saved_state(tis) == std::vector<uint8_t>(blob.begin(), blob.end()) && irq.edges == 1);
    check(!tis.command_outstanding());
    for (uint64_t loc = 0; loc < 5; ++loc)
        for (uint64_t off = 0; off < 0x40; off += 4) (void)get32(tis, loc << 12 | off);
    for (int i = 0; i < 8; ++i) (void)get32(tis, 0x24);  // the rest of a response, if any
    // Locality 0 takes the TPM (a seize if another holds it), and one command goes through.
    uint8_t b = 0x08;
    tis.write(0, std::span<const uint8_t>(&b, 1));
    b = 0x02;
    tis.write(0, std::span<const uint8_t>(&b, 1));
    b = 0x40;
    tis.write(0x18, std::span<const uint8_t>(&b, 1));
    tis.write(0x18, std::span<const uint8_t>(&b, 1));
    for (uint8_t c : kStartup) tis.write(0x24, std::span<const uint8_t>(&c, 1));
    b = 0x20;
    tis.write(0x18, std::span<const uint8_t>(&b, 1));
    if (port.submits > 0) {
        tis.command_completed(kOk);
        for (int i = 0; i < 3; ++i) (void)get32(tis, 0x24);
    }
}

void fuzz_crb(std::span<const uint8_t> blob) {
    constexpr uint64_t kGpa = 0xFED41000;
    FakePort port(TpmVersion::v2_0);
    std::vector<uint8_t> ram(0x2000, 0);
    GuestMemory mem({{kGpa, ram.size(), ram.data()}});
    TpmCrb crb(port, mem, kGpa, static_cast<uint32_t>(ram.size()));
    std::vector<uint8_t> page(crb::kPageSize, 0);
    RegisterMirror mirror(crb, page, crb::kRegisterSpace, crb::kChangingRegisters);
    const std::vector<uint8_t> before = saved_state(crb);
    if (!crb.load_state(blob)) {
        check(saved_state(crb) == before);
        return;
    }
    check(saved_state(crb) == std::vector<uint8_t>(blob.begin(), blob.end()));
    mirror.refresh();
    for (uint32_t off = 0; off < crb::kRegisterSpace; off += 4)  // the page shows the loaded registers
        check(load_le(std::span<const uint8_t>(page).subspan(off, 4)) == get32(crb, off));
    std::copy(std::begin(kStartup), std::end(kStartup), ram.begin());
    put32(mirror, crb::kRegLocCtrl, crb::kLocCtrlRequestAccess);
    put32(mirror, crb::kRegCtrlReq, crb::kCtrlReqCmdReady);
    put32(mirror, crb::kRegCtrlStart, crb::kStartInvoke);
    check(port.submits == 1);
    crb.command_completed(kOk);
}

void fuzz_ppi(std::span<const uint8_t> blob) {
    TpmPpi ppi({ppi::kOpClear, ppi::kOpEnableActivateClear});
    const std::vector<uint8_t> before = saved_state(ppi);
    if (!ppi.load_state(blob)) {
        check(saved_state(ppi) == before);
        return;
    }
    check(saved_state(ppi) == std::vector<uint8_t>(blob.begin(), blob.end()));
    for (uint32_t fn = 2; fn <= 8; ++fn) {
        put32(ppi, ppi::kFunc, fn);
        for (uint64_t off = 0; off < ppi::kRegisterBlockSize; off += 4) (void)get32(ppi, off);
    }
    if (ppi.pending()) ppi.complete(0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const std::span<const uint8_t> blob(data + 1, size - 1);
    // The selector as the seeds were made with the other devices (now fuzz_device_state's) first:
    // 5 TIS 2.0, 6 TIS 1.2, 7 CRB, 8 PPI keep their meaning modulo 4.
    switch (data[0] % 4) {
    case 1: fuzz_tis(blob, TpmVersion::v2_0); break;
    case 2: fuzz_tis(blob, TpmVersion::v1_2); break;
    case 3: fuzz_crb(blob); break;
    default: fuzz_ppi(blob); break;
    }
    return 0;
}
