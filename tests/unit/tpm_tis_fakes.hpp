// Test doubles and register helpers for the TpmTis unit tests: a scripted TPM backend (records
// submits, the test delivers completions), a recording IRQ line, and readb/readl/writeb/writel
// in the style of QEMU's qtests (TIS_REG(locality, register)).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "devices/tpm_tis.hpp"

namespace minivmm::test {

class FakeTpmBackend final : public TpmPort {
public:
    struct Submit {
        uint8_t locality;
        std::vector<uint8_t> command;
    };

    explicit FakeTpmBackend(TpmVersion v = TpmVersion::v2_0, size_t buffer = 4096) : ver(v), buf(buffer) {}

    TpmVersion version() const noexcept override { return ver; }
    size_t buffer_size() const noexcept override { return buf; }
    void submit(uint8_t locality, std::span<const uint8_t> command) noexcept override {
        submits.push_back({locality, std::vector<uint8_t>(command.begin(), command.end())});
    }
    void cancel() noexcept override { ++cancels; }
    bool established() const noexcept override { return est; }
    void reset_established(uint8_t locality) noexcept override { reset_established_calls.push_back(locality); }

    TpmVersion ver;
    size_t buf;
    bool est = false;
    std::vector<Submit> submits;
    int cancels = 0;
    std::vector<uint8_t> reset_established_calls;
};

class RecordingIrq final : public IrqLine {
public:
    void set(bool level) noexcept override {
        levels.push_back(level);
        this->level = level;
    }
    std::vector<bool> levels;
    bool level = false;
};

// Register offsets (PTP FIFO register space), as in QEMU's include/hw/acpi/tpm.h.
inline constexpr uint32_t kAccess = 0x00, kIntEnable = 0x08, kIntVector = 0x0C, kIntStatus = 0x10,
                          kIntfCapability = 0x14, kSts = 0x18, kFifo = 0x24, kInterfaceId = 0x30,
                          kXFifo = 0x80, kDidVid = 0xF00, kRid = 0xF04;

constexpr uint64_t reg(unsigned locality, uint32_t r) { return (uint64_t{locality} << 12) + r; }

inline uint64_t read_n(Device& t, uint64_t off, size_t n) {
    uint8_t b[8] = {};
    t.read(off, std::span<uint8_t>(b, n));
    return load_le(std::span<const uint8_t>(b, n));
}
inline void write_n(Device& t, uint64_t off, uint64_t v, size_t n) {
    uint8_t b[8] = {};
    store_le(std::span<uint8_t>(b, n), v);
    t.write(off, std::span<const uint8_t>(b, n));
}
inline uint8_t readb(Device& t, uint64_t off) { return static_cast<uint8_t>(read_n(t, off, 1)); }
inline uint32_t readl(Device& t, uint64_t off) { return static_cast<uint32_t>(read_n(t, off, 4)); }
inline void writeb(Device& t, uint64_t off, uint8_t v) { write_n(t, off, v, 1); }
inline void writel(Device& t, uint64_t off, uint32_t v) { write_n(t, off, v, 4); }

// TPM2_Startup(SU_CLEAR), the command QEMU's tpm-tis qtest transmits.
inline const std::vector<uint8_t> kStartup = {0x80, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x44, 0x00, 0x00};
// A 10-byte TPM2 success response.
inline const std::vector<uint8_t> kOkResponse = {0x80, 0x01, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00};

// Locality `l` takes the TPM, writes commandReady and the command byte by byte, then tpmGo.
inline void send_command(TpmTis& t, unsigned l, const std::vector<uint8_t>& cmd) {
    writeb(t, reg(l, kAccess), 0x02);
    writeb(t, reg(l, kSts), 0x40);
    for (uint8_t b : cmd) writeb(t, reg(l, kFifo), b);
    writeb(t, reg(l, kSts), 0x20);
}

inline std::vector<uint8_t> read_response(TpmTis& t, unsigned l, size_t n) {
    std::vector<uint8_t> out;
    for (size_t i = 0; i < n; ++i) out.push_back(readb(t, reg(l, kFifo)));
    return out;
}

}  // namespace minivmm::test
