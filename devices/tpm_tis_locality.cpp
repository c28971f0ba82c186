// TPM TIS locality arbitration through TPM_ACCESS (request, relinquish, seize), command aborts on
// a locality change, and interrupt delivery. TCG PC Client PTP and TIS 1.3, register
// TPM_ACCESS_x; the exact order of the checks is QEMU's (tpm_tis_mmio_write, ACCESS case).
#include "devices/tpm_tis.hpp"

namespace minivmm {

using namespace tis;

// PTP TPM_ACCESS_x: tpmRegValidSts always set; Seize is write-only; pendingRequest is computed from
// the other localities' requestUse; tpmEstablishment reads 1 while the flag is *not* set
// (QEMU: `!established`, so a fresh TPM reads 0x81).
uint32_t TpmTis::read_access(uint8_t locty) const noexcept {
    uint32_t val = loc_[locty].access & ~kAccessSeize;
    if (other_requests_use(locty)) val |= kAccessPendingRequest;
    if (!port_.established()) val |= kAccessTpmEstablishment;
    return val;
}

bool TpmTis::other_requests_use(uint8_t locty) const noexcept {
    for (uint8_t l = 0; l < kNumLocalities; ++l) {
        if (l != locty && (loc_[l].access & kAccessRequestUse)) return true;
    }
    return false;
}

void TpmTis::write_access(uint8_t locty, uint8_t val) noexcept {
    if (val & kAccessSeize) val &= static_cast<uint8_t>(~(kAccessRequestUse | kAccessActiveLocality));
    uint8_t new_active = active_;
    bool set_new_active = true;

    // activeLocality written as 1: relinquish. The highest locality with requestUse pending
    // becomes active next (through an abort of anything in flight); otherwise nobody is.
    if (val & kAccessActiveLocality) {
        if (active_ == locty) {
            uint8_t requester = kNoLocality;
            for (int c = kNumLocalities - 1; c >= 0; --c) {
                if (loc_[c].access & kAccessRequestUse) {
                    requester = static_cast<uint8_t>(c);
                    break;
                }
            }
            if (valid(requester)) {
                set_new_active = false;
                prepare_abort(locty, requester);
            } else {
                new_active = kNoLocality;
            }
        } else {
            loc_[locty].access &= static_cast<uint8_t>(~kAccessRequestUse);  // withdraw a request
        }
    }
    if (val & kAccessBeenSeized) loc_[locty].access &= static_cast<uint8_t>(~kAccessBeenSeized);
    if ((val & kAccessSeize) && try_seize(locty)) set_new_active = false;
    // requestUse: granted at once when no locality is active, else left pending.
    if ((val & kAccessRequestUse) && active_ != locty) {
        if (valid(active_)) {
            loc_[locty].access |= kAccessRequestUse;
        } else {
            new_active = locty;
        }
    }
    if (set_new_active) set_active_locality(new_active);
}

// Seize succeeds only from a locality higher than the active one (or with none active), and not
// while this or a higher locality already has a seize pending; a lower pending seize is dropped.
bool TpmTis::try_seize(uint8_t locty) noexcept {
    if (valid(active_) && locty <= active_) return false;
    if (loc_[locty].access & kAccessSeize) return false;
    for (unsigned l = locty + 1u; l < kNumLocalities; ++l) {
        if (loc_[l].access & kAccessSeize) return false;
    }
    for (unsigned l = 0; l < locty; ++l) loc_[l].access &= static_cast<uint8_t>(~kAccessSeize);
    loc_[locty].access |= kAccessSeize;
    prepare_abort(active_, locty);
    return true;
}

// The previous owner loses activeLocality (and its request, unless it was seized, in which case
// it gets beenSeized); the new one gains it. A change raises localityChange on the new owner.
void TpmTis::set_active_locality(uint8_t new_locty) noexcept {
    const bool change = active_ != new_locty;
    if (change && valid(active_)) {
        const bool seized = valid(new_locty) && (loc_[new_locty].access & kAccessSeize);
        uint8_t cleared = kAccessActiveLocality;
        if (!seized) cleared |= kAccessRequestUse;
        loc_[active_].access &= static_cast<uint8_t>(~cleared);
        if (seized) loc_[active_].access |= kAccessBeenSeized;
    }
    active_ = new_locty;
    if (valid(new_locty)) {
        loc_[new_locty].access |= kAccessActiveLocality;
        loc_[new_locty].access &= static_cast<uint8_t>(~(kAccessRequestUse | kAccessSeize));
    }
    if (change) raise_irq(active_, kIntLocalityChanged);
}

// A locality change or commandReady during Reception/Execution aborts the command. If a command
// is executing, the TPM is asked to cancel and the abort finishes in command_completed().
void TpmTis::prepare_abort(uint8_t locty, uint8_t new_locty) noexcept {
    aborting_ = locty;  // may be kNoLocality (seize with no active locality)
    next_ = new_locty;
    for (const Locality& l : loc_) {
        if (l.state == State::execution) {
            port_.cancel();
            return;
        }
    }
    abort();
}

void TpmTis::abort() noexcept {
    rw_offset_ = 0;
    // The aborting locality stays active: it goes back to Ready with commandReady set.
    if (aborting_ == next_ && valid(next_)) {
        loc_[next_].state = State::ready;
        set_sts(next_, kStsCommandReady);
        raise_irq(next_, kIntCommandReady);
    }
    set_active_locality(next_);
    next_ = kNoLocality;
    aborting_ = kNoLocality;
}

// PTP TPM_INT_ENABLE_x/TPM_INT_STATUS_x: an event is latched in INT_STATUS and asserts the (level) interrupt
// only when both the global enable and the event's enable bit are set in that locality.
void TpmTis::raise_irq(uint8_t locty, uint32_t mask) noexcept {
    if (!valid(locty)) return;
    Locality& l = loc_[locty];
    if (!(l.inte & kIntGlobalEnable) || !(l.inte & mask)) return;
    l.ints |= mask;
    irq_latched_since_enable_ = true;
    if (!irq_level_) {
        irq_level_ = true;
        if (irq_ != nullptr) irq_->set(true);
    }
}

void TpmTis::lower_irq() noexcept {
    if (!irq_level_) return;
    irq_level_ = false;
    if (irq_ != nullptr) irq_->set(false);
}

}  // namespace minivmm
