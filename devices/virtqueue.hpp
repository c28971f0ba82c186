// Split virtqueue, device side (virtio 1.0 §2.4): pops descriptor chains from the available
// ring and pushes used elements. Every ring entry and descriptor is copied out of guest memory
// before it is checked, and every buffer is checked to lie in guest RAM.
//
// Error policy (documented choice, virtio 1.0 §2.1.2):
//  - A malformed *chain* (descriptor index >= queue size, more descriptors than the queue size,
//    i.e. a loop, a buffer outside RAM or wrapping, a readable descriptor after a writable one,
//    a bad indirect table, nested indirect, INDIRECT+NEXT, INDIRECT not negotiated) is consumed
//    and returned with Chain::error set; the transport puts it on the used ring with length 0.
//  - A broken *ring* (ring memory outside RAM, avail idx more than queue-size ahead, head index
//    >= queue size) makes pop() return PopStatus::broken; the transport then sets
//    DEVICE_NEEDS_RESET and stops using the queue until the driver resets the device.
// No VIRTIO_F_EVENT_IDX; VIRTQ_AVAIL_F_NO_INTERRUPT is honoured (interrupt_suppressed()).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "devices/device_state.hpp"
#include "vmm/base/guest_memory.hpp"

namespace minivmm {

class Virtqueue final : public SavesState {
public:
    static constexpr uint16_t kMaxSize = 256;

    struct Segment {
        uint64_t gpa = 0;
        uint32_t len = 0;
        bool device_writable = false;
    };
    enum class ChainError : uint8_t {
        none,
        descriptor_index,  // next/head index >= queue size (or >= indirect table size)
        too_long,          // more descriptors than the queue size: a loop
        address,           // buffer not wholly in guest RAM, or addr + len wraps
        direction,         // device-readable descriptor after a device-writable one
        indirect,          // bad indirect table, nested indirect, INDIRECT with NEXT, not negotiated
    };
    // One popped chain. Segments are readable ones first, then writable ones (validated).
    // Construct once and reuse: pop() never allocates.
    struct Chain {
        Chain() { segments.reserve(kMaxSize); }
        uint16_t head = 0;
        ChainError error = ChainError::none;
        std::vector<Segment> segments;
        size_t readable_count = 0;  // segments[0, readable_count) are device-readable
        uint64_t readable_bytes = 0;
        uint64_t writable_bytes = 0;
        bool has_writable = false;  // a device-writable descriptor was seen (even an empty one)
        std::span<const Segment> readable() const noexcept { return {segments.data(), readable_count}; }
        std::span<const Segment> writable() const noexcept {
            return {segments.data() + readable_count, segments.size() - readable_count};
        }
    };
    enum class PopStatus { empty, chain, broken };

    Virtqueue(const GuestMemory& memory, uint16_t max_size = kMaxSize);

    // --- configuration by the transport (virtio 1.0 §4.1.4.3); ignored once enabled --------
    uint16_t max_size() const noexcept { return max_size_; }
    uint16_t size() const noexcept { return size_; }
    bool set_size(uint16_t size) noexcept;  // power of two in [1, max_size]
    void set_desc_addr(uint64_t gpa) noexcept { if (!enabled_) desc_ = gpa; }
    void set_avail_addr(uint64_t gpa) noexcept { if (!enabled_) avail_ = gpa; }
    void set_used_addr(uint64_t gpa) noexcept { if (!enabled_) used_ = gpa; }
    uint64_t desc_addr() const noexcept { return desc_; }
    uint64_t avail_addr() const noexcept { return avail_; }
    uint64_t used_addr() const noexcept { return used_; }
    // Enables the queue; one whose rings are not wholly in guest RAM (or whose address range wraps
    // past 2^64) is enabled broken: its first pop says so, and it never pops or pushes until the next reset.
    void enable() noexcept;
    bool enabled() const noexcept { return enabled_; }
    void set_indirect_allowed(bool allowed) noexcept { indirect_allowed_ = allowed; }
    void reset() noexcept;  // back to size = max, disabled, addresses 0, indices 0

    // --- device side -------------------------------------------------------------------------
    PopStatus pop(Chain& out) noexcept;
    // Adds {head, written} to the used ring and publishes used->idx. False if the used ring is
    // not in guest RAM (the queue is then broken).
    bool push(uint16_t head, uint32_t written) noexcept;
    // The driver set VIRTQ_AVAIL_F_NO_INTERRUPT (virtio 1.0 §2.4.7).
    bool interrupt_suppressed() const noexcept;
    bool broken() const noexcept { return broken_ || (enabled_ && !rings_ok_); }
    // The used->idx this queue last published (0 after reset); for tests and fuzzers.
    uint16_t used_idx() const noexcept { return next_used_; }
    // The avail ring slot the next pop() reads: used_idx() plus the chains popped and not pushed.
    uint16_t last_avail_idx() const noexcept { return last_avail_; }

    // Snapshot (format version 1): u16 size, u64 desc/avail/used, u8 enabled, u8 indirect allowed,
    // u8 broken, u16 last avail idx, u16 next used idx. Refused: a size that is not a power of two
    // in [1, max_size()], or a disabled queue with indices or broken set (reset() clears them and
    // only an enabled queue moves them). An enabled queue's rings are checked against
    // guest RAM again, as enable() does. Ring contents live in guest RAM, saved with it.
    void save_state(StateWriter& out) const override;
    bool load_state(std::span<const uint8_t> blob) noexcept override;

private:
    struct Desc {  // virtio 1.0 §2.4.5
        uint64_t addr;
        uint32_t len;
        uint16_t flags;
        uint16_t next;
    };
    static_assert(sizeof(Desc) == 16);

    ChainError walk(uint16_t head, Chain& out) noexcept;
    ChainError add_segment(const Desc& d, Chain& out) noexcept;
    ChainError walk_indirect(const Desc& d, Chain& out) noexcept;

    const GuestMemory& memory_;
    uint16_t max_size_;
    uint16_t size_;
    uint64_t desc_ = 0, avail_ = 0, used_ = 0;
    bool enabled_ = false;
    bool indirect_allowed_ = false;
    bool broken_ = false;
    bool rings_ok_ = false;  // checked at enable(): every ring wholly in one RAM region
    uint16_t last_avail_ = 0;  // next avail ring slot to consume
    uint16_t next_used_ = 0;   // next used idx to publish
};

// True when [gpa, gpa+len) is guest RAM, possibly spread over adjacent regions.
bool guest_range_valid(const GuestMemory& memory, uint64_t gpa, uint64_t len) noexcept;

// Sequential access to the bytes of a list of validated segments (one direction of a chain),
// across descriptor and RAM-region boundaries.
class ChainCursor {
public:
    ChainCursor(const GuestMemory& memory, std::span<const Virtqueue::Segment> segments) noexcept;
    uint64_t remaining() const noexcept { return remaining_; }
    bool skip(uint64_t len) noexcept;
    bool read(std::span<uint8_t> out) noexcept;
    bool write(std::span<const uint8_t> in) noexcept;
    // Hands the next `len` bytes to fn(std::span<uint8_t>) as host-contiguous pieces and
    // advances; stops and returns false when fn returns false or the bytes run out.
    template <typename Fn>
    bool for_each_piece(uint64_t len, Fn&& fn) noexcept {
        while (len > 0) {
            std::span<uint8_t> piece = next_piece(len);
            if (piece.empty() || !fn(piece)) return false;
            len -= piece.size();
        }
        return true;
    }

private:
    std::span<uint8_t> next_piece(uint64_t max) noexcept;  // advances by the returned size

    const GuestMemory& memory_;
    std::span<const Virtqueue::Segment> segments_;
    size_t index_ = 0;
    uint64_t offset_ = 0;  // into segments_[index_]
    uint64_t remaining_ = 0;
};

}  // namespace minivmm
