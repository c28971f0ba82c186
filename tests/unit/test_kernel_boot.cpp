// -kernel's host side (vmm/kernel_boot.hpp): files read and checked at start-up, and one boot's
// load and measurements on a real TPM (libtpms in-process, TPM 2.0 and 1.2) through a real
// TpmWorker, with an event log laid out as SeaBIOS leaves it. The PCRs read back from the TPM must
// equal the values computed here. No KVM.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "devices/device.hpp"
#include "firmware/tcg_event_log.hpp"
#include "swtpm_process.hpp"
#include "tpm_command.hpp"
#include "vmm/base/error.hpp"
#include "vmm/kernel_boot.hpp"
#include "vmm/tpm/libtpms_backend.hpp"
#include "vmm/tpm/tpm_message.hpp"

using namespace minivmm;
using testing::Cmd;
namespace lb = minivmm::linux_boot;
namespace tl = minivmm::tcg_log;

namespace {

std::vector<uint8_t> bzimage() {
    std::vector<uint8_t> k(28 * 512 + 0x30000, 0);
    auto put = [&](size_t at, size_t n, uint64_t v) { store_le(std::span(k).subspan(at, n), v); };
    k[lb::hdr::kSetupSects] = 27;
    put(lb::hdr::kBootFlag, 2, 0xAA55);
    put(lb::hdr::kHeader, 4, 0x53726448);
    put(lb::hdr::kVersion, 2, 0x020F);
    k[lb::hdr::kLoadFlags] = lb::hdr::kLoadedHigh;
    put(lb::hdr::kInitrdAddrMax, 4, 0x7FFFFFFF);
    put(lb::hdr::kCmdlineSize, 4, 2047);
    for (size_t i = 28 * 512; i < k.size(); ++i) k[i] = static_cast<uint8_t>(i * 13);
    return k;
}

void write_file(const std::filesystem::path& p, const std::vector<uint8_t>& bytes) {
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<uint8_t> digest(const EVP_MD* md, std::span<const uint8_t> a, std::span<const uint8_t> b = {}) {
    std::vector<uint8_t> out(static_cast<size_t>(EVP_MD_get_size(md)));
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, md, nullptr);
    EVP_DigestUpdate(ctx, a.data(), a.size());
    EVP_DigestUpdate(ctx, b.data(), b.size());
    EVP_DigestFinal_ex(ctx, out.data(), nullptr);
    EVP_MD_CTX_free(ctx);
    return out;
}

std::vector<uint8_t> run(TpmBackend& tpm, const std::vector<uint8_t>& command) {
    std::vector<uint8_t> response(tpm.buffer_size());
    response.resize(tpm.execute(0, command, response));
    return response;
}

std::string error_of(const KernelBoot::Files& files) {
    try {
        KernelBoot::load(files, 512ull << 20);
    } catch (const SetupError& e) {
        CHECK(e.code() == kExitFile);
        return e.what();
    }
    return "";
}

// A SeaBIOS-like crypto-agile log with SHA-1 and SHA-256 banks and one separator on PCR 0.
std::vector<uint8_t> seabios_log_2_0() {
    std::vector<uint8_t> log(32, 0);
    store_le(std::span(log).subspan(4, 4), tl::kEvNoAction);
    const uint8_t spec[] = {'S', 'p', 'e', 'c', ' ', 'I', 'D', ' ', 'E', 'v', 'e', 'n', 't', '0', '3', 0,
                            0, 0, 0, 0, 0, 2, 0, 2, 2, 0, 0, 0, 4, 0, 20, 0, 11, 0, 32, 0, 0};
    store_le(std::span(log).subspan(28, 4), sizeof spec);
    log.insert(log.end(), std::begin(spec), std::end(spec));
    const uint8_t ev[] = {0, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0, 0};
    log.insert(log.end(), std::begin(ev), std::end(ev));
    log.insert(log.end(), {4, 0}), log.insert(log.end(), 20, 0x11);
    log.insert(log.end(), {11, 0}), log.insert(log.end(), 32, 0x22);
    log.insert(log.end(), {4, 0, 0, 0, 0, 0, 0, 0});
    return log;
}

}  // namespace

TEST_CASE("-kernel files: read and checked at start-up, each problem a file error") {
    testing::TempDir dir;
    const auto k = bzimage();
    write_file(dir.path / "bzImage", k);
    write_file(dir.path / "initrd", std::vector<uint8_t>(5000, 7));
    write_file(dir.path / "empty", {});
    write_file(dir.path / "text", std::vector<uint8_t>(4096, 'x'));
    std::filesystem::create_symlink(dir.path / "bzImage", dir.path / "link");
    const std::string d = dir.path.string();

    const KernelBoot ok = KernelBoot::load({d + "/bzImage", d + "/initrd", "console=ttyS0"}, 512ull << 20);
    REQUIRE(ok.measurements().size() == 3);
    CHECK(ok.measurements()[0].what == "kernel");
    CHECK(ok.measurements()[0].pcr == 9);
    CHECK(std::string(reinterpret_cast<const char*>(ok.measurements()[0].event_data.data())) == "bzImage");
    CHECK(ok.measurements()[1].pcr == 8);
    CHECK(std::string(reinterpret_cast<const char*>(ok.measurements()[1].event_data.data())) == "kernel_cmdline: console=ttyS0");
    CHECK(ok.measurements()[1].event_data.back() == 0);
    // GRUB's digest of the command line: the line itself, not the prefix (tpm2_eventlog checks it so).
    const std::string line = "console=ttyS0";
    const uint16_t sha256[] = {tcg_log::kAlgSha256};
    CHECK(ok.digests(1, sha256).at(0).value ==
          digest(EVP_sha256(), std::span(reinterpret_cast<const uint8_t*>(line.data()), line.size())));
    CHECK(ok.measurements()[2].what == "initrd");
    CHECK(ok.digests(0, kKernelDigestAlgorithms).size() == 4);  // SHA-1, -256, -384, -512
    CHECK(ok.digests(0, kKernelDigestAlgorithms)[3].value.size() == 64);
    const uint16_t sm3[] = {0x0012};  // TPM_ALG_SM3_256: not computed, left out
    CHECK(ok.digests(0, sm3).empty());
    // Computed when asked (a lazy KernelBoot), the same values.
    const KernelBoot lazy = KernelBoot::load({d + "/bzImage", d + "/initrd", "console=ttyS0"}, 512ull << 20, false);
    CHECK(lazy.digests(2, kKernelDigestAlgorithms)[1].value == ok.digests(2, kKernelDigestAlgorithms)[1].value);
    CHECK(lazy.kernel_sha256() == ok.digests(0, sha256).at(0).value);
    CHECK(KernelBoot::load({d + "/bzImage", std::nullopt, ""}, 512ull << 20).measurements().size() == 2);

    CHECK(error_of({d + "/missing", std::nullopt, ""}).find("-kernel " + d + "/missing: cannot open") == 0);
    CHECK(error_of({d + "/link", std::nullopt, ""}).find("is a symbolic link") != std::string::npos);
    CHECK(error_of({d, std::nullopt, ""}).find("not a regular file") != std::string::npos);
    CHECK(error_of({d + "/text", std::nullopt, ""}) ==
          "-kernel " + d + "/text: not a Linux bzImage (no boot sector flag or 'HdrS' setup header)");
    CHECK(error_of({d + "/bzImage", d + "/empty", ""}) == "-initrd " + d + "/empty: the file is empty");
    CHECK(error_of({d + "/bzImage", std::nullopt, std::string(3000, 'a')}).find("at most 2047") != std::string::npos);
}

TEST_CASE("a -kernel boot on a real TPM: loaded, logged after the firmware's events, PCR 8 and 9 extended") {
    testing::TempDir dir;
    const auto k = bzimage();
    const std::vector<uint8_t> initrd(70000, 0x42);
    write_file(dir.path / "vmlinuz", k);
    write_file(dir.path / "initrd.gz", initrd);
    const std::string cmdline = "console=ttyS0 root=/dev/vda";
    const KernelBoot boot = KernelBoot::load({(dir.path / "vmlinuz").string(), (dir.path / "initrd.gz").string(), cmdline},
                                             64ull << 20);
    const auto line = std::span(reinterpret_cast<const uint8_t*>(cmdline.data()), cmdline.size());

    for (TpmVersion version : {TpmVersion::v2_0, TpmVersion::v1_2}) {
        const bool v2 = version == TpmVersion::v2_0;
        CAPTURE(v2);
        LibtpmsBackend tpm((dir.path / (v2 ? "tpm2" : "tpm12")).string(), version);
        REQUIRE(tpm.power_cycle());
        REQUIRE(tpm_code(run(tpm, v2 ? Cmd(0x8001, 0x144).u16(0).done() : Cmd(0x00C1, 0x99).u16(1).done())) == 0);
        std::vector<uint8_t> ram(64ull << 20, 0);
        const GuestMemory memory({{0, ram.size(), ram.data()}});
        constexpr uint64_t kLog = 0x3000000, kLogSize = 0x10000;
        std::vector<uint8_t> seabios;
        if (v2) {
            seabios = seabios_log_2_0();
        } else {  // TPM 1.2: one SHA-1 event on PCR 0
            seabios.resize(32 + 4, 0);
            store_le(std::span(seabios).subspan(4, 4), 8);
            store_le(std::span(seabios).subspan(28, 4), 4);
        }
        std::memcpy(ram.data() + kLog, seabios.data(), seabios.size());
        {
            TpmWorker worker(tpm, [](std::span<const uint8_t>) {});
            REQUIRE(boot.boot(memory, kLog, kLogSize, &worker));
            REQUIRE(worker.wait_idle(std::chrono::seconds(30)));
        }
        CHECK(std::memcmp(ram.data() + lb::kKernelAddr, k.data() + 28 * 512, k.size() - 28 * 512) == 0);
        CHECK(std::memcmp(ram.data() + boot.plan().initrd_addr, initrd.data(), initrd.size()) == 0);

        // The log: the firmware's events untouched, then kernel (9), command line (8), initrd (9).
        auto layout = tl::parse(std::span(ram).subspan(kLog, kLogSize), version);
        REQUIRE(layout);
        CHECK(layout->events == (v2 ? 2u : 1u) + 3u);
        CHECK(std::memcmp(ram.data() + kLog, seabios.data(), seabios.size()) == 0);
        const size_t first = kLog + seabios.size();
        CHECK(load_le(std::span(ram).subspan(first, 4)) == 9);
        CHECK(load_le(std::span(ram).subspan(first + 4, 4)) == tl::kEvIpl);

        // PCR 8 and 9 as computed here: extend(0, H(cmdline)) and extend(extend(0, H(kernel)), H(initrd)).
        const EVP_MD* md = v2 ? EVP_sha256() : EVP_sha1();
        const std::vector<uint8_t> zero(static_cast<size_t>(EVP_MD_get_size(md)), 0);
        const auto pcr8 = digest(md, zero, digest(md, line));
        const auto pcr9 = digest(md, digest(md, zero, digest(md, k)), digest(md, initrd));
        for (uint32_t pcr : {8u, 9u}) {
            CAPTURE(pcr);
            std::vector<uint8_t> value;
            if (v2) {  // TPM2_PCR_Read(sha256: pcr); the digest follows 30 bytes of response fields
                const uint8_t select[3] = {0, static_cast<uint8_t>(1u << (pcr - 8)), 0};
                auto r = run(tpm, Cmd(0x8001, 0x17E).u32(1).u16(0x000B).u8(3).u8(select[0]).u8(select[1]).u8(select[2]).done());
                REQUIRE(tpm_code(r) == 0);
                value.assign(r.begin() + 30, r.begin() + 62);
            } else {  // TPM_PCRRead(pcr)
                auto r = run(tpm, Cmd(0x00C1, 0x15).u32(pcr).done());
                REQUIRE(tpm_code(r) == 0);
                value.assign(r.begin() + 10, r.begin() + 30);
            }
            CHECK(value == (pcr == 8 ? pcr8 : pcr9));
        }
        tpm.shutdown();
    }
}

TEST_CASE("without a usable log the PCRs are still extended; without a TPM nothing is measured") {
    testing::TempDir dir;
    const auto k = bzimage();
    write_file(dir.path / "vmlinuz", k);
    const KernelBoot boot = KernelBoot::load({(dir.path / "vmlinuz").string(), std::nullopt, "quiet"}, 64ull << 20);
    std::vector<uint8_t> ram(64ull << 20, 0);
    const GuestMemory memory({{0, ram.size(), ram.data()}});
    CHECK(boot.boot(memory, std::nullopt, 0x10000, nullptr));  // no TPM: loaded only

    // PCR 9 (SHA-256 bank) after the kernel's extend, as computed here: the TPM took the digest list
    // with all four banks (it ignores the ones it has not allocated).
    const EVP_MD* md = EVP_sha256();
    const std::vector<uint8_t> zero(32, 0);
    const auto pcr9 = digest(md, zero, digest(md, k));
    constexpr uint64_t kLog = 0x3000000;
    auto log_full = seabios_log_2_0();  // a log with no room left: nothing appended
    auto log_garbage = std::vector<uint8_t>(0x10000, 0x77);  // not a log at all
    struct Case {
        const char* what;
        std::optional<uint64_t> address;
        const std::vector<uint8_t>* log;
        uint64_t size;
    } cases[] = {{"outside RAM", 0xFFFFFFFFF000, nullptr, 0x10000},
                 {"never reported", std::nullopt, nullptr, 0x10000},
                 {"malformed", kLog, &log_garbage, 0x10000},
                 {"full", kLog, &log_full, log_full.size()}};
    for (const Case& c : cases) {
        CAPTURE(c.what);
        std::fill(ram.begin(), ram.end(), 0);
        if (c.log) std::memcpy(ram.data() + kLog, c.log->data(), c.log->size());
        LibtpmsBackend tpm((dir.path / "tpm").string(), TpmVersion::v2_0);
        REQUIRE(tpm.power_cycle());
        REQUIRE(tpm_code(run(tpm, Cmd(0x8001, 0x144).u16(0).done())) == 0);
        {
            TpmWorker worker(tpm, [](std::span<const uint8_t>) {});
            CHECK(boot.boot(memory, c.address, c.size, &worker));
            REQUIRE(worker.wait_idle(std::chrono::seconds(30)));
        }
        auto r = run(tpm, Cmd(0x8001, 0x17E).u32(1).u16(0x000B).u8(3).u8(0).u8(2).u8(0).done());
        REQUIRE(tpm_code(r) == 0);
        CHECK(std::vector<uint8_t>(r.begin() + 30, r.begin() + 62) == pcr9);
        if (c.log) CHECK(std::memcmp(ram.data() + kLog, c.log->data(), c.log->size()) == 0);  // the log untouched
        tpm.shutdown();
    }

    std::vector<uint8_t> tiny(1 << 20);
    CHECK_FALSE(boot.boot(GuestMemory({{0, tiny.size(), tiny.data()}}), std::nullopt, 0x10000, nullptr));
}

TEST_CASE("PCR extend commands: TPM2_PCR_Extend with every digest, TPM_Extend with SHA-1") {
    const std::vector<tl::Digest> d = {{tl::kAlgSha1, std::vector<uint8_t>(20, 1)}, {tl::kAlgSha256, std::vector<uint8_t>(32, 2)}};
    const auto c2 = pcr_extend_command(TpmVersion::v2_0, 9, d);
    CHECK(c2.size() == 10 + 4 + 13 + 4 + 22 + 34);
    CHECK(testing::be32(c2, 6) == 0x182);
    CHECK(testing::be32(c2, 10) == 9);
    CHECK(testing::be32(c2, 27) == 2);
    const auto c1 = pcr_extend_command(TpmVersion::v1_2, 8, d);
    CHECK(c1.size() == 10 + 4 + 20);
    CHECK(testing::be32(c1, 6) == 0x14);
    CHECK(c1[14] == 1);
}

TEST_CASE("-kernel-cache: a file's digests come from its record only while the file is unchanged") {
    testing::TempDir dir;
    write_file(dir.path / "bzImage", bzimage());
    write_file(dir.path / "initrd", std::vector<uint8_t>(5000, 7));
    const std::string d = dir.path.string(), cache = d + "/cache";
    const KernelBoot::Files files{d + "/bzImage", d + "/initrd", "console=ttyS0", cache};
    const std::vector<uint8_t> real = KernelBoot::load(files, 512ull << 20, false).kernel_sha256();
    // The files were just written: no record is kept for them yet (a change within the file
    // system's timestamp granularity could go unseen), and the cache stays as it was.
    KernelBoot::load(files, 512ull << 20, true).save_digest_records();
    CHECK_FALSE(std::filesystem::exists(cache));

    // A record for the kernel's exact stamp is believed (here one that says something else, to see it).
    const std::vector<uint8_t> recorded(32, 0xAB);
    static constexpr char kAbHex[] = "abababababababababababababababababababababababababababababababab";
    auto record_for = [&](const std::string& path) {  // (file name, text) of a record for the file as it is now
        struct stat st {};
        REQUIRE(::stat(path.c_str(), &st) == 0);
        const auto ns = [](const timespec& t) { return t.tv_sec * 1'000'000'000ll + t.tv_nsec; };
        return std::pair(fmt::format("{}-{}.digests", st.st_dev, st.st_ino),
                         fmt::format("minivmm-digests 1\nstamp {} {} {} {} {}\nsha256 {}\n", st.st_dev, st.st_ino, st.st_size,
                                     ns(st.st_mtim), ns(st.st_ctim), std::string(kAbHex)));
    };
    std::filesystem::create_directory(cache);
    auto [name, record] = record_for(d + "/bzImage");
    std::ofstream(cache + "/" + name) << record;
    CHECK(KernelBoot::load(files, 512ull << 20, false).kernel_sha256() == recorded);
    CHECK(KernelBoot::load(files, 512ull << 20, false).digests(0, kKernelDigestAlgorithms).size() == 4);  // the rest computed
    // The file changed (its ctime moved on, its size too): the record is ignored.
    std::ofstream(d + "/bzImage", std::ios::app | std::ios::binary) << '\0';
    std::vector<uint8_t> grown = bzimage();
    grown.push_back(0);
    CHECK(KernelBoot::load(files, 512ull << 20, false).kernel_sha256() == digest(EVP_sha256(), grown));
    CHECK(real == digest(EVP_sha256(), bzimage()));
    // A record that is a symbolic link is not followed, even one for the file as it is.
    std::tie(name, record) = record_for(d + "/bzImage");
    std::filesystem::remove(cache + "/" + name);
    std::ofstream(d + "/elsewhere") << record;
    std::filesystem::create_symlink(d + "/elsewhere", cache + "/" + name);
    CHECK(KernelBoot::load(files, 512ull << 20, false).kernel_sha256() == digest(EVP_sha256(), grown));
    std::filesystem::remove(cache + "/" + name);
    std::ofstream(cache + "/" + name) << record;  // the same record as a file: believed
    CHECK(KernelBoot::load(files, 512ull << 20, false).kernel_sha256() == recorded);
}
