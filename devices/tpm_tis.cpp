// TPM TIS register access, the command state machine (TPM_STS, DATA_FIFO) and command completion.
// Locality arbitration (TPM_ACCESS), aborts and interrupts are in tpm_tis_locality.cpp.
#include "devices/tpm_tis.hpp"

#include <algorithm>

#include "vmm/base/bytes.hpp"
#include "vmm/base/log.hpp"
#include "vmm/base/platform.hpp"

namespace minivmm {

using namespace tis;

static_assert(platform::kTpmTisSize == kNumLocalities << kLocalityShift,
              "the TIS window holds exactly the five locality pages");

namespace {

// PTP FIFO register space: DATA_FIFO at 0x24 and the extended XDATA_FIFO at 0x80..0xBF are the same FIFO.
constexpr bool is_fifo(uint32_t word) noexcept {
    return word == kRegDataFifo || (word >= kRegXDataFifo && word <= kRegXDataFifoEnd);
}

// 1, 2 or 4 bytes inside one 4-byte register word, as QEMU accepts them: the PTP's 16-bit
// burstCount lives at STS+1 (TCG PC Client PTP, TPM_STS_x), so a word read at 0x19 is legal.
constexpr bool is_register_access(uint64_t offset, size_t size) noexcept {
    return (size == 1 || size == 2 || size == 4) && (offset & 3) + size <= 4;
}

constexpr bool is_split_access(uint64_t offset, size_t size) noexcept {
    return size == 8 && offset % 8 == 0;
}

}  // namespace

TpmTis::TpmTis(TpmPort& port, IrqLine* irq, uint8_t irq_vector) noexcept
    : port_(port), irq_(irq), irq_vector_(irq_vector), version_(port.version()),
      buffer_size_(std::min(port.buffer_size(), kBufferMax)) {
    const bool tpm2 = version_ == TpmVersion::v2_0;
    for (Locality& l : loc_) {
        l.sts = tpm2 ? kStsFamily20 : kStsFamily12;
        l.iface_id = tpm2 ? kInterfaceIdTpm20 : kInterfaceIdTpm12;
    }
}

// --- Access decoding --------------------------------------------------------------------------

void TpmTis::read(uint64_t offset, std::span<uint8_t> data) noexcept {
    const size_t size = data.size();
    if (size == 0 || size > 8 || offset >= platform::kTpmTisSize || size > platform::kTpmTisSize - offset) {
        std::fill(data.begin(), data.end(), uint8_t{0xFF});
        return;
    }
    const auto off = static_cast<uint32_t>(offset);
    if (is_register_access(offset, size)) {
        store_le(data, read_word(off, static_cast<unsigned>(size)));
    } else if (is_split_access(offset, size)) {
        store_le(data.first(4), read_word(off, 4));
        store_le(data.subspan(4), read_word(off + 4, 4));
    } else {
        log::debug("tpm-tis: unaligned {}-byte read at {:#x} reads all-ones", size, offset);
        std::fill(data.begin(), data.end(), uint8_t{0xFF});
    }
}

void TpmTis::write(uint64_t offset, std::span<const uint8_t> data) noexcept {
    const size_t size = data.size();
    if (size == 0 || size > 8 || offset >= platform::kTpmTisSize || size > platform::kTpmTisSize - offset) return;
    const auto off = static_cast<uint32_t>(offset);
    if (is_register_access(offset, size)) {
        write_word(off, static_cast<uint32_t>(load_le(data)), static_cast<unsigned>(size));
    } else if (is_split_access(offset, size)) {
        write_word(off, static_cast<uint32_t>(load_le(data.first(4))), 4);
        write_word(off + 4, static_cast<uint32_t>(load_le(data.subspan(4))), 4);
    } else {
        log::debug("tpm-tis: unaligned {}-byte write at {:#x} dropped", size, offset);
    }
}

// Registers are decoded on 4-byte words; a narrower access sees the word shifted right by its
// byte position (QEMU tpm_tis_mmio_read). FIFO accesses instead move `size` bytes.
uint32_t TpmTis::read_word(uint32_t offset, unsigned size) noexcept {
    const auto locty = static_cast<uint8_t>(offset >> kLocalityShift);
    const uint32_t addr = offset & 0xFFF;
    const uint32_t word = addr & 0xFFC;
    const Locality& l = loc_[locty];
    uint32_t val = 0xFFFFFFFF;
    if (is_fifo(word)) {
        return locty == active_ ? read_fifo(locty, size) : val;
    }
    switch (word) {
    case kRegAccess: val = read_access(locty); break;
    case kRegIntEnable: val = l.inte; break;
    case kRegIntVector: val = irq_vector_; break;
    case kRegIntStatus: val = l.ints; break;
    case kRegIntfCapability:
        val = version_ == TpmVersion::v2_0 ? kIntfCapabilityTpm20 : kIntfCapabilityTpm12;
        break;
    case kRegSts:
        if (locty == active_) val = read_sts(locty, size);  // PTP TPM_STS_x: only the active locality
        break;
    case kRegInterfaceId: val = l.iface_id; break;
    case kRegDidVid: val = kDidVid; break;
    case kRegRid: val = kRid; break;
    default: break;  // no register: all ones
    }
    return val >> ((addr & 3) * 8);
}

void TpmTis::write_word(uint32_t offset, uint32_t value, unsigned size) noexcept {
    const auto locty = static_cast<uint8_t>(offset >> kLocalityShift);
    // Locality 4 is reserved for the CPU's trusted-hardware cycles (PTP and TIS 1.3, "Locality");
    // like QEMU, software writes to it are ignored.
    if (locty == 4) return;
    const uint32_t addr = offset & 0xFFF;
    const uint32_t word = addr & 0xFFC;
    const unsigned shift = (addr & 3) * 8;
    const uint32_t size_mask = size == 4 ? 0xFFFFFFFF : (1u << (8 * size)) - 1;
    const uint32_t val = (value & size_mask) << shift;
    const uint32_t keep = ~(size_mask << shift);  // bits of the word this access does not write
    if (is_fifo(word)) {
        if (locty == active_) write_fifo(locty, val >> shift, size);
        return;
    }
    switch (word) {
    case kRegAccess: write_access(locty, static_cast<uint8_t>(val)); break;
    case kRegIntEnable:
    case kRegIntStatus: write_interrupt_regs(locty, word, val, keep); break;
    case kRegSts:
        if (locty == active_) write_sts(locty, val);
        break;
    case kRegInterfaceId:
        // PTP TPM_INTERFACE_ID_x: IntfSelLock locks the interface selection of every locality.
        if (val & kInterfaceIdIntSelLock) {
            for (Locality& l : loc_) l.iface_id |= kInterfaceIdIntSelLock;
        }
        break;
    default: break;  // read-only (INT_VECTOR is hard-wired, INTF_CAPABILITY, DID_VID, RID) or none
    }
}

// --- Register handlers ------------------------------------------------------------------------

uint32_t TpmTis::read_sts(uint8_t locty, unsigned size) const noexcept {
    const Locality& l = loc_[locty];
    size_t burst;
    if (l.sts & kStsDataAvailable) {
        burst = response_len_ > rw_offset_ ? response_len_ - rw_offset_ : 0;  // bytes left to read
    } else {
        burst = buffer_size_ > rw_offset_ ? buffer_size_ - rw_offset_ : 0;  // bytes that fit
        // A byte read of burstCount's low byte must not show 0x00 for 0x100 free bytes (QEMU).
        if (size == 1 && burst > 0xFF) burst = 0xFF;
    }
    return static_cast<uint32_t>(burst) << kStsBurstCountShift | l.sts;
}

// Interrupt registers take writes from the active locality only (QEMU 7.2; the recorded
// SeaBIOS boot writes INT_ENABLE with no locality active and expects it unchanged).
void TpmTis::write_interrupt_regs(uint8_t locty, uint32_t word, uint32_t val, uint32_t keep) noexcept {
    if (locty != active_) return;
    Locality& l = loc_[locty];
    if (word == kRegIntEnable) {
        const bool was_on = l.inte & kIntGlobalEnable;
        l.inte = (l.inte & keep) | (val & kIntEnableWritable);
        if (!was_on && (l.inte & kIntGlobalEnable)) irq_latched_since_enable_ = false;
        return;
    }
    // INT_STATUS: write 1 to clear (PTP TPM_INT_STATUS_x); the shared line drops once nothing is pending.
    if ((val & kIntSupported) && (l.ints & kIntSupported)) {
        l.ints &= ~val;
        if (l.ints == 0) lower_irq();
    }
    l.ints &= ~(val & kIntSupported);
}

void TpmTis::write_sts(uint8_t locty, uint32_t val) noexcept {
    Locality& l = loc_[locty];
    if (version_ == TpmVersion::v2_0) {
        // PTP TPM_STS_x: commandCancel aborts the executing command; resetEstablishment is only
        // honoured from locality 3 (or 4, whose writes never get here).
        if ((val & kStsCommandCancel) && l.state == State::execution) port_.cancel();
        if ((val & kStsResetEstablishment) && (locty == 3 || locty == 4)) port_.reset_established(locty);
    }
    // Exactly one of commandReady, tpmGo, responseRetry; several at once do nothing (QEMU).
    switch (val & (kStsCommandReady | kStsTpmGo | kStsResponseRetry)) {
    case kStsCommandReady: write_command_ready(locty); break;
    case kStsTpmGo:
        if (l.state == State::reception && !(l.sts & kStsExpect)) send_command(locty);
        break;
    case kStsResponseRetry:
        if (l.state == State::completion) {  // re-read the response from its start
            rw_offset_ = 0;
            set_sts(locty, kStsValid | kStsDataAvailable);
        }
        break;
    default: break;
    }
}

// commandReady transitions of the TIS state machine (TIS 1.3 / PTP "FIFO state transition table").
void TpmTis::write_command_ready(uint8_t locty) noexcept {
    Locality& l = loc_[locty];
    switch (l.state) {
    case State::ready: rw_offset_ = 0; break;
    case State::idle:
        set_sts(locty, kStsCommandReady);
        l.state = State::ready;
        raise_irq(locty, kIntCommandReady);
        break;
    case State::execution:
    case State::reception: prepare_abort(locty, locty); break;
    case State::completion:
        rw_offset_ = 0;
        l.state = State::ready;
        if (!(l.sts & kStsCommandReady)) {
            set_sts(locty, kStsCommandReady);
            raise_irq(locty, kIntCommandReady);
        }
        l.sts &= ~kStsDataAvailable;
        break;
    }
}

// The command is written byte by byte, LSB of an access first. STS.expect stays set until the
// buffer holds as many bytes as the header's paramSize says (or the buffer is full).
void TpmTis::write_fifo(uint8_t locty, uint32_t val, unsigned size) noexcept {
    Locality& l = loc_[locty];
    if (l.state != State::ready && l.state != State::reception) {
        log::debug("tpm-tis: FIFO write in locality {} outside Ready/Reception dropped", locty);
        return;
    }
    if (l.state == State::ready) {
        l.state = State::reception;
        set_sts(locty, kStsExpect | kStsValid);
    }
    while ((l.sts & kStsExpect) && size > 0) {
        if (rw_offset_ < buffer_size_) {
            buffer_[rw_offset_++] = static_cast<uint8_t>(val);
            val >>= 8;
            --size;
        } else {
            set_sts(locty, kStsValid);  // buffer full: the rest is dropped, expect clears
        }
    }
    // Once paramSize (header bytes 2..5) is in, expect tells whether more bytes are wanted.
    // stsValid never drops while expect is set, so no stsValid interrupt is due here.
    if (rw_offset_ > 5 && (l.sts & kStsExpect)) {
        set_sts(locty, command_size() > rw_offset_ ? kStsExpect | kStsValid : kStsValid);
    }
}

// tpmGo (TIS state machine, Reception -> Execution): hand buffer[0, rw_offset) to the TPM.
void TpmTis::send_command(uint8_t locty) noexcept {
    if (outstanding_) {
        log::debug("tpm-tis: tpmGo in locality {} while another command executes ignored", locty);
        return;
    }
    loc_[locty].state = State::execution;
    outstanding_ = true;
    command_locality_ = locty;
    selftest_command_ = version_ == TpmVersion::v1_2 && rw_offset_ >= 10 &&
                        load_be32(buffer_, 6) == kTpm12OrdContinueSelfTest;
    response_len_ = 0;
    port_.submit(locty, std::span<const uint8_t>(buffer_.data(), rw_offset_));
}

void TpmTis::command_completed(std::span<const uint8_t> response) noexcept {
    if (!outstanding_) {
        log::debug("tpm-tis: TPM response with no command outstanding ignored");
        return;
    }
    outstanding_ = false;
    const uint8_t locty = command_locality_;
    const size_t n = std::min(response.size(), buffer_size_);
    std::copy_n(response.begin(), n, buffer_.begin());
    // The guest reads the header's paramSize bytes, never more than the TPM actually returned.
    response_len_ = n >= 6 ? std::min<size_t>(n, command_size()) : n;
    if (selftest_command_ && n >= 10 && load_be32(buffer_, 6) == 0) {
        for (Locality& l : loc_) l.sts |= kStsSelftestDone;  // sticky until reset
    }
    set_sts(locty, kStsValid | kStsDataAvailable);
    loc_[locty].state = State::completion;
    rw_offset_ = 0;
    if (valid(next_)) abort();  // an abort or locality change waited for this command
    raise_irq(locty, kIntDataAvailable | kIntStsValid);
}

bool TpmTis::interrupt_on_trial() const noexcept {
    if (irq_ == nullptr || !outstanding_ || irq_latched_since_enable_ || !valid(command_locality_)) return false;
    const uint32_t inte = loc_[command_locality_].inte;
    return (inte & kIntGlobalEnable) && (inte & (kIntDataAvailable | kIntStsValid));  // what completion raises
}

uint32_t TpmTis::read_fifo(uint8_t locty, unsigned size) noexcept {
    uint32_t val = 0;
    for (unsigned i = 0; i < size; ++i) {
        const uint8_t b = loc_[locty].state == State::completion ? read_data_byte(locty) : kNoDataByte;
        val |= uint32_t{b} << (8 * i);
    }
    return val;
}

// One response byte; dataAvail clears (and stsValid is signalled) after the last one.
uint8_t TpmTis::read_data_byte(uint8_t locty) noexcept {
    if (!(loc_[locty].sts & kStsDataAvailable)) return kNoDataByte;
    const uint8_t b = rw_offset_ < response_len_ ? buffer_[rw_offset_++] : kNoDataByte;
    if (rw_offset_ >= response_len_) {
        set_sts(locty, kStsValid);
        raise_irq(locty, kIntStsValid);
    }
    return b;
}

uint32_t TpmTis::command_size() const noexcept { return load_be32(buffer_, 2); }

void TpmTis::set_sts(uint8_t locty, uint32_t flags) noexcept {
    loc_[locty].sts = (loc_[locty].sts & kStsSticky) | flags;
}

}  // namespace minivmm
