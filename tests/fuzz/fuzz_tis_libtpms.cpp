// libFuzzer target for the TIS -> libtpms path: the TPM TIS device model with the real in-process
// libtpms TPM 2.0 (LibtpmsBackend) behind it. libtpms keeps its TPM in process-global state, so
// the backend is made once per process (state in a temporary directory); every input starts
// with the NV state the TPM had after manufacture (the permall file is put back when an input
// changed it) and a power cycle, as at a machine power-on. Commands run synchronously, in the
// order TpmWorker would run them, so an input always does the same thing.
// The input is a sequence of operations: MMIO reads and writes of every size at any offset of
// the five locality pages, whole commands sent through the FIFO of a locality and read back
// (TPM2_Startup, GetRandom, PCR_Read, GetCapability, SelfTest, or input bytes, each possibly
// with a patched byte), letting the TPM run the outstanding command, commandCancel,
// relinquish/seize, resetEstablishment, and a machine reset as vmm/main.cpp does it (the command
// in flight is abandoned, the TPM power-cycled, a new TIS built).
// Checks: reads that are not decoded (odd sizes, straddling a register word, past the window)
// read all-ones; the TIS has a command outstanding exactly when the backend holds one, from
// localities 0-3 only; the active locality's STS reads 0 in bits 0, 1 and 5, TPM 2.0 family,
// never dataAvail without stsValid or with commandReady or expect, a burst count within the
// buffer; the IRQ line only sees edges and follows the device's level;
// ACCESS.tpmEstablishment reads the inverse of libtpms's flag; every response libtpms gives is
// a TPM 2.0 response whose size field equals its length, and a round trip reads back exactly
// those bytes through the FIFO, with dataAvail set until the last byte and clear after it;
// TPM2_Startup(CLEAR) succeeds first after a power cycle (from locality 0 or 3; TPM_RC_LOCALITY
// from 1 and 2) and then answers TPM_RC_INITIALIZE;
// GetRandom after start-up returns the bytes asked for (up to 64).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "devices/tpm_tis.hpp"
#include "devices/tpm_tis_regs.hpp"
#include "tests/fuzz/fuzz_support.hpp"
#include "vmm/tpm/libtpms_backend.hpp"
#include "vmm/base/bytes.hpp"

using namespace minivmm;
using namespace minivmm::fuzz;

namespace {

constexpr uint32_t kRcSuccess = 0, kRcInitialize = 0x100, kRcLocality = 0x907;
constexpr uint32_t kCcStartup = 0x144, kCcGetRandom = 0x17B;


// The process's one libtpms TPM and the NV state each input starts from.
struct Tpm {
    std::string dir;
    std::string permall;
    std::vector<uint8_t> pristine;
    std::unique_ptr<LibtpmsBackend> backend;

    Tpm() {
        char tmpl[] = "/tmp/fuzz-tis-libtpms-XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) std::abort();
        dir = tmpl;
        backend = std::make_unique<LibtpmsBackend>(dir, TpmVersion::v2_0);
        permall = dir + "/" + LibtpmsBackend::state_file_name(TpmVersion::v2_0, "permall");
        pristine = slurp();
        if (pristine.empty()) std::abort();
    }
    ~Tpm() {
        backend.reset();
        std::filesystem::remove_all(dir);
    }
    std::vector<uint8_t> slurp() const {
        std::ifstream f(permall, std::ios::binary);
        return {std::istreambuf_iterator<char>(f), {}};
    }
    // Each input: back to the manufactured NV state, then a power-on.
    void begin_input() {
        if (slurp() != pristine) {
            std::ofstream f(permall, std::ios::binary | std::ios::trunc);
            f.write(reinterpret_cast<const char*>(pristine.data()), static_cast<std::streamsize>(pristine.size()));
        }
        check(backend->power_cycle());
    }
};

Tpm* tpm;

// TpmWorker's part, synchronously: holds the submitted command until the harness lets it run.
class SyncBackend final : public TpmPort {
public:
    explicit SyncBackend(LibtpmsBackend& tpm) : tpm_(&tpm) {}
    TpmVersion version() const noexcept override { return tpm_->version(); }
    size_t buffer_size() const noexcept override { return tpm_->buffer_size(); }
    void submit(uint8_t locality, std::span<const uint8_t> command) noexcept override {
        check(!pending);
        check(locality < 4);
        check(command.size() <= tis::kBufferMax);
        pending = true;
        locality_ = locality;
        command_.assign(command.begin(), command.end());
    }
    void cancel() noexcept override {
        if (pending) tpm_->cancel();
    }
    bool established() const noexcept override { return tpm_->established(); }
    void reset_established(uint8_t locality) noexcept override { tpm_->reset_established(locality); }

    // Runs the pending command; the response stays in `response`.
    void run() {
        response.resize(tpm_->buffer_size());
        const size_t n = tpm_->execute(locality_, command_, response);
        response.resize(n);
        pending = false;
        // A TPM 2.0 response: tag, size field equal to the length, response code (Part 1 §18.4).
        check(n >= 10 && n <= tis::kBufferMax);
        const uint16_t tag = static_cast<uint16_t>(response[0] << 8 | response[1]);
        check(tag == 0x8001 || tag == 0x8002);
        check(load_be32(response, 2) == n);
    }
    const std::vector<uint8_t>& command() const { return command_; }
    uint8_t locality() const { return locality_; }

    bool pending = false;
    std::vector<uint8_t> response;

private:
    LibtpmsBackend* tpm_;
    uint8_t locality_ = 0;
    std::vector<uint8_t> command_;
};

constexpr size_t kAccessSizes[8] = {1, 2, 4, 8, 1, 4, 3, 0};

uint64_t pick_offset(Input& in) {
    const uint16_t raw = in.u16();
    if ((raw & 0xF000) == 0xF000) return 0x5000 - (raw & 0xF);
    const uint64_t locality = (raw >> 12) % 5;
    const uint64_t off = (raw & 0x800) ? (raw & 0xFFF) : (raw & 0xFF);
    return (locality << 12) | off;
}

// TPM 2.0 commands a firmware or kernel sends first (Part 3), big-endian.
std::vector<uint8_t> command_template(uint8_t which, Input& in) {
    switch (which % 6) {
    case 0: return {0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x44, 0, 0};                 // Startup(CLEAR)
    case 1: return {0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7B, 0, in.u8()};          // GetRandom(n)
    case 2: return {0x80, 0x01, 0, 0, 0, 20, 0, 0, 0x01, 0x7E, 0, 0, 0, 1, 0, 0x0B, 3, 0xFF, 0, 0};  // PCR_Read sha256 0-7
    case 3: return {0x80, 0x01, 0, 0, 0, 22, 0, 0, 0x01, 0x7A, 0, 0, 0, 6, 0, 0, 0x01, 0, 0, 0, 0, 64};  // GetCapability
    case 4: return {0x80, 0x01, 0, 0, 0, 11, 0, 0, 0x01, 0x43, 1};                   // SelfTest(full)
    default: return in.bytes(in.u8());                                                 // anything
    }
}

class Harness {
public:
    explicit Harness(uint8_t config)
        : has_irq_(config & 1), backend_(*tpm->backend) {
        tis_.emplace(backend_, has_irq_ ? &irq_ : nullptr);
        tpm->begin_input();
    }

    void step(Input& in) {
        const uint8_t op = in.u8();
        switch (op % 8) {
        case 0: read_any(in, op); break;
        case 1: {
            const uint64_t offset = pick_offset(in);
            uint8_t buf[8];
            in.fill(buf);
            tis_->write(offset, std::span<const uint8_t>(buf, kAccessSizes[(op >> 3) & 7]));
            break;
        }
        case 2: run(); break;
        case 3:
        case 4: round_trip(in, op); break;
        case 5: {  // commandCancel, relinquish or seize from a locality
            const uint64_t base = uint64_t{(op >> 3) % 5u} << tis::kLocalityShift;
            const uint8_t cancel = 0x01, relinquish = 0x20, seize = 0x08;
            if (op & 0x80) write8(base + tis::kRegSts + 3, cancel);
            else write8(base + tis::kRegAccess, (op & 0x40) ? seize : relinquish);
            break;
        }
        case 6: {  // resetEstablishment from any locality (honoured from 3 and 4)
            const uint64_t base = uint64_t{(op >> 3) % 5u} << tis::kLocalityShift;
            write8(base + tis::kRegSts + 3, 0x02);
            break;
        }
        default:
            if ((op >> 3) == 0) {  // a machine reset (NV persists): nothing from before it completes
                backend_.pending = false;
                irq_.level = false;  // the new VM's line
                tis_.emplace(backend_, has_irq_ ? &irq_ : nullptr);
                check(tpm->backend->power_cycle());
                started_ = false;
            }
            break;
        }
        check_invariants();
    }

private:
    void write8(uint64_t offset, uint8_t v) { tis_->write(offset, std::span<const uint8_t>(&v, 1)); }
    uint32_t read32(uint64_t offset) {
        uint8_t b[4];
        tis_->read(offset, b);
        return static_cast<uint32_t>(load_le(b));
    }

    void read_any(Input& in, uint8_t op) {
        const uint64_t offset = pick_offset(in);
        const size_t n = kAccessSizes[(op >> 3) & 7];
        uint8_t buf[16];
        std::memset(buf, 0xA5, sizeof buf);
        tis_->read(offset, std::span<uint8_t>(buf + 4, n));
        for (size_t i = 0; i < 4; ++i) check(buf[i] == 0xA5 && buf[4 + n + i] == 0xA5);
        const bool decoded = (n == 1 || n == 2 || n == 4) ? (offset & 3) + n <= 4 : n == 8 && offset % 8 == 0;
        if (!decoded || offset + n > 0x5000)
            for (size_t i = 0; i < n; ++i) check(buf[4 + i] == 0xFF);
    }

    // Lets the TPM run the outstanding command and hands its response to the TIS.
    void run() {
        if (!backend_.pending) return;
        backend_.run();
        note_response(backend_.locality(), backend_.command(), backend_.response);
        tis_->command_completed(backend_.response);
    }

    // What the TPM must answer to the commands whose answer is known.
    void note_response(uint8_t locality, const std::vector<uint8_t>& cmd, const std::vector<uint8_t>& rsp) {
        if (cmd.size() < 10 || load_be32(cmd, 2) != cmd.size() || cmd[0] != 0x80 || cmd[1] != 0x01) return;
        const uint32_t cc = load_be32(cmd, 6);
        const uint32_t rc = load_be32(rsp, 6);
        if (cc == kCcStartup && cmd.size() == 12 && cmd[10] == 0 && cmd[11] == 0) {
            // Part 3 TPM2_Startup: only from locality 0 or 3 (TPM_RC_LOCALITY otherwise).
            const bool allowed = locality == 0 || locality == 3;
            check(rc == (started_ ? kRcInitialize : allowed ? kRcSuccess : kRcLocality));
            started_ = started_ || allowed;
        } else if (cc == kCcGetRandom && cmd.size() == 12 && started_) {
            const size_t want = std::min<size_t>(static_cast<size_t>(cmd[10] << 8 | cmd[11]), 64);
            check(rc == kRcSuccess && rsp.size() == 12 + want);
            check(static_cast<size_t>(rsp[10] << 8 | rsp[11]) == want);
        }
    }

    // A driver's whole exchange at one locality: requestUse, commandReady, the command through
    // the FIFO, tpmGo, the TPM runs, then the response read back while dataAvail says so.
    void round_trip(Input& in, uint8_t op) {
        const uint8_t l = static_cast<uint8_t>((op >> 3) % 4);
        const uint64_t base = uint64_t{l} << tis::kLocalityShift;
        std::vector<uint8_t> cmd = command_template(in.u8(), in);
        if ((op & 0x80) && !cmd.empty()) cmd[in.u8() % cmd.size()] ^= static_cast<uint8_t>(in.u8() | 1);
        write8(base + tis::kRegAccess, tis::kAccessRequestUse);
        write8(base + tis::kRegSts, static_cast<uint8_t>(tis::kStsCommandReady));
        for (uint8_t b : cmd) write8(base + tis::kRegDataFifo, b);
        const bool was_pending = backend_.pending;
        write8(base + tis::kRegSts, static_cast<uint8_t>(tis::kStsTpmGo));
        const bool submitted = !was_pending && backend_.pending;
        run();
        if (!submitted || tis_->active_locality() != l) return;
        const std::vector<uint8_t>& rsp = backend_.response;
        for (size_t i = 0; i < rsp.size(); ++i) {
            check(read32(base + tis::kRegSts) & tis::kStsDataAvailable);
            uint8_t b;
            tis_->read(base + tis::kRegDataFifo, std::span<uint8_t>(&b, 1));
            check(b == rsp[i]);
        }
        check(!(read32(base + tis::kRegSts) & tis::kStsDataAvailable));
    }

    void check_invariants() {
        check(tis_->command_outstanding() == backend_.pending);
        const uint8_t a = tis_->active_locality();
        check(a == tis::kNoLocality || a < 4);
        if (has_irq_) check(irq_.level == tis_->irq_level());
        const uint8_t access = static_cast<uint8_t>(read32(0));
        check(((access & tis::kAccessTpmEstablishment) != 0) == !tpm->backend->established());
        if (a == tis::kNoLocality) return;
        const uint32_t sts = read32((uint64_t{a} << tis::kLocalityShift) + tis::kRegSts);
        check((sts & 0x23) == 0);
        check((sts & tis::kStsFamilyMask) == tis::kStsFamily20);
        if (sts & tis::kStsDataAvailable) check((sts & tis::kStsValid) && !(sts & (tis::kStsCommandReady | tis::kStsExpect)));
        check(((sts >> tis::kStsBurstCountShift) & 0xFFFF) <= tis::kBufferMax);
    }

    bool has_irq_;
    EdgeCheckingIrq irq_;
    SyncBackend backend_;
    std::optional<TpmTis> tis_;
    bool started_ = false;  // TPM2_Startup succeeded since the last power cycle
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    tpm = new Tpm;
    std::atexit([] { delete tpm; });
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Input in(data, size);
    Harness h(in.u8());
    for (unsigned ops = 0; !in.empty() && ops < 512; ++ops) h.step(in);
    return 0;
}
