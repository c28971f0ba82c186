// start_tpm_as_firmware and firmware_lock_commands (vmm/tpm/tpm_firmware.hpp) on real TPMs:
// libtpms in-process and a real swtpm process, TPM 2.0 and 1.2. Afterwards the TPM is started (a
// second Startup is refused), PCRs extend, and once the lock commands ran the platform hierarchy
// (2.0) or physical presence (1.2) is closed to the OS. Malformed TPM_CAP_PCRS replies come from a
// backend that forwards everything else to libtpms.
#include <doctest/doctest.h>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "swtpm_process.hpp"
#include "tpm_command.hpp"
#include "vmm/tpm/forwarding_backend.hpp"
#include "vmm/tpm/libtpms_backend.hpp"
#include "vmm/tpm/swtpm_backend.hpp"
#include "vmm/tpm/tpm_firmware.hpp"

using namespace minivmm;
using testing::Cmd;
using testing::run;

namespace {

constexpr uint32_t kPlatform = 0x4000000C, kOwner = 0x40000001;
constexpr uint32_t kTpm2RcInitialize = 0x100, kTpm2RcBadAuthSession1 = 0x9A2;  // TPM_RC_BAD_AUTH + TPM_RC_S + TPM_RC_1
constexpr uint32_t kTpm12InvalidPostinit = 0x26, kTpm12BadParameter = 0x03;

uint32_t rc(TpmBackend& tpm, const Cmd& command) { return tpm_code(run(tpm, command.done())); }

// The allocation of a TPM 2.0 freshly manufactured by libtpms 0.9 (and so by swtpm 0.7 without
// swtpm_setup): SHA-1, SHA-256, SHA-384 and SHA-512 banks, in that order.
const std::vector<tcg_log::Algorithm> kDefaultBanks = {
    {tcg_log::kAlgSha1, 20}, {tcg_log::kAlgSha256, 32}, {tcg_log::kAlgSha384, 48}, {tcg_log::kAlgSha512, 64}};

std::array<uint8_t, 32> test_random() {
    std::array<uint8_t, 32> r{};
    for (size_t i = 0; i < r.size(); ++i) r[i] = static_cast<uint8_t>(0xA0 + i);
    return r;
}

// TPM2_ClearControl(TPM_RH_PLATFORM, NO) (Part 3 §24.7), a harmless command that needs platformAuth,
// with the password `auth`.
Cmd clear_control(const std::vector<uint8_t>& auth) {
    return Cmd(0x8002, 0x127).u32(kPlatform).u32(9 + static_cast<uint32_t>(auth.size())).u32(0x40000009).u16(0).u8(0)
        .u16(static_cast<uint16_t>(auth.size())).bytes(auth).u8(0);
}

void check_tpm2(TpmBackend& tpm) {
    REQUIRE(tpm.power_cycle());
    const FirmwareTpmStart started = start_tpm_as_firmware(tpm);
    CHECK(started.error == "");
    REQUIRE(started.ok);
    REQUIRE(started.banks.size() == kDefaultBanks.size());
    for (size_t i = 0; i < kDefaultBanks.size(); ++i) {
        CHECK(started.banks[i].id == kDefaultBanks[i].id);
        CHECK(started.banks[i].digest_size == kDefaultBanks[i].digest_size);
    }
    CHECK(rc(tpm, Cmd(0x8001, 0x144).u16(0)) == kTpm2RcInitialize);  // started already
    // TPM2_PCR_Extend(PCR 0) with one digest per active bank (TPML_DIGEST_VALUES).
    Cmd extend = Cmd(0x8002, 0x182).u32(0).password_session().u32(static_cast<uint32_t>(started.banks.size()));
    for (const auto& bank : started.banks) extend.u16(bank.id).bytes(std::vector<uint8_t>(bank.digest_size, 0x5A));
    CHECK(rc(tpm, extend) == 0);
    CHECK(rc(tpm, clear_control({})) == 0);  // platformAuth is empty until the lock

    const auto random = test_random();
    for (const auto& command : firmware_lock_commands(TpmVersion::v2_0, random)) CHECK(tpm_code(run(tpm, command)) == 0);
    CHECK(rc(tpm, clear_control({})) == kTpm2RcBadAuthSession1);
    // TPM2_HierarchyControl(TPM_RH_PLATFORM, TPM_RH_OWNER, YES) and TPM2_Clear(TPM_RH_PLATFORM).
    CHECK(rc(tpm, Cmd(0x8002, 0x121).u32(kPlatform).password_session().u32(kOwner).u8(1)) == kTpm2RcBadAuthSession1);
    CHECK(rc(tpm, Cmd(0x8002, 0x126).u32(kPlatform).password_session()) == kTpm2RcBadAuthSession1);
    CHECK(rc(tpm, clear_control({random.begin(), random.end()})) == 0);  // newAuth is `random` itself

    // The next power-on starts with an empty platformAuth again (Part 1 §13.4, TPM2_Startup(CLEAR)).
    REQUIRE(tpm.power_cycle());
    REQUIRE(start_tpm_as_firmware(tpm).ok);
    CHECK(rc(tpm, clear_control({})) == 0);
    // Without a power cycle the start fails with the TPM's own code, in one line.
    const FirmwareTpmStart again = start_tpm_as_firmware(tpm);
    CHECK_FALSE(again.ok);
    CHECK(again.error == "TPM2_Startup failed: TPM_RC 0x100");
    CHECK(again.banks.empty());
}

void check_tpm12(TpmBackend& tpm) {
    REQUIRE(tpm.power_cycle());
    const FirmwareTpmStart started = start_tpm_as_firmware(tpm);
    CHECK(started.error == "");
    REQUIRE(started.ok);
    REQUIRE(started.banks.size() == 1);
    CHECK(started.banks[0].id == tcg_log::kAlgSha1);
    CHECK(started.banks[0].digest_size == 20);
    CHECK_FALSE(tpm.established());
    CHECK(rc(tpm, Cmd(0x00C1, 0x99).u16(1)) == kTpm12InvalidPostinit);  // started already
    CHECK(rc(tpm, Cmd(0x00C1, 0x14).u32(0).bytes(std::vector<uint8_t>(20, 0x5A))) == 0);  // TPM_Extend(PCR 0)
    const Cmd present = Cmd(0x00C1, 0x4000000A).u16(0x0008);  // TSC_PhysicalPresence(PRESENT)
    CHECK(rc(tpm, present) == 0);

    const auto lock = firmware_lock_commands(TpmVersion::v1_2, test_random());
    REQUIRE(lock.size() == 1);
    CHECK(tpm_code(run(tpm, lock[0])) == 0);
    CHECK(rc(tpm, present) == kTpm12BadParameter);  // physicalPresenceLock (TPM 1.2 Part 3 §6.2.1)

    REQUIRE(tpm.power_cycle());
    REQUIRE(start_tpm_as_firmware(tpm).ok);
    CHECK(rc(tpm, present) == 0);  // the lock lasts until the next TPM_Startup
    const FirmwareTpmStart again = start_tpm_as_firmware(tpm);
    CHECK_FALSE(again.ok);
    CHECK(again.error == "TPM_Startup(ST_CLEAR) failed: TPM_RESULT 0x26");
}

// libtpms, except that TPM2_GetCapability gets `reply`.
class CapsReplyBackend final : public ForwardingBackend {
public:
    CapsReplyBackend(std::unique_ptr<TpmBackend> real, std::vector<uint8_t> reply)
        : ForwardingBackend(std::move(real)), reply_(std::move(reply)) {}
    size_t execute(uint8_t locality, std::span<const uint8_t> command, std::span<uint8_t> response) noexcept override {
        if (tpm_code(command) != 0x17A) return ForwardingBackend::execute(locality, command, response);
        std::copy(reply_.begin(), reply_.end(), response.begin());
        return reply_.size();
    }

private:
    std::vector<uint8_t> reply_;
};

// A TPM_CAP_PCRS response: success header, moreData NO, TPM_CAP_PCRS, then `body`.
std::vector<uint8_t> caps_reply(const std::vector<uint8_t>& body) {
    return Cmd(0x8001, 0).u8(0).u32(5).bytes(body).done();
}

}  // namespace

TEST_CASE("the firmware's TPM start and lock on libtpms (TPM 2.0 and 1.2)") {
    testing::TempDir dir;
    {
        LibtpmsBackend tpm(dir.sub("tpm2"), TpmVersion::v2_0);
        check_tpm2(tpm);
    }
    {
        LibtpmsBackend tpm(dir.sub("tpm12"), TpmVersion::v1_2);
        check_tpm12(tpm);
    }
}

TEST_CASE("the firmware's TPM start and lock on a real swtpm (TPM 2.0 and 1.2)") {
    if (!testing::swtpm_available("test_tpm_firmware")) return;
    {
        testing::SwtpmProcess proc(true);
        auto tpm = SwtpmBackend::connect(proc.sock, std::chrono::milliseconds(5000));
        check_tpm2(*tpm);
        tpm->shutdown();
    }
    {
        testing::SwtpmProcess proc(false);
        auto tpm = SwtpmBackend::connect(proc.sock, std::chrono::milliseconds(5000));
        check_tpm12(*tpm);
        tpm->shutdown();
    }
}

TEST_CASE("a short, malformed or unexpected TPM_CAP_PCRS reply fails the start with one line") {
    using Bytes = std::vector<uint8_t>;
    const auto u32 = [](uint32_t v) { return Bytes{uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)}; };
    const auto cat = [](std::initializer_list<Bytes> parts) {
        Bytes out;
        for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
        return out;
    };
    const Bytes sha256_all = {0x00, 0x0B, 3, 0xFF, 0xFF, 0xFF};
    struct Case {
        const char* name;
        Bytes reply;
        std::string error;
    };
    const std::string what = "TPM2_GetCapability(TPM_CAP_PCRS)";
    Bytes size_lies = caps_reply(cat({u32(1), sha256_all}));
    size_lies[5] += 4;  // the header claims 4 bytes more than came
    const Case cases[] = {
        {"nothing", {}, what + ": no well-formed response from the TPM (0 bytes)"},
        {"a header alone", Cmd(0x8001, 0).done(), what + ": malformed response (10 bytes)"},
        {"a size field that lies", size_lies, what + ": no well-formed response from the TPM (25 bytes)"},
        {"an error", Cmd(0x8001, 0x101).done(), what + " failed: TPM_RC 0x101"},
        {"another capability", Cmd(0x8001, 0).u8(0).u32(6).u32(0).done(), what + ": malformed response (19 bytes)"},
        {"a count past the end", caps_reply(cat({u32(0xFFFFFFFF), sha256_all})),
         what + ": malformed response (selection 2 of 4294967295 runs past its 25 bytes)"},
        {"a select past the end", caps_reply(cat({u32(1), {0x00, 0x0B, 200, 0xFF}})),
         what + ": malformed response (selection 1 of 1 runs past its 23 bytes)"},
        {"trailing bytes", caps_reply(cat({u32(1), sha256_all, {0}})), what + ": malformed response (1 bytes after the selections)"},
        {"an algorithm twice", caps_reply(cat({u32(2), sha256_all, sha256_all})),
         what + ": malformed response (hash algorithm 0x000b listed twice)"},
        {"an unknown algorithm", caps_reply(cat({u32(2), sha256_all, {0x00, 0x99, 3, 0, 1, 0}})),
         what + ": PCR bank of unknown hash algorithm 0x0099"},
        {"no bank allocated", caps_reply(cat({u32(1), {0x00, 0x0B, 3, 0, 0, 0}})), what + ": no PCR bank is allocated"},
    };
    testing::TempDir dir;
    for (const Case& c : cases) {
        CAPTURE(c.name);
        CapsReplyBackend tpm(std::make_unique<LibtpmsBackend>(dir.sub("tpm2"), TpmVersion::v2_0), c.reply);
        REQUIRE(tpm.power_cycle());
        const FirmwareTpmStart started = start_tpm_as_firmware(tpm);
        CHECK_FALSE(started.ok);
        CHECK(started.error == c.error);
        CHECK(started.banks.empty());
    }
    // Unallocated banks of algorithms minivmm does not know are passed over, as SeaBIOS does.
    const Bytes sm3_and_unknown = cat({u32(3), {0x00, 0x99, 3, 0, 0, 0}, {0x00, 0x12, 3, 0, 0, 0x80}, sha256_all});
    CapsReplyBackend tpm(std::make_unique<LibtpmsBackend>(dir.sub("tpm2"), TpmVersion::v2_0), caps_reply(sm3_and_unknown));
    REQUIRE(tpm.power_cycle());
    const FirmwareTpmStart started = start_tpm_as_firmware(tpm);
    CHECK(started.error == "");
    REQUIRE(started.banks.size() == 2);
    CHECK(started.banks[0].id == 0x0012);  // SM3-256, PCR 23 alone
    CHECK(started.banks[0].digest_size == 32);
    CHECK(started.banks[1].id == tcg_log::kAlgSha256);
}

TEST_CASE("the lock commands, byte for byte") {
    const auto random = test_random();
    const auto tpm2 = firmware_lock_commands(TpmVersion::v2_0, random);
    REQUIRE(tpm2.size() == 1);
    std::vector<uint8_t> want = {0x80, 0x02, 0, 0, 0, 61, 0, 0, 0x01, 0x29, 0x40, 0, 0, 0x0C,  // header, TPM_RH_PLATFORM
                                 0, 0, 0, 9, 0x40, 0, 0, 0x09, 0, 0, 0, 0, 0,                   // empty password session
                                 0, 32};                                                        // TPM2B_AUTH size
    want.insert(want.end(), random.begin(), random.end());
    CHECK(tpm2[0] == want);
    const auto tpm12 = firmware_lock_commands(TpmVersion::v1_2, random);
    REQUIRE(tpm12.size() == 1);
    CHECK(tpm12[0] == std::vector<uint8_t>{0x00, 0xC1, 0, 0, 0, 12, 0x40, 0, 0, 0x0A, 0x00, 0x14});
}
