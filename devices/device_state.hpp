// A device's state as bytes, for snapshots (a running machine saved to a file and resumed later,
// maybe by another minivmm process). Every device with guest-visible state implements
// SavesState; the machine writes each device's blob into the snapshot and hands it back to a
// freshly built device of the same machine on restore.
//
// A snapshot is a file a user may be handed, so a blob is untrusted input: load_state() checks
// every value against what the device itself could have produced (an index inside its array, a
// count no larger than its FIFO, ...) and either takes all of it or none of it, returning false
// and leaving the device as it was. It never aborts.
//
// The encoding is deliberately plain: little-endian fixed-width integers in an order each device
// documents, byte strings with a u32 length, no self-description. Each blob starts with the
// device's own format version (a u8), so one device's format can change without touching others.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

namespace minivmm {

class StateWriter {
public:
    void u8(uint8_t v) { put(v, 1); }
    void u16(uint16_t v) { put(v, 2); }
    void u32(uint32_t v) { put(v, 4); }
    void u64(uint64_t v) { put(v, 8); }
    void boolean(bool v) { u8(v ? 1 : 0); }
    // A u32 length, then the bytes.
    void bytes(std::span<const uint8_t> data);
    const std::vector<uint8_t>& data() const noexcept { return data_; }

private:
    void put(uint64_t v, size_t n);
    std::vector<uint8_t> data_;
};

// Reads what a StateWriter wrote. Failure is sticky: after one read runs past the end (or finds a
// boolean that is neither 0 nor 1, or a length above its bound), every later read fails too, so a
// device can read all its fields and check ok() once.
class StateReader {
public:
    explicit StateReader(std::span<const uint8_t> data) noexcept : data_(data) {}
    bool u8(uint8_t& v) noexcept;
    bool u16(uint16_t& v) noexcept;
    bool u32(uint32_t& v) noexcept;
    bool u64(uint64_t& v) noexcept;
    bool boolean(bool& v) noexcept;
    // Exactly `out.size()` bytes, written with bytes() (the stored length must match).
    bool bytes(std::span<uint8_t> out) noexcept;
    // Any length up to `max`.
    bool bytes(std::vector<uint8_t>& out, size_t max);
    // Any length, as a view into the blob (valid as long as it): another device's nested blob.
    bool bytes_view(std::span<const uint8_t>& out) noexcept;
    bool ok() const noexcept { return ok_; }
    // Everything read and nothing left over: a blob longer than the device's format is refused.
    bool finished() const noexcept { return ok_ && at_ == data_.size(); }
    // How many bytes were read so far.
    size_t position() const noexcept { return at_; }

private:
    bool take(size_t n, uint64_t& v) noexcept;
    template <typename T>
    bool integer(T& v) noexcept;
    std::span<const uint8_t> data_;
    size_t at_ = 0;
    bool ok_ = true;
};

class SavesState {
public:
    virtual ~SavesState() = default;
    virtual void save_state(StateWriter& out) const = 0;
    // All or nothing: false (the device unchanged) for a blob this device could not have written.
    virtual bool load_state(std::span<const uint8_t> blob) noexcept = 0;
};

// A trivially copyable structure (a kernel ABI struct such as kvm_regs) as bytes() of its exact
// size; get() refuses any other length.
template <typename T>
void put(StateWriter& out, const T& s) {
    static_assert(std::is_trivially_copyable_v<T>);
    out.bytes(std::span(reinterpret_cast<const uint8_t*>(&s), sizeof s));
}
template <typename T>
bool get(StateReader& in, T& s) {
    static_assert(std::is_trivially_copyable_v<T>);
    return in.bytes(std::span(reinterpret_cast<uint8_t*>(&s), sizeof s));
}

// save_state() into a new buffer.
std::vector<uint8_t> saved_state(const SavesState& device);

}  // namespace minivmm
