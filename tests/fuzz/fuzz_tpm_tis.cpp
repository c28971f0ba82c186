// libFuzzer target for the TPM TIS device model. The input is decoded as a configuration byte
// (TPM version, backend buffer size, established flag, IRQ line or polled) followed by
// operations: MMIO reads and writes of 1/2/4/8 (and odd) sizes at any offset with any value,
// whole commands sent through the FIFO, backend completions with arbitrary response bytes (up to
// 8 KiB), commandCancel, relinquish and machine reset (as vmm/main.cpp does it: the command in
// flight is abandoned and a new device is built). Sanitizers catch memory errors and UB;
// the checks below catch broken invariants.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <span>
#include <vector>

#include "devices/tpm_tis.hpp"

using namespace minivmm;

namespace {

[[noreturn]] void violated() { __builtin_trap(); }
void check(bool ok) {
    if (!ok) violated();
}

class Input {
public:
    Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
    bool empty() const { return pos_ >= size_; }
    uint8_t u8() { return pos_ < size_ ? data_[pos_++] : 0; }
    uint16_t u16() { return static_cast<uint16_t>(u8() | u8() << 8); }
    uint64_t u64() {
        uint64_t v = 0;
        for (int i = 0; i < 8; ++i) v |= uint64_t{u8()} << (8 * i);
        return v;
    }
    std::vector<uint8_t> bytes(size_t n) {  // input bytes first, then a fill pattern
        std::vector<uint8_t> out(n);
        for (size_t i = 0; i < n; ++i) out[i] = pos_ < size_ ? data_[pos_++] : static_cast<uint8_t>(i);
        return out;
    }

private:
    const uint8_t* data_;
    size_t size_;
    size_t pos_ = 0;
};

class FuzzBackend final : public TpmPort {
public:
    FuzzBackend(TpmVersion v, size_t buffer, bool established) : ver_(v), buf_(buffer), est_(established) {}
    TpmVersion version() const noexcept override { return ver_; }
    size_t buffer_size() const noexcept override { return buf_; }
    void submit(uint8_t locality, std::span<const uint8_t> command) noexcept override {
        check(!outstanding);  // one command at a time
        check(locality < 4);  // locality 4 cannot be owned by software
        check(command.size() <= tis::kBufferMax && command.size() <= buf_);
        volatile uint8_t sink = 0;
        for (uint8_t b : command) sink = sink ^ b;  // let ASan see every byte
        outstanding = true;
    }
    void cancel() noexcept override { ++cancels; }
    bool established() const noexcept override { return est_; }
    void reset_established(uint8_t locality) noexcept override { check(locality == 3); }

    bool outstanding = false;
    unsigned cancels = 0;

private:
    TpmVersion ver_;
    size_t buf_;
    bool est_;
};

class FuzzIrq final : public IrqLine {
public:
    void set(bool l) noexcept override {
        check(l != level);  // the device only reports edges of its level
        level = l;
    }
    bool level = false;
};

constexpr size_t kBufferSizes[8] = {4096, 4096, 1024, 128, 16, 1, 0, 1 << 16};
constexpr size_t kAccessSizes[8] = {1, 2, 4, 8, 1, 4, 3, 0};

uint64_t pick_offset(Input& in) {
    const uint16_t raw = in.u16();
    if ((raw & 0xF000) == 0xF000) return 0x5000 - (raw & 0xF);  // near the end of the window
    const uint64_t locality = (raw >> 12) % 5;
    // Bias towards the register block of the page; sometimes anywhere in it.
    const uint64_t off = (raw & 0x800) ? (raw & 0xFFF) : (raw & 0xFF);
    return (locality << 12) | off;
}

void do_read(TpmTis& tis, uint64_t offset, size_t n) {
    uint8_t buf[16];
    for (uint8_t& b : buf) b = 0xA5;
    tis.read(offset, std::span<uint8_t>(buf + 4, n));
    for (size_t i = 0; i < 4; ++i) check(buf[i] == 0xA5 && buf[4 + n + i] == 0xA5);  // wrote exactly n bytes
    // Decoded: 1/2/4 bytes inside one 4-byte register word, or an 8-byte access on an 8-byte
    // boundary (two words). Everything else reads all-ones.
    const bool decoded = (n == 1 || n == 2 || n == 4) ? (offset & 3) + n <= 4 : n == 8 && offset % 8 == 0;
    if (!decoded || offset + n > 0x5000) {
        for (size_t i = 0; i < n; ++i) check(buf[4 + i] == 0xFF);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Input in(data, size);
    const uint8_t config = in.u8();
    FuzzBackend backend(config & 1 ? TpmVersion::v1_2 : TpmVersion::v2_0, kBufferSizes[(config >> 1) & 7],
                        (config & 0x10) != 0);
    FuzzIrq irq;
    std::optional<TpmTis> device;
    device.emplace(backend, (config & 0x20) ? &irq : nullptr);

    for (unsigned ops = 0; !in.empty() && ops < 4096; ++ops) {
        const uint8_t op = in.u8();
        TpmTis& tis = *device;  // not used after case 7 replaces the device
        switch (op % 8) {
        case 0:
        case 1: {
            const uint64_t offset = pick_offset(in);
            do_read(tis, offset, kAccessSizes[(op >> 3) & 7]);
            break;
        }
        case 2:
        case 3: {
            const uint64_t offset = pick_offset(in);
            const size_t n = kAccessSizes[(op >> 3) & 7];
            uint8_t buf[8];
            const uint64_t v = in.u64();
            for (size_t i = 0; i < 8; ++i) buf[i] = static_cast<uint8_t>(v >> (8 * i));
            tis.write(offset, std::span<const uint8_t>(buf, n));
            break;
        }
        case 4: {  // the backend answers (or answers when nothing is outstanding)
            const size_t len = in.u16() % 8193;
            const std::vector<uint8_t> rsp = in.bytes(len);
            backend.outstanding = false;
            tis.command_completed(rsp);
            break;
        }
        case 5: {  // a whole command through the FIFO of one locality
            const unsigned l = (op >> 3) % 5;
            const uint64_t base = uint64_t{l} << 12;
            const uint8_t req = 0x02, ready = 0x40, go = 0x20;
            tis.write(base, std::span<const uint8_t>(&req, 1));
            tis.write(base + 0x18, std::span<const uint8_t>(&ready, 1));
            const std::vector<uint8_t> cmd = in.bytes(in.u8() % 64);
            for (uint8_t b : cmd) tis.write(base + 0x24, std::span<const uint8_t>(&b, 1));
            tis.write(base + 0x18, std::span<const uint8_t>(&go, 1));
            break;
        }
        case 6: {  // commandCancel or relinquish from a locality
            const unsigned l = (op >> 3) % 5;
            const uint8_t cancel = 0x01, relinquish = 0x20;
            if (op & 0x80) tis.write((uint64_t{l} << 12) + 0x1B, std::span<const uint8_t>(&cancel, 1));
            else tis.write(uint64_t{l} << 12, std::span<const uint8_t>(&relinquish, 1));
            break;
        }
        case 7:
            if ((op >> 3) == 0) {  // machine reset: the old worker drops the response, a new VM has a new line
                backend.outstanding = false;
                irq.level = false;
                device.emplace(backend, (config & 0x20) ? &irq : nullptr);
            }
            break;
        }
        // Invariants after every operation (on the new device after a reset).
        TpmTis& now = *device;
        check(now.command_outstanding() == backend.outstanding);
        check(now.active_locality() == tis::kNoLocality || now.active_locality() < 4);
        if (config & 0x20) check(irq.level == now.irq_level());
        const uint8_t a = now.active_locality();
        if (a != tis::kNoLocality) {
            uint8_t sts[4];
            now.read((uint64_t{a} << 12) + 0x18, sts);
            const uint32_t burst = (uint32_t{sts[1]} | uint32_t{sts[2]} << 8);
            check(burst <= tis::kBufferMax);
            check((sts[0] & 0x23) == 0);  // STS bits 0, 1 and 5 read as zero (Linux TPM_STS_READ_ZERO)
        }
    }
    return 0;
}
