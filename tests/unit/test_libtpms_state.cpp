// LibtpmsBackend snapshots with the REAL libtpms, TPM 2.0 and 1.2: a TPM with PCR 16 extended
// and a volatile object is saved, the backend destroyed, a SECOND one opened on another state
// directory takes the blob and is used without TPM_Startup; its directory then holds the
// restored permanent state (a third backend on it starts from it). Malformed blobs are refused
// and leave the TPM usable. Clone safety as for swtpm (one libtpms per process: in turn).
#include <doctest/doctest.h>

#include <libtpms/tpm_nvfilename.h>
#include <sys/random.h>

#include <cstdio>
#include <vector>

#include "temp_dir.hpp"
#include "tpm_state_scenario.hpp"
#include "vmm/tpm/libtpms_backend.hpp"
#include "vmm/tpm/tpm_state_blob.hpp"
#include "vmm/tpm/tpm_stir_random.hpp"

using namespace minivmm;
using namespace minivmm::testing;

namespace {

std::vector<uint8_t> saved(TpmBackend& tpm) {
    std::vector<uint8_t> blob;
    REQUIRE(tpm.save_state(blob));
    return blob;
}

// A started TPM with volatile marks, saved; the backend is gone afterwards.
std::vector<uint8_t> make_snapshot(TpmVersion v, VolatileMarks& marks) {
    TempDir dir;
    LibtpmsBackend tpm(dir.path.string(), v);
    REQUIRE(tpm.power_cycle());
    startup(tpm);
    marks = make_volatile_state(tpm);
    return saved(tpm);
}

std::vector<uint8_t> random_after_restore(TpmVersion v, const std::vector<uint8_t>& blob, bool stir) {
    TempDir dir;
    LibtpmsBackend tpm(dir.path.string(), v);
    REQUIRE(tpm.restore_state(blob));
    if (stir) {
        std::vector<uint8_t> e(32);
        REQUIRE(::getrandom(e.data(), e.size(), 0) == 32);
        REQUIRE(stir_random(tpm, e));
    }
    return get_random16(tpm);
}

}  // namespace

TEST_CASE("libtpms state: PCR 16 and a volatile object move to a new backend and state directory") {
    for (TpmVersion v : {TpmVersion::v2_0, TpmVersion::v1_2}) {
        CAPTURE(static_cast<int>(v));
        VolatileMarks marks;
        const std::vector<uint8_t> blob = make_snapshot(v, marks);
        TempDir dir;
        {
            LibtpmsBackend tpm(dir.path.string(), v);  // a fresh TPM, started once by the constructor
            REQUIRE(tpm.restore_state(blob));
            check_volatile_state(tpm, marks);
            // The permanent state reached the directory, as libtpms's own NV writes leave it.
            TpmStateBlob parts;
            REQUIRE(parse_tpm_state_blob(blob, parts));
            const auto file = TpmStateDir::inspect(dir.path.string())
                                  ->read(LibtpmsBackend::state_file_name(v, TPM_PERMANENT_ALL_NAME), v);
            REQUIRE(file.status == TpmStateDir::ReadResult::Status::ok);
            CHECK(file.payload == parts.permanent.data);
            CHECK_FALSE(std::filesystem::exists(dir.path / LibtpmsBackend::state_file_name(v, TPM_VOLATILESTATE_NAME)));
            // A machine reset afterwards: the blobs given to libtpms are not used again.
            REQUIRE(tpm.power_cycle());
            startup(tpm);
            CHECK(read_pcr16(tpm) != marks.pcr16);
        }
        // The same TPM (its permanent state) on the next start from the directory: saving it
        // again gives the same permanent part.
        LibtpmsBackend again(dir.path.string(), v);
        REQUIRE(again.power_cycle());
        startup(again);
        TpmStateBlob before, after;
        REQUIRE(parse_tpm_state_blob(blob, before));
        REQUIRE(parse_tpm_state_blob(saved(again), after));
        CHECK(after.permanent.data.size() == before.permanent.data.size());
    }
}

TEST_CASE("libtpms state: malformed, encrypted or other-version blobs are refused, the TPM goes on") {
    VolatileMarks marks;
    const std::vector<uint8_t> blob12 = make_snapshot(TpmVersion::v1_2, marks);
    TempDir dir;
    LibtpmsBackend tpm(dir.path.string(), TpmVersion::v2_0);
    REQUIRE(tpm.power_cycle());
    startup(tpm);
    const VolatileMarks mine = make_volatile_state(tpm);
    const std::vector<uint8_t> good = saved(tpm);
    TpmStateBlob parts;
    REQUIRE(parse_tpm_state_blob(good, parts));
    auto encrypted = parts;
    encrypted.permanent.flags = kTpmStatePartEncrypted;
    auto garbage = parts;
    for (uint8_t& b : garbage.permanent.data) b ^= 0xA5;
    auto bad_volatile = parts;
    bad_volatile.volatile_state.data.resize(bad_volatile.volatile_state.data.size() / 2);
    for (const auto& bad : {std::vector<uint8_t>{}, std::vector<uint8_t>(good.begin(), good.end() - 1),
                            [&] { auto b = good; b.push_back(0); return b; }(), blob12,
                            encode_tpm_state_blob(encrypted), encode_tpm_state_blob(garbage),
                            encode_tpm_state_blob(bad_volatile)}) {
        CHECK_FALSE(tpm.restore_state(bad));
        CHECK(tpm.running());
        check_volatile_state(tpm, mine);
    }
}

TEST_CASE("libtpms clone safety: the same blob gives the same random numbers, a stir makes them differ") {
    for (TpmVersion v : {TpmVersion::v2_0, TpmVersion::v1_2}) {
        CAPTURE(static_cast<int>(v));
        VolatileMarks marks;
        const std::vector<uint8_t> blob = make_snapshot(v, marks);
        const auto a = random_after_restore(v, blob, false), b = random_after_restore(v, blob, false);
        std::printf("libtpms TPM %s restored twice, no stir: GetRandom %s\n", v == TpmVersion::v2_0 ? "2.0" : "1.2",
                    a == b ? "SAME in both" : "differs");
        if (v == TpmVersion::v2_0) CHECK(a == b);  // as with swtpm: the TPM 2.0 DRBG is in the volatile state
        CHECK(random_after_restore(v, blob, true) != random_after_restore(v, blob, true));
    }
}
