// TpmSlot snapshots (vmm/tpm_slot.hpp) with the real libtpms: what the machine calls to save the
// TPM and to resume it in a new process: the slot's blob carries the backend's state; a slot on a
// fresh state directory takes it (running, no TPM_Startup, stirred by default); blobs for another
// TPM (none, another version, malformed) are refused and leave the TPM as it was.
// (TpmSlot::Attachment's quiesce/save_state/load_state need a KVM machine; the device state they
// carry is tested in test_tpm_tis_state.cpp.)
#include <doctest/doctest.h>

#include <memory>
#include <vector>

#include "temp_dir.hpp"
#include "tpm_state_scenario.hpp"
#include "vmm/tpm/libtpms_backend.hpp"
#include "vmm/tpm_slot.hpp"

using namespace minivmm;
using namespace minivmm::testing;

namespace {

struct Slot {
    Slot(const TempDir& dir, TpmVersion v) {
        auto backend = std::make_unique<LibtpmsBackend>(dir.path.string(), v);
        tpm = backend.get();
        slot = std::make_unique<TpmSlot>(std::move(backend), sandbox::TpmIo::none);
    }
    TpmBackend* tpm = nullptr;  // owned by the slot
    std::unique_ptr<TpmSlot> slot;
};

std::vector<uint8_t> slot_blob(TpmSlot& slot) {
    StateWriter w;
    REQUIRE(slot.save_state(w));
    return w.data();
}

}  // namespace

TEST_CASE("tpm slot state: the TPM resumes in another slot, and mismatched blobs are refused") {
    for (TpmVersion v : {TpmVersion::v2_0, TpmVersion::v1_2}) {
        CAPTURE(static_cast<int>(v));
        std::vector<uint8_t> blob;
        VolatileMarks marks;
        {
            TempDir dir;
            Slot a(dir, v);
            a.slot->power_on(1);
            startup(*a.tpm);
            marks = make_volatile_state(*a.tpm);
            blob = slot_blob(*a.slot);
        }
        TempDir dir;
        Slot b(dir, v);
        b.slot->power_on(1);
        startup(*b.tpm);
        const VolatileMarks own = make_volatile_state(*b.tpm, 0x33);  // a PCR 16 unlike the snapshot's
        REQUIRE(own.pcr16 != marks.pcr16);

        TpmSlot none(nullptr, sandbox::TpmIo::none);
        const std::vector<uint8_t> none_blob = slot_blob(none);
        CHECK(none.restore_state(none_blob));
        CHECK_FALSE(none.restore_state(blob));  // a TPM into a machine without one
        auto other_version = blob;
        other_version.at(2) = v == TpmVersion::v2_0 ? 1 : 2;
        auto trailing = blob;
        trailing.push_back(0);
        for (const auto& bad : {none_blob, other_version, trailing, std::vector<uint8_t>(blob.begin(), blob.end() - 1),
                                std::vector<uint8_t>{}}) {
            CHECK_FALSE(b.slot->restore_state(bad));
            check_volatile_state(*b.tpm, own);  // unchanged
        }
        REQUIRE(b.slot->restore_state(blob));  // with the stir
        check_volatile_state(*b.tpm, marks);
    }
}
