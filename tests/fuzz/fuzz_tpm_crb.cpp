// libFuzzer target for the TPM CRB device model. The input is a configuration byte (backend
// buffer size, established flag, where the buffer's guest RAM is) followed by operations: MMIO
// reads and writes of 1/2/4/8 (and odd) sizes at any offset of the page (and past it) with any
// value, whole commands through the Linux tpm_crb sequence (the command written into the buffer's
// RAM), the guest scribbling on that RAM at any time, backend completions with arbitrary response
// bytes (up to 8 KiB) and cancels. Sanitizers catch memory errors and UB; the checks below catch
// broken invariants (the device never writes guest RAM past the buffer's size; the register page
// served from memory, devices/register_mirror.hpp, always reads what the registers read).
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "devices/register_mirror.hpp"
#include "devices/tpm_crb.hpp"
#include "fuzz_support.hpp"
#include "vmm/base/guest_memory.hpp"

using namespace minivmm;

namespace {

using fuzz::check;
using fuzz::Input;

class FuzzBackend final : public TpmPort {
public:
    FuzzBackend(size_t buffer, bool established) : buf_(buffer), est_(established) {}
    TpmVersion version() const noexcept override { return TpmVersion::v2_0; }
    size_t buffer_size() const noexcept override { return buf_; }
    void submit(uint8_t locality, std::span<const uint8_t> command) noexcept override {
        check(!outstanding);  // one command at a time
        check(locality == 0);
        check(command.size() >= crb::kHeaderSize || command.size() == buf_);  // a header, unless cut to the buffer
        check(command.size() <= crb::kMaxBufferSize && command.size() <= buf_);
        volatile uint8_t sink = 0;
        for (uint8_t b : command) sink = sink ^ b;
        outstanding = true;
    }
    void cancel() noexcept override { ++cancels; }
    bool established() const noexcept override { return est_; }
    void reset_established(uint8_t) noexcept override { check(false); }  // locality 0 never may

    bool outstanding = false;
    unsigned cancels = 0;

private:
    size_t buf_;
    bool est_;
};

constexpr size_t kBufferSizes[8] = {4096, 8192, 1024, 128, 16, 10, 0, 1 << 16};
constexpr uint64_t kGpa = 0xFED41000;
constexpr size_t kCapacity = 0x2000, kCanary = 64;
constexpr size_t kAccessSizes[8] = {1, 2, 4, 8, 1, 4, 3, 0};

uint64_t pick_offset(Input& in) {
    const uint16_t raw = in.u16();
    if ((raw & 0xF000) == 0xF000) return 0x1000 - (raw & 0xF);  // near the end of the page
    return (raw & 0x800) ? (raw & 0xFFF) : (raw & 0x7F);         // mostly the register block
}

uint32_t readl(TpmCrb& crb, uint64_t off) {
    uint8_t b[4];
    crb.read(off, b);
    return static_cast<uint32_t>(load_le(b));
}
void writel(Device& crb, uint64_t off, uint32_t v) {
    uint8_t b[4];
    store_le(b, v);
    crb.write(off, b);
}

void do_read(TpmCrb& crb, uint64_t offset, size_t n) {
    uint8_t buf[16];
    for (uint8_t& b : buf) b = 0xA5;
    crb.read(offset, std::span<uint8_t>(buf + 4, n));
    for (size_t i = 0; i < 4; ++i) check(buf[i] == 0xA5 && buf[4 + n + i] == 0xA5);  // wrote exactly n bytes
    if (n == 0 || n > 8 || offset + n > 0x1000) {
        for (size_t i = 0; i < n; ++i) check(buf[4 + i] == 0xFF);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Input in(data, size);
    const uint8_t config = in.u8();
    FuzzBackend backend(kBufferSizes[config & 7], (config & 8) != 0);
    // The buffer's RAM, and past it bytes the device must never touch; with config bit 4 the
    // registers point where there is no RAM.
    std::vector<uint8_t> ram(kCapacity + kCanary, 0xC5);
    const GuestMemory memory({{kGpa, kCapacity, ram.data()}});
    const uint64_t gpa = (config & 0x10) ? 0xFED50000 : kGpa;
    TpmCrb crb(backend, memory, gpa, kCapacity);
    // The guest's writes go through the register page the machine serves from memory (a
    // read-only KVM slot): after every operation the page must read what the registers read.
    alignas(4) std::array<uint8_t, crb::kPageSize> page;
    page.fill(0x5A);
    RegisterMirror mirror(crb, page, crb::kRegisterSpace, crb::kChangingRegisters);
    const uint32_t buffer_size = static_cast<uint32_t>(std::min(kBufferSizes[config & 7], kCapacity));

    for (unsigned ops = 0; !in.empty() && ops < 4096; ++ops) {
        const uint8_t op = in.u8();
        switch (op & 7) {  // size selector in bits 3..5
        case 0:
        case 7: do_read(crb, pick_offset(in), kAccessSizes[(op >> 3) & 7]); break;
        case 1: {
            const uint64_t off = pick_offset(in);
            const size_t n = kAccessSizes[(op >> 3) & 7];
            const uint64_t v = in.u64();
            uint8_t buf[8];
            store_le(buf, v);
            mirror.write(off, std::span<const uint8_t>(buf, n));
            break;
        }
        case 2: {  // a whole command, as Linux tpm_crb sends it
            const std::vector<uint8_t> cmd = in.bytes(in.u8());
            writel(mirror, 0x08, 1);
            writel(mirror, 0x40, 1);
            writel(mirror, 0x48, 0);
            mirror.write(0x80, std::span<const uint8_t>());  // empty access: ignored
            std::copy_n(cmd.begin(), std::min(cmd.size(), kCapacity), ram.begin());
            const bool was = backend.outstanding;
            writel(mirror, 0x4C, 1);
            check(crb.command_outstanding() == backend.outstanding);
            if (!was && backend.outstanding) check(readl(crb, 0x4C) == 1);
            break;
        }
        case 3: {  // the backend answers (also when nothing is outstanding)
            const std::vector<uint8_t> rsp = in.bytes(in.u16() % 8192);
            const bool was = backend.outstanding;
            crb.command_completed(rsp);
            mirror.refresh();  // as the worker's completion does
            backend.outstanding = false;
            check(!crb.command_outstanding());
            check(readl(crb, 0x4C) == 0);
            if (was && rsp.size() < crb::kHeaderSize) check((readl(crb, 0x44) & 1) == 1);
            break;
        }
        case 4: writel(mirror, 0x48, 1); break;
        case 5: writel(mirror, 0x08, op & 0x80 ? 2 : 1); break;
        case 6: {  // the guest (another vCPU) writes the buffer's RAM, also while a command runs
            const size_t at = in.u16() % kCapacity;
            const std::vector<uint8_t> bytes = in.bytes(in.u8());
            std::copy_n(bytes.begin(), std::min(bytes.size(), kCapacity - at), ram.begin() + static_cast<ptrdiff_t>(at));
            break;
        }
        }
        // Invariants: the register block always decodes; start mirrors the backend.
        check((readl(crb, 0x00) & 0x80) == 0x80);
        check(readl(crb, 0x58) == buffer_size && readl(crb, 0x64) == buffer_size && readl(crb, 0x5C) == gpa && readl(crb, 0x60) == 0);
        for (size_t i = kCapacity; i < ram.size(); ++i) check(ram[i] == 0xC5);
        check(((readl(crb, 0x4C) & 1) == 1) == backend.outstanding);
        for (uint32_t off = 0; off < crb::kPageSize; off += 4)
            check(load_le(std::span<const uint8_t>(page.data() + off, 4)) ==
                  (off < crb::kRegisterSpace ? readl(crb, off) : 0x5A5A5A5Au));
    }
    return 0;
}
