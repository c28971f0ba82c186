#include "devices/msix.hpp"

#include <algorithm>
#include <stdexcept>

#include <fmt/core.h>

namespace minivmm {

MsixTable::MsixTable(uint16_t vectors, MsiSink& sink) : vectors_(vectors), sink_(sink) {
    if (vectors == 0 || vectors > kMaxVectors)
        throw std::invalid_argument(fmt::format("MSI-X table with {} vectors (1-{} supported)", vectors, kMaxVectors));
    table_.resize(table_size());
    for (uint16_t v = 0; v < vectors_; ++v) table_[v * kEntrySize + 12] = kVectorMasked;  // §6.8.2.9: masked at reset
}

uint32_t MsixTable::entry_word(uint16_t vector, unsigned word) const noexcept {
    const uint8_t* p = table_.data() + vector * kEntrySize + 4 * word;
    return static_cast<uint32_t>(load_le(std::span<const uint8_t>(p, 4)));
}

bool MsixTable::masked(uint16_t vector) const noexcept {
    return function_masked_ || (entry_word(vector, 3) & kVectorMasked);
}

void MsixTable::read_table(uint64_t offset, std::span<uint8_t> data) const noexcept {
    for (size_t i = 0; i < data.size(); ++i) {
        const uint64_t o = offset + i;
        data[i] = o < table_.size() ? table_[o] : 0;
    }
}

void MsixTable::write_table(uint64_t offset, std::span<const uint8_t> data) noexcept {
    for (size_t i = 0; i < data.size(); ++i) {
        const uint64_t o = offset + i;
        if (o >= table_.size()) continue;
        // Vector control: only the mask bit is defined; the rest is reserved (reads 0).
        if (o % kEntrySize == 12)
            table_[o] = data[i] & kVectorMasked;
        else if (o % kEntrySize > 12)
            continue;
        else
            table_[o] = data[i];
    }
    deliver_pending();  // an unmask may release a pending message
}

void MsixTable::read_pba(uint64_t offset, std::span<uint8_t> data) const noexcept {
    for (size_t i = 0; i < data.size(); ++i) {
        const uint64_t o = offset + i;
        data[i] = o < pba_size() ? static_cast<uint8_t>(pending_ >> (8 * o)) : 0;
    }
}

void MsixTable::set_control(bool enabled, bool function_masked) noexcept {
    enabled_ = enabled;
    function_masked_ = function_masked;
    deliver_pending();
}

void MsixTable::notify(uint16_t vector) noexcept {
    if (!enabled_ || vector >= vectors_) return;
    if (masked(vector)) {
        pending_ |= uint64_t{1} << vector;
        return;
    }
    const uint64_t address = entry_word(vector, 0) | uint64_t{entry_word(vector, 1)} << 32;
    sink_.signal(address, entry_word(vector, 2));
}

void MsixTable::deliver_pending() noexcept {
    if (!enabled_ || function_masked_ || pending_ == 0) return;
    for (uint16_t v = 0; v < vectors_; ++v) {
        if (!((pending_ >> v) & 1) || masked(v)) continue;
        pending_ &= ~(uint64_t{1} << v);
        notify(v);
    }
}

void MsixTable::save_state(StateWriter& out) const {
    out.u8(1);
    out.bytes(table_);
    out.u64(pending_);
    out.boolean(enabled_);
    out.boolean(function_masked_);
}

bool MsixTable::load_state(std::span<const uint8_t> blob) noexcept {
    StateReader in(blob);
    uint8_t version = 0;
    std::span<const uint8_t> table;
    uint64_t pending = 0;
    bool enabled = false, function_masked = false;
    in.u8(version);
    in.bytes_view(table);
    in.u64(pending);
    in.boolean(enabled);
    in.boolean(function_masked);
    if (!in.finished() || version != 1 || table.size() != table_.size()) return false;
    if (vectors_ < 64 && (pending >> vectors_) != 0) return false;
    for (uint16_t v = 0; v < vectors_; ++v) {
        const auto control = table.subspan(v * kEntrySize + 12, 4);
        if ((control[0] & ~kVectorMasked) || control[1] || control[2] || control[3]) return false;  // write_table keeps bit 0 only
        const bool masked = function_masked || (control[0] & kVectorMasked);
        if (((pending >> v) & 1) && enabled && !masked) return false;  // deliver_pending would have sent it
    }
    std::copy(table.begin(), table.end(), table_.begin());
    pending_ = pending;
    enabled_ = enabled;
    function_masked_ = function_masked;
    return true;
}

}  // namespace minivmm
