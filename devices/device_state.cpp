#include "devices/device_state.hpp"

#include "vmm/base/bytes.hpp"

namespace minivmm {

void StateWriter::put(uint64_t v, size_t n) {
    const size_t at = data_.size();
    data_.resize(at + n);
    store_le(std::span(data_).subspan(at, n), v);
}

void StateWriter::bytes(std::span<const uint8_t> data) {
    u32(static_cast<uint32_t>(data.size()));
    data_.insert(data_.end(), data.begin(), data.end());
}

bool StateReader::take(size_t n, uint64_t& v) noexcept {
    if (!ok_ || data_.size() - at_ < n) {
        ok_ = false;
        return false;
    }
    v = load_le(data_.subspan(at_, n));
    at_ += n;
    return true;
}

template <typename T>
bool StateReader::integer(T& v) noexcept {
    uint64_t x = 0;
    if (!take(sizeof(T), x)) return false;
    v = static_cast<T>(x);
    return true;
}

bool StateReader::u8(uint8_t& v) noexcept { return integer(v); }
bool StateReader::u16(uint16_t& v) noexcept { return integer(v); }
bool StateReader::u32(uint32_t& v) noexcept { return integer(v); }
bool StateReader::u64(uint64_t& v) noexcept { return take(8, v); }

bool StateReader::boolean(bool& v) noexcept {
    uint8_t x = 0;
    if (!u8(x)) return false;
    if (x > 1) return ok_ = false;
    v = x == 1;
    return true;
}

bool StateReader::bytes(std::span<uint8_t> out) noexcept {
    uint32_t n = 0;
    if (!u32(n)) return false;
    if (n != out.size() || data_.size() - at_ < n) return ok_ = false;
    for (size_t i = 0; i < n; ++i) out[i] = data_[at_ + i];
    at_ += n;
    return true;
}

bool StateReader::bytes(std::vector<uint8_t>& out, size_t max) {
    uint32_t n = 0;
    if (!u32(n)) return false;
    if (n > max || data_.size() - at_ < n) return ok_ = false;
    out.assign(data_.begin() + static_cast<std::ptrdiff_t>(at_), data_.begin() + static_cast<std::ptrdiff_t>(at_ + n));
    at_ += n;
    return true;
}

bool StateReader::bytes_view(std::span<const uint8_t>& out) noexcept {
    uint32_t n = 0;
    if (!u32(n)) return false;
    if (data_.size() - at_ < n) return ok_ = false;
    out = data_.subspan(at_, n);
    at_ += n;
    return true;
}

std::vector<uint8_t> saved_state(const SavesState& device) {
    StateWriter out;
    device.save_state(out);
    return out.data();
}

}  // namespace minivmm
