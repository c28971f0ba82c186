// Conformance: replays every TIS access of a recorded SeaBIOS + Linux 6.1 boot on QEMU 7.2 with
// swtpm (tests/data/traces/seabios-linux61-tpm2.trace) against TpmTis and compares every register
// read with what the guest saw on QEMU. The fake backend answers each command with the
// response recorded in the trace.
#include <doctest/doctest.h>

#include <deque>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "devices/tpm_tis.hpp"
#include "tis_trace.hpp"

using namespace minivmm;

namespace {

class RecordedBackend final : public TpmPort {
public:
    TpmVersion version() const noexcept override { return TpmVersion::v2_0; }
    size_t buffer_size() const noexcept override { return 4096; }
    void submit(uint8_t locality, std::span<const uint8_t> command) noexcept override {
        submits.push_back({locality, std::vector<uint8_t>(command.begin(), command.end()), {}});
    }
    void cancel() noexcept override { ++cancels; }
    bool established() const noexcept override { return false; }  // swtpm's flag on that boot
    void reset_established(uint8_t) noexcept override { ++resets; }

    std::vector<TisExchange> submits;
    int cancels = 0;
    int resets = 0;
};

enum class Completion {
    as_recorded,  // the response arrives just before the first read that saw it on QEMU
    immediate,    // the response arrives as soon as the command is submitted
};

struct ReplayResult {
    size_t accesses = 0, writes = 0, reads = 0, matched = 0, skipped_polls = 0;
    size_t commands = 0, commands_matched = 0;
    std::vector<std::string> mismatches;
};

constexpr uint32_t kStsDataAvailable = 0x10;

bool is_sts_read(const TisAccess& a) { return !a.write && (a.offset & 0xFFC) == 0x18 && (a.offset & 3) == 0; }

ReplayResult replay(const std::vector<TisAccess>& trace, const std::vector<TisExchange>& exchanges,
                    Completion mode) {
    RecordedBackend backend;
    TpmTis tis(backend, nullptr);
    ReplayResult r;
    size_t completed = 0;
    bool awaiting_trace_completion = false;  // immediate mode: trace still shows Execution
    auto complete = [&] {
        const std::vector<uint8_t> none;
        tis.command_completed(completed < exchanges.size() ? exchanges[completed].response : none);
        ++completed;
    };
    for (size_t i = 0; i < trace.size(); ++i) {
        const TisAccess& a = trace[i];
        ++r.accesses;
        const bool trace_saw_completion = is_tis_fifo_offset(a.offset) || (is_sts_read(a) && (a.value & kStsDataAvailable));
        if (trace_saw_completion) awaiting_trace_completion = false;
        if (!a.write && tis.command_outstanding() && trace_saw_completion) complete();
        std::vector<uint8_t> bytes(a.size);
        if (a.write) {
            ++r.writes;
            store_le(bytes, a.value);
            const size_t before = backend.submits.size();
            tis.write(a.offset, bytes);
            if (backend.submits.size() > before && mode == Completion::immediate) {
                complete();
                awaiting_trace_completion = true;
            }
            continue;
        }
        ++r.reads;
        tis.read(a.offset, bytes);
        uint32_t got = static_cast<uint32_t>(load_le(bytes));
        uint32_t want = a.value;
        if ((a.offset & 0xFFF) == 0) {  // ACCESS bit 0 follows the backend's established flag
            got &= ~1u;
            want &= ~1u;
        }
        if (mode == Completion::immediate && awaiting_trace_completion && is_sts_read(a)) {
            ++r.skipped_polls;  // QEMU was still executing; our command has already completed
        } else if (got == want) {
            ++r.matched;
        } else if (r.mismatches.size() < 20) {
            std::ostringstream s;
            s << "access #" << i << " read." << unsigned(a.size) << "(0x" << std::hex << a.offset << ") = 0x" << got
              << ", trace 0x" << want;
            r.mismatches.push_back(s.str());
        }
    }
    r.commands = backend.submits.size();
    for (size_t k = 0; k < backend.submits.size() && k < exchanges.size(); ++k) {
        if (backend.submits[k].command == exchanges[k].command &&
            backend.submits[k].locality == exchanges[k].locality) {
            ++r.commands_matched;
        }
    }
    return r;
}

}  // namespace

TEST_CASE("tis trace: parser decodes reads, writes, FIFO reads and QEMU annotations") {
    std::istringstream in(
        "tpm_tis_mmio_read  read.4(0x00000000) = 0x00000081\n"
        "tpm_tis_mmio_write write.1(0x00004000) = 0x00000020\n"
        "tpm_tis_mmio_write_locty4 Access to locality 4 only allowed from hardware\n"
        "\n"
        "tpm_tis_data_read byte 0x80   [0]\n"
        "tpm_tis_mmio_read  read.0(0x00000024) = 0x00000080\n"
        "tpm_tis_mmio_read  read.1(0x00000018) = 0x04000990\n"
        "tpm_tis_mmio_read  read.0(0x00000024) = 0xffffffff\n");
    const auto t = parse_tis_trace(in);
    REQUIRE(t.size() == 5);
    CHECK((!t[0].write && t[0].size == 4 && t[0].offset == 0 && t[0].value == 0x81));
    CHECK((t[1].write && t[1].size == 1 && t[1].offset == 0x4000 && t[1].value == 0x20));
    CHECK((t[2].size == 1 && t[2].offset == 0x24 && t[2].value == 0x80));
    CHECK(t[3].value == 0x90);  // truncated to the access size
    CHECK((t[4].size == 1 && t[4].value == 0xFF));

    std::istringstream bad("tpm_tis_mmio_read  read.3(0x00000000) = 0x1\n");
    CHECK_THROWS_AS(parse_tis_trace(bad), std::runtime_error);
    std::istringstream bad2("tpm_tis_mmio_write write.1(0x0000zz00) = 0x1\n");
    CHECK_THROWS_AS(parse_tis_trace(bad2), std::runtime_error);
}

TEST_CASE("tis trace: exchanges pair each command with the response read after tpmGo") {
    std::vector<TisAccess> t = {
        {true, 1, 0x18, 0x40},  // commandReady
    };
    const uint8_t cmd[] = {0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x44, 0, 0};
    for (uint8_t b : cmd) t.push_back({true, 1, 0x24, b});
    t.push_back({true, 1, 0x18, 0x20});  // tpmGo
    const uint8_t rsp[] = {0x80, 0x01, 0, 0, 0, 0x0a, 0, 0, 0x01, 0x00, 0xFF};  // + one read past the end
    for (uint8_t b : rsp) t.push_back({false, 1, 0x24, b});
    const auto ex = tis_trace_exchanges(t);
    REQUIRE(ex.size() == 1);
    CHECK(ex[0].command == std::vector<uint8_t>(cmd, cmd + 12));
    CHECK(ex[0].response == std::vector<uint8_t>(rsp, rsp + 10));
}

TEST_CASE("tis trace: SeaBIOS + Linux 6.1 boot replays register-exact against TpmTis") {
    std::vector<TisAccess> trace;
    // The trace must be there: a missing file is a failure, not a skip.
    REQUIRE_NOTHROW(trace = load_boot_trace());
    REQUIRE(trace.size() > 5000);
    const auto exchanges = tis_trace_exchanges(trace);
    REQUIRE(exchanges.size() > 20);

    SUBCASE("completion when the trace saw it: every read matches") {
        const ReplayResult r = replay(trace, exchanges, Completion::as_recorded);
        MESSAGE("replayed " << r.accesses << " accesses (" << r.writes << " writes, " << r.reads << " reads); "
                            << r.matched << " reads matched; " << r.commands_matched << "/" << r.commands
                            << " commands identical to the trace (" << exchanges.size() << " recorded)");
        for (const auto& m : r.mismatches) MESSAGE(m);
        CHECK(r.accesses == trace.size());
        CHECK(r.matched == r.reads);
        CHECK(r.commands == exchanges.size());
        CHECK(r.commands_matched == r.commands);
    }
    SUBCASE("immediate completion: only the execution-state STS polls differ") {
        const ReplayResult r = replay(trace, exchanges, Completion::immediate);
        MESSAGE("immediate completion: " << r.matched << "/" << r.reads << " reads matched, " << r.skipped_polls
                                         << " STS polls skipped while QEMU was still executing");
        for (const auto& m : r.mismatches) MESSAGE(m);
        CHECK(r.matched + r.skipped_polls == r.reads);
        CHECK(r.skipped_polls > 0);
        CHECK(r.commands_matched == exchanges.size());
    }
}
