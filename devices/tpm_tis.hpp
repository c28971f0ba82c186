// TPM TIS / FIFO interface (TCG PC Client Platform TPM Profile (PTP) Specification, FIFO
// interface; TIS 1.3 for TPM 1.2) with QEMU tpm-tis' observable behaviour: five localities of
// 4 KiB at platform::kTpmTisBase, one 4 KiB command/response buffer shared by all localities,
// locality arbitration through TPM_ACCESS (request, relinquish, seize), the command state machine
// in TPM_STS, and optional interrupts through an IrqLine.
//
// The device is a pure state machine: TPM_STS.tpmGo hands the command to the TpmPort,
// which answers later through command_completed(). Between the two the locality is in the
// Execution state (STS shows neither dataAvail nor commandReady).
//
// Access rules (QEMU's memory-region rules for this device): naturally aligned accesses of 1, 2
// or 4 bytes reach the registers (decoded on 4-byte words, little-endian); an aligned 8-byte
// access is handled as two 4-byte accesses (low word first), so it moves 8 bytes through the
// FIFO; any other access reads all-ones and its writes are dropped. Offsets that decode to no
// register read all-ones. Writes to locality 4 are ignored (QEMU: locality 4 is reserved for
// the hardware/CPU, not software).
//
// A machine reset builds a new device (vmm/main.cpp rebuilds the Machine; the old TpmWorker
// abandons a command in flight, so its response never arrives here).
//
// No lock inside (devices/device.hpp): read(), write() and command_completed() run under the
// machine's device lock. The port's submit() and cancel() must not call command_completed()
// before they return.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "devices/device.hpp"
#include "devices/device_state.hpp"
#include "devices/tpm_port.hpp"
#include "devices/tpm_tis_regs.hpp"

namespace minivmm {

class TpmTis final : public TpmFrontend, public SavesState {
public:
    // `irq` may be nullptr: the device is then polled (as with QEMU's DSDT, which advertises no
    // IRQ). `irq_vector` is what TPM_INT_VECTOR reads (QEMU: ISA IRQ 5). The power-on state
    // (QEMU tpm_tis_reset): the TPM's version and buffer size, all localities idle, none active.
    TpmTis(TpmPort& port, IrqLine* irq, uint8_t irq_vector = tis::kDefaultIrqVector) noexcept;

    std::string_view name() const noexcept override { return "tpm-tis"; }
    void read(uint64_t offset, std::span<uint8_t> data) noexcept override;
    void write(uint64_t offset, std::span<const uint8_t> data) noexcept override;

    // The TPM finished the command submitted by TPM_STS.tpmGo. At most buffer-size bytes of
    // `response` are kept; the guest reads min(response.size(), header paramSize) bytes. A call
    // with no command outstanding is ignored.
    void command_completed(std::span<const uint8_t> response) noexcept override;
    // A command executes in a locality whose interrupt on completion (global enable, and dataAvail
    // or stsValid) is on, and no interrupt event has been latched since the guest turned the global
    // enable on (a restored device: its guest's driver tested it before the save).
    bool interrupt_on_trial() const noexcept override;

    // Snapshots (tpm_tis_state.cpp has the format). Precondition of save_state(): no command
    // outstanding (command_outstanding() false); load_state() refuses a blob with a locality in
    // the Execution state, or for another TPM version or buffer size, and drives the IRQ line
    // to the restored level.
    void save_state(StateWriter& out) const override;
    bool load_state(std::span<const uint8_t> blob) noexcept override;

    // Diagnostics and tests.
    bool command_outstanding() const noexcept { return outstanding_; }
    uint8_t active_locality() const noexcept { return active_; }
    bool irq_level() const noexcept { return irq_level_; }

private:
    struct Locality {
        tis::State state = tis::State::idle;
        uint8_t access = tis::kAccessRegValidSts;
        uint32_t sts = 0;
        uint32_t iface_id = 0;
        uint32_t inte = tis::kIntPolarityLowLevel;
        uint32_t ints = 0;
    };

    // One naturally aligned access of 1, 2 or 4 bytes.
    uint32_t read_word(uint32_t offset, unsigned size) noexcept;
    void write_word(uint32_t offset, uint32_t value, unsigned size) noexcept;

    // Register handlers (tpm_tis.cpp).
    uint32_t read_access(uint8_t locty) const noexcept;
    uint32_t read_sts(uint8_t locty, unsigned size) const noexcept;
    uint32_t read_fifo(uint8_t locty, unsigned size) noexcept;
    uint8_t read_data_byte(uint8_t locty) noexcept;
    void write_interrupt_regs(uint8_t locty, uint32_t word, uint32_t val, uint32_t keep) noexcept;
    void write_sts(uint8_t locty, uint32_t val) noexcept;
    void write_command_ready(uint8_t locty) noexcept;
    void write_fifo(uint8_t locty, uint32_t val, unsigned size) noexcept;
    void send_command(uint8_t locty) noexcept;

    // Locality arbitration, aborts and interrupts (tpm_tis_locality.cpp).
    void write_access(uint8_t locty, uint8_t val) noexcept;
    bool try_seize(uint8_t locty) noexcept;
    bool other_requests_use(uint8_t locty) const noexcept;
    void set_active_locality(uint8_t new_locty) noexcept;
    void prepare_abort(uint8_t locty, uint8_t new_locty) noexcept;
    void abort() noexcept;
    void raise_irq(uint8_t locty, uint32_t mask) noexcept;
    void lower_irq() noexcept;
    void set_sts(uint8_t locty, uint32_t flags) noexcept;

    static bool valid(uint8_t locty) noexcept { return locty < tis::kNumLocalities; }
    uint32_t command_size() const noexcept;  // paramSize of the header in the buffer

    TpmPort& port_;
    IrqLine* irq_;
    uint8_t irq_vector_;
    TpmVersion version_ = TpmVersion::v2_0;
    size_t buffer_size_ = tis::kBufferMax;  // min(port.buffer_size(), kBufferMax)

    std::array<Locality, tis::kNumLocalities> loc_{};
    std::array<uint8_t, tis::kBufferMax> buffer_{};
    size_t rw_offset_ = 0;     // next byte written (Reception) or read (Completion)
    size_t response_len_ = 0;  // bytes of the response the guest may read
    uint8_t active_ = tis::kNoLocality;
    uint8_t aborting_ = tis::kNoLocality;  // locality whose command is being aborted
    uint8_t next_ = tis::kNoLocality;      // locality that becomes active after the abort

    bool outstanding_ = false;      // a command was submitted and has not completed
    uint8_t command_locality_ = 0;  // locality of the outstanding command
    bool selftest_command_ = false; // outstanding command is TPM 1.2 ContinueSelfTest
    bool irq_level_ = false;
    bool irq_latched_since_enable_ = false;  // see interrupt_on_trial()
};

}  // namespace minivmm
