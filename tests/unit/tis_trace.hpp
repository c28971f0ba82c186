// Parser for TPM TIS MMIO traces recorded with QEMU's trace events (tpm_tis_mmio_read,
// tpm_tis_mmio_write, tpm_tis_data_read), as in tests/data/traces/README.md:
//
//     tpm_tis_mmio_read  read.4(0x00000f00) = 0x00011014
//     tpm_tis_mmio_write write.1(0x00000000) = 0x00000002
//
// Offsets are relative to the TIS base (locality = offset >> 12). Used by the replay tests that
// run a recorded SeaBIOS + Linux boot against TpmTis (with a fake or a real swtpm backend).
#pragma once

#include <cstdint>
#include <istream>
#include <string>
#include <string_view>
#include <vector>

namespace minivmm {

// One guest access. `value` is what the guest wrote or read, truncated to `size` bytes.
// QEMU logs FIFO reads with size 0 (its counter is consumed by the byte loop); their size is
// the number of tpm_tis_data_read lines logged for that access (1 when there are none).
struct TisAccess {
    bool write;
    uint8_t size;  // 1, 2 or 4
    uint32_t offset;
    uint32_t value;
};

// Parses every tpm_tis_mmio_read/_write line; other lines (QEMU's annotations, blank lines) are
// skipped. Throws std::runtime_error naming the line on a malformed read/write line.
std::vector<TisAccess> parse_tis_trace(std::istream& in);

// One command the guest sent (FIFO bytes written after the last commandReady, up to tpmGo) and
// the response it read back (FIFO bytes read after tpmGo; responseRetry restarts it), both cut
// or zero-padded to the paramSize in their 10-byte header (at most 4096 bytes).
struct TisExchange {
    uint8_t locality;
    std::vector<uint8_t> command;
    std::vector<uint8_t> response;
};
std::vector<TisExchange> tis_trace_exchanges(const std::vector<TisAccess>& accesses);

// True for accesses to DATA_FIFO (0x24) or XDATA_FIFO (0x80..0xBF) of any locality.
bool is_tis_fifo_offset(uint32_t offset) noexcept;

// Path of `relative` (e.g. "traces/seabios-linux61-tpm2.trace") in the repository's tests/data
// (fixed at configure time). Throws std::runtime_error naming the path when it is missing.
std::string find_test_data(std::string_view relative);

// The vendored conformance trace (tests/data/traces/seabios-linux61-tpm2.trace: every TIS access
// SeaBIOS and Linux 6.1 made on QEMU with swtpm), parsed. Throws std::runtime_error if it is
// missing or malformed: a missing trace is a failure, never a skip.
std::vector<TisAccess> load_boot_trace();

}  // namespace minivmm
