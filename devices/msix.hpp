// MSI-X table and pending-bit array (PCI Local Bus 3.0 §6.8.2): 16-byte table entries
// (address low/high, data, vector control with mask bit 0) and one pending bit per vector. A
// message for a masked vector, or while the whole function is masked, sets its pending bit and is
// sent when the mask is cleared. Messages leave through an MsiSink, so nothing here needs KVM.
// The owning PCI function maps the table/PBA in a BAR and forwards MSI-X Message Control changes.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "devices/device.hpp"
#include "devices/device_state.hpp"

namespace minivmm {

class MsixTable final : public SavesState {
public:
    static constexpr uint16_t kMaxVectors = 64;
    static constexpr uint64_t kEntrySize = 16;
    static constexpr uint32_t kVectorMasked = 1;  // vector control bit 0

    // vectors: 1..kMaxVectors (throws std::invalid_argument otherwise).
    MsixTable(uint16_t vectors, MsiSink& sink);

    uint16_t vectors() const noexcept { return vectors_; }
    uint64_t table_size() const noexcept { return uint64_t{vectors_} * kEntrySize; }
    uint64_t pba_size() const noexcept { return 8; }  // one QWORD holds up to 64 pending bits

    // Accesses relative to the table / PBA start. Bytes outside them read 0 and drop writes.
    void read_table(uint64_t offset, std::span<uint8_t> data) const noexcept;
    void write_table(uint64_t offset, std::span<const uint8_t> data) noexcept;
    void read_pba(uint64_t offset, std::span<uint8_t> data) const noexcept;  // PBA is read-only

    // MSI-X Message Control bits 15 (enable) and 14 (function mask).
    void set_control(bool enabled, bool function_masked) noexcept;
    bool enabled() const noexcept { return enabled_; }
    bool function_masked() const noexcept { return function_masked_; }

    // Sends (or marks pending) vector `vector`. Ignored when MSI-X is disabled or out of range.
    void notify(uint16_t vector) noexcept;
    bool pending(uint16_t vector) const noexcept { return vector < vectors_ && (pending_ >> vector) & 1; }

    // Snapshot (format version 1): the table bytes, u64 pending bits, u8 enabled, u8 function
    // masked (the owner's Message Control, which it checks against its config space). Refused:
    // another table size, reserved vector-control bits, pending bits past the table, or a pending
    // vector that is deliverable (the table would already have sent it). Loading sends nothing.
    void save_state(StateWriter& out) const override;
    bool load_state(std::span<const uint8_t> blob) noexcept override;

private:
    uint32_t entry_word(uint16_t vector, unsigned word) const noexcept;
    bool masked(uint16_t vector) const noexcept;
    void deliver_pending() noexcept;

    uint16_t vectors_;
    MsiSink& sink_;
    std::vector<uint8_t> table_;
    uint64_t pending_ = 0;
    bool enabled_ = false;
    bool function_masked_ = false;
};

}  // namespace minivmm
