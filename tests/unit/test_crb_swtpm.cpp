// TpmCrb with a REAL swtpm behind the machine's TPM worker thread: the register sequence Linux's
// tpm_crb uses (request locality, cmdReady, cancel 0, buffer, start, poll CTRL_START, read the
// response, goIdle, relinquish) runs TPM2_Startup, TPM2_GetRandom, TPM2_PCR_Extend and
// TPM2_PCR_Read, and the answers are checked against what TPM 2.0 must return.
#include <doctest/doctest.h>

#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "devices/tpm_crb.hpp"
#include "swtpm_process.hpp"
#include "tpm_tis_fakes.hpp"
#include "vmm/tpm/swtpm_backend.hpp"
#include "vmm/tpm/tpm_worker.hpp"
#include "vmm/base/bytes.hpp"
#include "vmm/base/guest_memory.hpp"

using namespace minivmm;
using namespace std::chrono_literals;

namespace {

uint32_t be32(const std::vector<uint8_t>& v, size_t at) { return load_be32(v, at); }

// The guest side, every register access under the device lock as the vCPU loop makes it; the
// buffer is the guest's RAM, used without the lock (as a guest does, without exits).
struct Guest {
    TpmCrb& crb;
    std::mutex& lock;
    std::vector<uint8_t>& ram;

    uint32_t readl(uint64_t off) {
        std::lock_guard g(lock);
        return test::readl(crb, off);
    }
    void writel(uint64_t off, uint32_t v) {
        std::lock_guard g(lock);
        test::writel(crb, off, v);
    }
    std::vector<uint8_t> transmit(const std::vector<uint8_t>& cmd) {
        writel(0x08, 1);  // LOC_CTRL requestAccess
        REQUIRE((readl(0x00) & 0x82) == 0x82);
        writel(0x40, 1);  // CTRL_REQ cmdReady
        REQUIRE(readl(0x40) == 0);
        writel(0x48, 0);  // CTRL_CANCEL
        REQUIRE(cmd.size() <= readl(0x58));  // CMD_SIZE
        REQUIRE(readl(0x5C) == 0xFED41000);   // CMD_LADDR: the RAM below
        std::copy(cmd.begin(), cmd.end(), ram.begin());
        writel(0x4C, 1);  // CTRL_START
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (readl(0x4C) & 1) {
            REQUIRE(std::chrono::steady_clock::now() < deadline);
            std::this_thread::sleep_for(100us);
        }
        REQUIRE((readl(0x44) & 1) == 0);  // CTRL_STS: no error
        std::vector<uint8_t> rsp(ram.begin(), ram.begin() + 10);
        const uint32_t size = be32(rsp, 2);
        REQUIRE(size >= 10);
        REQUIRE(size <= readl(0x64));  // RSP_SIZE
        rsp.assign(ram.begin(), ram.begin() + size);
        writel(0x40, 2);  // goIdle
        writel(0x08, 2);  // relinquish
        return rsp;
    }
};

}  // namespace

TEST_CASE("CRB runs TPM 2.0 commands on a real swtpm through the TPM worker") {
    if (!testing::swtpm_available("test_tpmhost")) return;
    testing::SwtpmProcess proc(true);
    auto tpm = SwtpmBackend::connect(proc.sock, 5000ms);
    REQUIRE(tpm->version() == TpmVersion::v2_0);
    // As minivmm's main does for CRB (and QEMU's tpm_crb_reset): swtpm is told the CRB buffer's
    // size, 8 KiB, which never raises its own (4096 with libtpms 0.9); a smaller limit lowers it.
    const size_t own = tpm->buffer_size();
    tpm->limit_buffer_size(crb::kMaxBufferSize);
    CHECK(tpm->buffer_size() == std::min<size_t>(own, crb::kMaxBufferSize));
    tpm->limit_buffer_size(3968);
    REQUIRE(tpm->power_cycle());
    CHECK(tpm->buffer_size() == 3968);

    std::mutex lock;
    std::unique_ptr<TpmCrb> crb;
    TpmWorker worker(*tpm, [&](std::span<const uint8_t> response) {
        std::lock_guard g(lock);
        crb->command_completed(response);
    });
    std::vector<uint8_t> ram(0x2000, 0xCC);
    const GuestMemory memory({{0xFED41000, ram.size(), ram.data()}});
    crb = std::make_unique<TpmCrb>(worker, memory, 0xFED41000, static_cast<uint32_t>(ram.size()));
    CHECK(test::readl(*crb, 0x58) == 3968);  // CMD_SIZE: the TPM's buffer
    Guest guest{*crb, lock, ram};

    auto rsp = guest.transmit(test::kStartup);
    CHECK(rsp == test::kOkResponse);

    // TPM2_GetRandom(16): TPM_ST_NO_SESSIONS, success, a TPM2B of 16 bytes.
    const std::vector<uint8_t> getrandom = {0x80, 0x01, 0, 0, 0, 0x0C, 0, 0, 0x01, 0x7B, 0, 16};
    rsp = guest.transmit(getrandom);
    REQUIRE(rsp.size() == 28);
    CHECK(be32(rsp, 6) == 0);
    CHECK((rsp[10] << 8 | rsp[11]) == 16);
    const auto second = guest.transmit(getrandom);
    CHECK(second != rsp);  // random bytes differ

    // TPM2_PCR_Extend(PCR 16, sha256 = 32 x 0x5A) with an empty password session, then
    // TPM2_PCR_Read(sha256, PCR 16) must show SHA256(zeros || digest).
    std::vector<uint8_t> extend = {0x80, 0x02, 0, 0, 0, 0, 0, 0, 0x01, 0x82, 0, 0, 0, 16,
                                   0, 0, 0, 9, 0x40, 0, 0, 9, 0, 0, 1, 0, 0,  // auth area: TPM_RS_PW
                                   0, 0, 0, 1, 0, 0x0B};                      // one digest, TPM_ALG_SHA256
    extend.insert(extend.end(), 32, 0x5A);
    extend[5] = static_cast<uint8_t>(extend.size());
    rsp = guest.transmit(extend);
    CHECK(be32(rsp, 6) == 0);
    const std::vector<uint8_t> pcr_read = {0x80, 0x01, 0, 0, 0, 0x14, 0, 0, 0x01, 0x7E,
                                           0, 0, 0, 1, 0, 0x0B, 3, 0, 0, 1};  // sha256, PCR 16
    rsp = guest.transmit(pcr_read);
    REQUIRE(rsp.size() >= 32);
    CHECK(be32(rsp, 6) == 0);
    // SHA-256(32 zero bytes || 32 x 0x5A), computed independently (python3 hashlib).
    const std::vector<uint8_t> want = {0xd3, 0x42, 0xb8, 0xb5, 0xfd, 0xda, 0xbf, 0xc1, 0xd9, 0x4e, 0x5c, 0x8c, 0x53, 0x38, 0x82, 0x11, 0xdf, 0x37, 0x97, 0x91, 0x08, 0x9b, 0x77, 0x2e, 0xc0, 0x2a, 0x15, 0xd9, 0x4a, 0xdc, 0xc7, 0xf5};
    CHECK(std::vector<uint8_t>(rsp.end() - 32, rsp.end()) == want);
    CHECK(worker.stats().commands == 5);
    CHECK(worker.stats().extends == 1);
}
