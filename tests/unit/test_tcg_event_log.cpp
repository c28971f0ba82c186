// The firmware's event log (firmware/tcg_event_log.hpp): logs laid out as SeaBIOS writes them
// (src/tcgbios.c tpm20_write_EfiSpecIdEventStruct, tpm_log_event), found, extended and refused
// when malformed; new logs started by start() and read back by parse() and by the real
// tpm2_eventlog (tpm2-tools). No KVM.
#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "devices/device.hpp"
#include "firmware/tcg_event_log.hpp"
#include "temp_dir.hpp"
#include "vmm/base/bytes.hpp"

using namespace minivmm;
namespace tl = minivmm::tcg_log;

namespace {

void u32(std::vector<uint8_t>& v, uint32_t x) { append_le(v, x, 4); }
void u16(std::vector<uint8_t>& v, uint16_t x) { append_le(v, x, 2); }

// A crypto-agile log with SHA-1 and SHA-256 banks and `events` events on PCR 0..events-1.
std::vector<uint8_t> agile_log(unsigned events, size_t area = 4096) {
    std::vector<uint8_t> spec(16, 0);
    std::memcpy(spec.data(), "Spec ID Event03", 15);
    u32(spec, 0);                                     // platformClass
    spec.insert(spec.end(), {0, 2, 0, 2});            // version 2.0, errata 0, uintnSize 2
    u32(spec, 2);                                     // numberOfAlgorithms
    u16(spec, tl::kAlgSha1), u16(spec, 20), u16(spec, tl::kAlgSha256), u16(spec, 32);
    spec.push_back(0);                                // vendorInfoSize
    std::vector<uint8_t> log;
    u32(log, 0), u32(log, tl::kEvNoAction);
    log.insert(log.end(), 20, 0);
    u32(log, static_cast<uint32_t>(spec.size()));
    log.insert(log.end(), spec.begin(), spec.end());
    for (unsigned i = 0; i < events; ++i) {
        u32(log, i), u32(log, 4 /* EV_SEPARATOR */), u32(log, 2);
        u16(log, tl::kAlgSha1), log.insert(log.end(), 20, 0x11);
        u16(log, tl::kAlgSha256), log.insert(log.end(), 32, 0x22);
        u32(log, 4), log.insert(log.end(), 4, 0);
    }
    log.resize(area, 0);
    return log;
}

std::vector<tl::Digest> digests() { return {{tl::kAlgSha256, std::vector<uint8_t>(32, 0xB2)}, {tl::kAlgSha1, std::vector<uint8_t>(20, 0xA1)}}; }

}  // namespace

TEST_CASE("a crypto-agile log: its algorithms and end are found, and an event appended after the last") {
    auto log = agile_log(3);
    auto layout = tl::parse(log, TpmVersion::v2_0);
    REQUIRE(layout);
    REQUIRE(layout->algorithms.size() == 2);
    CHECK(layout->algorithms[1].id == tl::kAlgSha256);
    CHECK(layout->algorithms[1].digest_size == 32);
    CHECK(layout->events == 4);
    const size_t end = layout->end;
    CHECK(end == 32 + 37 + 3 * (12 + 22 + 34 + 4 + 4));  // Spec ID data: 37 bytes with two algorithms

    const std::vector<uint8_t> data = {'v', 'm', 'l', 'i', 'n', 'u', 'z', 0};
    REQUIRE(tl::append(log, *layout, 9, tl::kEvIpl, digests(), data));
    CHECK(layout->end == end + 12 + 22 + 34 + 4 + data.size());
    // TCG_PCR_EVENT2 in the header's algorithm order, whatever order the digests came in.
    CHECK(load_le(std::span(log).subspan(end, 4)) == 9);
    CHECK(load_le(std::span(log).subspan(end + 4, 4)) == tl::kEvIpl);
    CHECK(load_le(std::span(log).subspan(end + 8, 4)) == 2);
    CHECK(load_le(std::span(log).subspan(end + 12, 2)) == tl::kAlgSha1);
    CHECK(log[end + 14] == 0xA1);
    CHECK(load_le(std::span(log).subspan(end + 34, 2)) == tl::kAlgSha256);
    CHECK(log[end + 36] == 0xB2);
    CHECK(std::memcmp(log.data() + end + 72, data.data(), data.size()) == 0);
    // Parsed again (as Linux reads it), the new event is the last one.
    auto again = tl::parse(log, TpmVersion::v2_0);
    REQUIRE(again);
    CHECK(again->events == 5);
    CHECK(again->end == layout->end);
}

TEST_CASE("a SHA-1 (TPM 1.2) log is walked to its zeroed rest and extended in its format") {
    std::vector<uint8_t> log;
    for (uint32_t pcr : {0u, 4u}) {
        u32(log, pcr), u32(log, 8);
        log.insert(log.end(), 20, 0x33);
        u32(log, 3), log.insert(log.end(), {'a', 'b', 'c'});
    }
    log.resize(1024, 0);
    auto layout = tl::parse(log, TpmVersion::v1_2);
    REQUIRE(layout);
    CHECK(layout->end == 2 * 35);
    CHECK(layout->algorithms.size() == 1);
    const std::vector<uint8_t> text = {'x', 0};
    REQUIRE(tl::append(log, *layout, 8, tl::kEvIpl, digests(), text));
    CHECK(load_le(std::span(log).subspan(70, 4)) == 8);
    CHECK(log[78] == 0xA1);  // the SHA-1 digest right after pcrIndex and eventType
    CHECK(load_le(std::span(log).subspan(98, 4)) == 2);
    CHECK(tl::parse(log, TpmVersion::v1_2)->events == 3);
    // An empty 1.2 log is valid: events start at 0.
    std::vector<uint8_t> empty(256, 0);
    CHECK(tl::parse(empty, TpmVersion::v1_2)->end == 0);
}

TEST_CASE("a missing digest or a full area leaves the log unchanged") {
    auto log = agile_log(1, 200);
    auto layout = tl::parse(log, TpmVersion::v2_0);
    REQUIRE(layout);
    const auto before = log;
    const size_t end = layout->end;
    std::vector<tl::Digest> only_sha1 = {{tl::kAlgSha1, std::vector<uint8_t>(20, 1)}};
    CHECK_FALSE(tl::append(log, *layout, 9, tl::kEvIpl, only_sha1, {}));
    std::vector<tl::Digest> short_sha256 = {{tl::kAlgSha1, std::vector<uint8_t>(20, 1)}, {tl::kAlgSha256, std::vector<uint8_t>(31, 2)}};
    CHECK_FALSE(tl::append(log, *layout, 9, tl::kEvIpl, short_sha256, {}));
    CHECK_FALSE(tl::append(log, *layout, 9, tl::kEvIpl, digests(), std::vector<uint8_t>(200, 1)));  // no room
    CHECK(log == before);
    CHECK(layout->end == end);
}

TEST_CASE("a log is read up to where Linux stops reading it; a bad header is refused") {
    CHECK_FALSE(tl::parse(std::vector<uint8_t>(16, 0), TpmVersion::v2_0));
    CHECK_FALSE(tl::parse(std::vector<uint8_t>(4096, 0), TpmVersion::v2_0));  // no Spec ID event
    auto bad_signature = agile_log(1);
    bad_signature[32] = 'X';
    CHECK_FALSE(tl::parse(bad_signature, TpmVersion::v2_0));
    auto digest = agile_log(1);
    digest[8] = 1;  // the header event's SHA-1 digest must be zero (Linux __calc_tpm2_event_size)
    CHECK_FALSE(tl::parse(digest, TpmVersion::v2_0));
    auto algs = agile_log(0);
    store_le(std::span(algs).subspan(32 + 24, 4), 0x40000000);  // numberOfAlgorithms
    CHECK_FALSE(tl::parse(algs, TpmVersion::v2_0));
    auto twice = agile_log(0);
    store_le(std::span(twice).subspan(32 + 32, 2), tl::kAlgSha1);  // SHA-256's slot says SHA-1 again
    CHECK_FALSE(tl::parse(twice, TpmVersion::v2_0));
    auto empty_digest = agile_log(0);
    store_le(std::span(empty_digest).subspan(32 + 30, 2), 0);  // SHA-1 with 0-byte digests
    CHECK_FALSE(tl::parse(empty_digest, TpmVersion::v2_0));

    // Events Linux does not read past end the log there (and the next event goes there).
    const size_t first = 32 + 37;
    auto stops_at_first = [&](std::vector<uint8_t> log) {
        auto layout = tl::parse(log, TpmVersion::v2_0);
        REQUIRE(layout);
        CHECK(layout->events == 1);
        CHECK(layout->end == first);
    };
    auto unknown_alg = agile_log(2);
    store_le(std::span(unknown_alg).subspan(first + 12, 2), 0x0012);  // SM3, not in the header
    stops_at_first(unknown_alg);
    auto fewer = agile_log(2);
    store_le(std::span(fewer).subspan(first + 8, 4), 1);  // fewer digests than algorithms
    stops_at_first(fewer);
    auto huge = agile_log(2);
    store_le(std::span(huge).subspan(first + 12 + 22 + 34, 4), 0xFFFFFFF0);  // event data past the end
    stops_at_first(huge);
    auto type0 = agile_log(2);
    store_le(std::span(type0).subspan(first + 4, 4), 0);  // type 0 ...
    store_le(std::span(type0).subspan(first + 12 + 22 + 34, 4), 0);  // ... with no data
    stops_at_first(type0);
    std::vector<uint8_t> sha1(64, 0);
    store_le(std::span(sha1).subspan(4, 4), 8);
    store_le(std::span(sha1).subspan(28, 4), 1000);  // data past the end
    CHECK(tl::parse(sha1, TpmVersion::v1_2)->end == 0);
}

namespace {

const std::vector<tl::Algorithm> kSha1Sha256 = {{tl::kAlgSha1, 20}, {tl::kAlgSha256, 32}};

// The digests of `data` for every algorithm of `layout`, as the firmware measures it (OpenSSL).
std::vector<tl::Digest> measure(const tl::Layout& layout, std::span<const uint8_t> data) {
    std::vector<tl::Digest> out;
    for (const tl::Algorithm& alg : layout.algorithms) {
        const EVP_MD* md = alg.id == tl::kAlgSha1     ? EVP_sha1()
                           : alg.id == tl::kAlgSha256 ? EVP_sha256()
                           : alg.id == tl::kAlgSha384 ? EVP_sha384()
                                                      : EVP_sha512();
        std::vector<uint8_t> value(static_cast<size_t>(EVP_MD_get_size(md)));
        unsigned n = 0;
        REQUIRE(EVP_Digest(data.data(), data.size(), value.data(), &n, md, nullptr) == 1);
        out.push_back({alg.id, value});
    }
    return out;
}

// The events a firmware-less boot logs first: the S-CRTM version on PCR 0 (PFP §10.4.1,
// EV_S_CRTM_VERSION: a UCS-2 string), then a separator (4 zero bytes) on PCRs 0..7.
void log_boot_events(std::vector<uint8_t>& area, tl::Layout& layout) {
    const std::vector<uint8_t> version = {'m', 0, 'v', 0, '1', 0, 0, 0};
    REQUIRE(tl::append(area, layout, 0, tl::kEvSCrtmVersion, measure(layout, version), version));
    const std::vector<uint8_t> separator(4, 0);
    for (uint32_t pcr = 0; pcr <= 7; ++pcr)
        REQUIRE(tl::append(area, layout, pcr, tl::kEvSeparator, measure(layout, separator), separator));
}

// Runs `command` through the shell; its exit status and what it printed (stdout and stderr).
std::pair<int, std::string> run_tool(const std::string& command) {
    FILE* p = ::popen((command + " 2>&1").c_str(), "r");
    REQUIRE(p != nullptr);
    std::string out;
    char buf[4096];
    while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    const int status = ::pclose(p);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace

TEST_CASE("start writes a new log that parse reads back, and events appended after it") {
    const std::vector<tl::Algorithm> algorithm_lists[] = {
        kSha1Sha256, {{tl::kAlgSha256, 32}}, {{tl::kAlgSha384, 48}, {tl::kAlgSha1, 20}, {tl::kAlgSha512, 64}}};
    for (const auto& algs : algorithm_lists) {
        CAPTURE(algs.size());
        std::vector<uint8_t> area(4096, 0xEE);  // stale bytes: start clears the whole area
        auto layout = tl::start(area, TpmVersion::v2_0, algs);
        REQUIRE(layout);
        CHECK(layout->events == 1);
        CHECK(layout->end == 32 + 29 + 4 * algs.size());
        CHECK(std::all_of(area.begin() + static_cast<long>(layout->end), area.end(), [](uint8_t b) { return b == 0; }));
        auto parsed = tl::parse(area, TpmVersion::v2_0);
        REQUIRE(parsed);
        CHECK(parsed->end == layout->end);
        CHECK(parsed->events == 1);
        REQUIRE(parsed->algorithms.size() == algs.size());
        for (size_t i = 0; i < algs.size(); ++i) {
            CHECK(parsed->algorithms[i].id == algs[i].id);
            CHECK(parsed->algorithms[i].digest_size == algs[i].digest_size);
        }
        log_boot_events(area, *layout);
        auto again = tl::parse(area, TpmVersion::v2_0);
        REQUIRE(again);
        CHECK(again->events == 10);
        CHECK(again->end == layout->end);
    }
    // The Spec ID fields SeaBIOS writes (src/tcgbios.c tpm20_write_EfiSpecIdEventStruct).
    std::vector<uint8_t> area(512);
    REQUIRE(tl::start(area, TpmVersion::v2_0, kSha1Sha256));
    CHECK(std::memcmp(area.data() + 32, "Spec ID Event03", 16) == 0);
    CHECK(std::vector<uint8_t>(area.begin() + 48, area.begin() + 56) == std::vector<uint8_t>{0, 0, 0, 0, 0, 2, 2, 2});
    CHECK(load_le(std::span(area).subspan(28, 4)) == 37);  // the data size of the header event

    // TPM 1.2: no header; the first event goes at 0.
    std::vector<uint8_t> area12(1024, 0xEE);
    const std::vector<tl::Algorithm> sha1 = {{tl::kAlgSha1, 20}};
    auto layout12 = tl::start(area12, TpmVersion::v1_2, sha1);
    REQUIRE(layout12);
    CHECK(layout12->end == 0);
    CHECK(layout12->events == 0);
    CHECK(std::all_of(area12.begin(), area12.end(), [](uint8_t b) { return b == 0; }));
    log_boot_events(area12, *layout12);
    auto parsed12 = tl::parse(area12, TpmVersion::v1_2);
    REQUIRE(parsed12);
    CHECK(parsed12->events == 9);
    CHECK(parsed12->end == 9 * 32 + 8 + 8 * 4);
}

TEST_CASE("start refuses algorithm lists a Spec ID event cannot carry, and a header that does not fit") {
    std::vector<uint8_t> area(4096, 0xEE);
    const auto before = area;
    using Algs = std::vector<tl::Algorithm>;
    const Algs bad[] = {
        {},
        {{tl::kAlgSha1, 20}, {tl::kAlgSha1, 20}},
        {{tl::kAlgSha1, 0}},
        {{tl::kAlgSha512, 65}},
    };
    for (const auto& algs : bad) CHECK_FALSE(tl::start(area, TpmVersion::v2_0, algs));
    Algs seventeen;
    for (uint16_t id = 0x100; id < 0x111; ++id) seventeen.push_back({id, 32});
    CHECK_FALSE(tl::start(area, TpmVersion::v2_0, seventeen));
    seventeen.pop_back();
    std::vector<uint8_t> big(4096);
    CHECK(tl::start(big, TpmVersion::v2_0, seventeen));  // 16 is the most
    std::vector<uint8_t> small(32 + 37 - 1, 0xEE);  // one byte short of the SHA-1 + SHA-256 header
    CHECK_FALSE(tl::start(small, TpmVersion::v2_0, kSha1Sha256));
    CHECK(small == std::vector<uint8_t>(small.size(), 0xEE));
    // TPM 1.2 logs are SHA-1 alone.
    CHECK_FALSE(tl::start(area, TpmVersion::v1_2, kSha1Sha256));
    CHECK_FALSE(tl::start(area, TpmVersion::v1_2, Algs{{tl::kAlgSha256, 32}}));
    CHECK_FALSE(tl::start(area, TpmVersion::v1_2, Algs{{tl::kAlgSha1, 32}}));
    CHECK(area == before);  // refused: untouched
}

TEST_CASE("tpm2_eventlog (tpm2-tools) reads a log made by start and append") {
    // The real reader must run: CI installs tpm2-tools (scripts/setup), so a missing one fails.
    const std::string tool = "/usr/bin/tpm2_eventlog";
    REQUIRE_MESSAGE(::access(tool.c_str(), X_OK) == 0, tool << " not found: install tpm2-tools (apt-get install tpm2-tools)");
    testing::TempDir dir;
    std::vector<uint8_t> area(8192);
    auto layout = tl::start(area, TpmVersion::v2_0, kSha1Sha256);
    REQUIRE(layout);
    log_boot_events(area, *layout);
    area.resize(layout->end);  // as Linux exports binary_bios_measurements: the events alone
    const std::string path = dir.sub("log.bin");
    testing::spit(path, area);
    const auto result = run_tool(tool + " " + path);
    const int status = result.first;  // no structured binding: clang cannot capture one in INFO
    const std::string& out = result.second;
    INFO(out);
    CHECK(status == 0);
    CHECK(out.find("EV_S_CRTM_VERSION") != std::string::npos);
    size_t separators = 0;
    for (size_t at = out.find("EV_SEPARATOR"); at != std::string::npos; at = out.find("EV_SEPARATOR", at + 1)) ++separators;
    CHECK(separators == 8);  // every event read, none dropped
    CHECK(out.find("specErrata: 2") != std::string::npos);
}
