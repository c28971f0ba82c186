// Conformance against a REAL swtpm: replays every TIS access of the recorded SeaBIOS + Linux 6.1
// boot on QEMU 7.2 + swtpm 0.7.1 (tests/data/traces/seabios-linux61-tpm2.trace, see its README)
// against TpmTis whose backend runs each command on a freshly started `swtpm socket --tpm2`
// through SwtpmBackend, and compares every register read with what the guest saw on QEMU.
//
// What legitimately varies between the two runs, and is therefore not compared:
//  (a) STS polls taken while QEMU was still executing the command: here each command completes
//      synchronously right after the write that submitted it (the "immediate" completion of
//      test_tis_trace_replay.cpp), so those polls already see the response;
//  (b) response bytes past the 10-byte header (random numbers, PCR values, nonces): the byte
//      position inside each response is tracked as FIFO reads happen; the header (tag,
//      paramSize, response code) and reads past the end of the response are compared;
//  (c) ACCESS bit 0 (tpmEstablishment), which follows the swtpm's established flag.
//
// TPM state: the recorded boot starts with SeaBIOS's first access after power-on of a TPM whose
// state was newly manufactured (all four PCR banks allocated: TPM2_GetCapability(PCRS) returns
// 43 bytes and every PCR_Extend carries SHA-1/256/384/512 digests). A fresh state directory plus
// CMD_INIT (power_cycle) reproduces that, so TPM2_Startup(CLEAR) succeeds as recorded and every
// later command finds the same state. The one value SeaBIOS chose at random in the recorded boot
// is the new platform authValue of TPM2_HierarchyChangeAuth (command 0x129, in prepboot); it
// differs here, but the command itself authorises with the (empty) platform auth that Startup
// (CLEAR) restores, and no later command in the trace authorises with TPM_RH_PLATFORM (Linux
// only uses PCR handles, GetCapability, GetRandom, PCR_Read, SelfTest and Shutdown), so every
// response code is expected to be identical and no command is exempted.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "devices/tpm_tis.hpp"
#include "swtpm_process.hpp"
#include "tis_trace.hpp"
#include "vmm/tpm/swtpm_backend.hpp"

using namespace minivmm;
using namespace std::chrono_literals;

namespace {

constexpr size_t kHeaderSize = 10;
constexpr uint32_t kSts = 0x18;
constexpr uint32_t kStsDataAvailable = 0x10;
constexpr uint32_t kStsCommandReady = 0x40;
constexpr uint32_t kStsTpmGo = 0x20;
constexpr uint32_t kStsResponseRetry = 0x02;

// The device side of the TPM: remembers the command TpmTis submits; the replay runs it on the
// swtpm right after the write that submitted it returns (TpmTis forbids completing inside submit).
class SwtpmDeviceBackend final : public TpmPort {
public:
    explicit SwtpmDeviceBackend(SwtpmBackend& tpm) : tpm_(tpm), established_(tpm.established()) {}

    TpmVersion version() const noexcept override { return tpm_.version(); }
    size_t buffer_size() const noexcept override { return tpm_.buffer_size(); }
    void submit(uint8_t locality, std::span<const uint8_t> command) noexcept override {
        submits.push_back({locality, std::vector<uint8_t>(command.begin(), command.end()), {}});
    }
    void cancel() noexcept override {
        ++cancels;
        tpm_.cancel();
    }
    bool established() const noexcept override { return established_; }
    void reset_established(uint8_t locality) noexcept override {
        tpm_.reset_established(locality);
        established_ = tpm_.established();
    }

    // Executes the last submitted command on the swtpm and stores its response.
    const std::vector<uint8_t>& run_last() {
        TisExchange& ex = submits.back();
        ex.response.resize(tpm_.buffer_size());
        ex.response.resize(tpm_.execute(ex.locality, ex.command, ex.response));
        return ex.response;
    }

    std::vector<TisExchange> submits;  // with the swtpm's responses
    int cancels = 0;

private:
    SwtpmBackend& tpm_;
    bool established_;
};

struct ReplayResult {
    size_t accesses = 0, writes = 0, reads = 0;
    size_t compared = 0, matched = 0;   // reads with at least one byte compared, and those equal
    size_t skipped_polls = 0;           // (a)
    size_t masked_reads = 0;            // (b): FIFO reads consisting only of response payload bytes
    size_t masked_bytes = 0;            // (b): response payload bytes not compared
    size_t header_bytes = 0;            // response header bytes read (and compared)
    size_t commands = 0, commands_identical = 0, headers_identical = 0;
    std::vector<std::string> mismatches;
    std::vector<std::string> header_mismatches;
};

bool is_sts_read(const TisAccess& a) { return !a.write && (a.offset & 0xFFC) == kSts && (a.offset & 3) == 0; }

// The STS control bits of a write, as they land in the register word (cf. tis_trace.cpp).
uint32_t sts_write_flags(const TisAccess& a) {
    if (!a.write || (a.offset & 0xFFC) != kSts) return 0;
    return (a.value << ((a.offset & 3) * 8)) & (kStsCommandReady | kStsTpmGo | kStsResponseRetry);
}

std::string hex_bytes(const std::vector<uint8_t>& v, size_t n) {
    std::string s;
    char buf[4];
    for (size_t i = 0; i < n && i < v.size(); ++i) {
        std::snprintf(buf, sizeof(buf), "%02x", v[i]);
        s += buf;
    }
    return s;
}

uint32_t command_code(const std::vector<uint8_t>& cmd) {
    if (cmd.size() < kHeaderSize) return 0;
    return uint32_t{cmd[6]} << 24 | uint32_t{cmd[7]} << 16 | uint32_t{cmd[8]} << 8 | cmd[9];
}

// Compares the swtpm's response header for command `k` with the recorded one.
void check_header(ReplayResult& r, size_t k, const TisExchange& ours, const std::vector<TisExchange>& recorded) {
    const std::vector<uint8_t> none;
    const std::vector<uint8_t>& want = k < recorded.size() ? recorded[k].response : none;
    const size_t n = std::min(kHeaderSize, want.size());
    if (ours.response.size() >= n && want.size() >= kHeaderSize &&
        std::equal(want.begin(), want.begin() + n, ours.response.begin())) {
        ++r.headers_identical;
        return;
    }
    char code[16];
    std::snprintf(code, sizeof(code), "0x%08x", command_code(ours.command));
    r.header_mismatches.push_back("command #" + std::to_string(k) + " (code " + code + ", locality " +
                                  std::to_string(ours.locality) + "): swtpm response header " +
                                  hex_bytes(ours.response, kHeaderSize) + " (" + std::to_string(ours.response.size()) +
                                  " bytes), trace " + hex_bytes(want, kHeaderSize) + " (" +
                                  std::to_string(want.size()) + " bytes)");
}

ReplayResult replay(SwtpmBackend& tpm, const std::vector<TisAccess>& trace, const std::vector<TisExchange>& recorded) {
    SwtpmDeviceBackend backend(tpm);
    TpmTis tis(backend, nullptr);
    ReplayResult r;
    bool awaiting_trace_completion = false;  // the trace still shows the command executing
    bool in_response = false;                // FIFO reads are reading the last command's response
    size_t rsp_pos = 0;                      // next response byte the guest reads
    size_t recorded_len = 0;                 // length of that response in the trace
    for (size_t i = 0; i < trace.size(); ++i) {
        const TisAccess& a = trace[i];
        ++r.accesses;
        const bool fifo = is_tis_fifo_offset(a.offset);
        if (fifo || (is_sts_read(a) && (a.value & kStsDataAvailable))) awaiting_trace_completion = false;
        std::vector<uint8_t> bytes(a.size);
        if (a.write) {
            ++r.writes;
            const uint32_t flags = sts_write_flags(a);
            if (flags == kStsCommandReady || (fifo && in_response)) in_response = false;
            if (flags == kStsResponseRetry) rsp_pos = 0;
            store_le(bytes, a.value);
            const size_t before = backend.submits.size();
            tis.write(a.offset, bytes);
            if (backend.submits.size() > before) {
                const size_t k = backend.submits.size() - 1;
                backend.run_last();
                check_header(r, k, backend.submits[k], recorded);
                tis.command_completed(backend.submits[k].response);
                awaiting_trace_completion = true;
                in_response = true;
                rsp_pos = 0;
                recorded_len = k < recorded.size() ? recorded[k].response.size() : 0;
            }
            continue;
        }
        ++r.reads;
        tis.read(a.offset, bytes);
        uint32_t got = static_cast<uint32_t>(load_le(bytes));
        uint32_t want = a.value;
        if ((a.offset & 0xFFF) == 0) {  // (c) ACCESS bit 0 follows the backend's established flag
            got &= ~1u;
            want &= ~1u;
        }
        unsigned kept = a.size;
        if (fifo && in_response) {  // (b) response payload bytes vary; the header must match
            for (unsigned b = 0; b < a.size; ++b, ++rsp_pos) {
                if (rsp_pos < kHeaderSize) ++r.header_bytes;
                if (rsp_pos >= kHeaderSize && rsp_pos < recorded_len) {
                    const uint32_t mask = ~(0xFFu << (8 * b));
                    got &= mask;
                    want &= mask;
                    --kept;
                    ++r.masked_bytes;
                }
            }
        }
        if (awaiting_trace_completion && is_sts_read(a)) {
            ++r.skipped_polls;  // (a) QEMU was still executing; our command has already completed
        } else if (kept == 0) {
            ++r.masked_reads;
        } else {
            ++r.compared;
            if (got == want) {
                ++r.matched;
            } else if (r.mismatches.size() < 20) {
                std::ostringstream s;
                s << "access #" << i << " read." << unsigned(a.size) << "(0x" << std::hex << a.offset << ") = 0x"
                  << got << ", trace 0x" << want << std::dec << " (after " << backend.submits.size() << " commands)";
                r.mismatches.push_back(s.str());
            }
        }
    }
    r.commands = backend.submits.size();
    for (size_t k = 0; k < backend.submits.size() && k < recorded.size(); ++k) {
        if (backend.submits[k].command == recorded[k].command && backend.submits[k].locality == recorded[k].locality) {
            ++r.commands_identical;
        }
    }
    return r;
}

}  // namespace

TEST_CASE("tis trace: SeaBIOS + Linux 6.1 boot replays against TpmTis with a real swtpm") {
    std::vector<TisAccess> trace;
    // The trace must be there: a missing file is a failure, not a skip (checked before swtpm).
    REQUIRE_NOTHROW(trace = load_boot_trace());
    REQUIRE(trace.size() > 5000);
    const auto recorded = tis_trace_exchanges(trace);
    REQUIRE(recorded.size() > 20);
    if (!testing::swtpm_available("test_tpmhost")) return;

    testing::SwtpmProcess proc(true);
    auto tpm = SwtpmBackend::connect(proc.sock, 5000ms);
    REQUIRE(tpm->version() == TpmVersion::v2_0);
    REQUIRE(tpm->power_cycle());  // machine power-on: CMD_INIT; SeaBIOS then sends TPM2_Startup

    const ReplayResult r = replay(*tpm, trace, recorded);
    MESSAGE("real swtpm replay: " << r.accesses << " accesses (" << r.writes << " writes, " << r.reads
                                  << " reads); " << r.matched << "/" << r.compared << " reads compared matched, "
                                  << r.skipped_polls << " STS polls skipped while QEMU was executing, "
                                  << r.masked_reads << " FIFO reads of response payload only (" << r.masked_bytes
                                  << " payload bytes not compared, " << r.header_bytes
                                  << " header bytes compared); " << r.commands << " commands ("
                                  << recorded.size() << " recorded, " << r.commands_identical
                                  << " identical), " << r.headers_identical << " response headers identical");
    for (const auto& m : r.header_mismatches) MESSAGE(m);
    for (const auto& m : r.mismatches) MESSAGE(m);
    CHECK(r.accesses == trace.size());
    CHECK(r.compared + r.skipped_polls + r.masked_reads == r.reads);
    CHECK(r.header_bytes >= kHeaderSize * r.commands);  // every header was read, none masked
    CHECK(r.skipped_polls > 0);
    CHECK(r.masked_bytes > 0);
    CHECK(r.matched == r.compared);
    CHECK(r.commands == recorded.size());
    CHECK(r.commands_identical == r.commands);
    CHECK(r.header_mismatches.empty());
    CHECK(r.headers_identical == r.commands);
    CHECK_FALSE(tpm->failed());
    tpm->shutdown();
    CHECK(proc.exits(3000ms));
}
