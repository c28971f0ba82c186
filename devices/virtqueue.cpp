#include "devices/virtqueue.hpp"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>

#include "vmm/base/log.hpp"

namespace minivmm {

static_assert(std::endian::native == std::endian::little, "virtio 1.0 rings are little-endian");

namespace {
constexpr uint16_t kDescNext = 1;      // VIRTQ_DESC_F_NEXT
constexpr uint16_t kDescWrite = 2;     // VIRTQ_DESC_F_WRITE
constexpr uint16_t kDescIndirect = 4;  // VIRTQ_DESC_F_INDIRECT
constexpr uint16_t kAvailNoInterrupt = 1;
constexpr uint64_t kRingHeader = 4;  // flags + idx
constexpr uint64_t kUsedElemSize = 8;

// The region holding gpa, or null.
const GuestRegion* region_of(const GuestMemory& memory, uint64_t gpa) noexcept {
    for (const GuestRegion& r : memory.regions())
        if (gpa >= r.gpa && gpa - r.gpa < r.size) return &r;
    return nullptr;
}
}  // namespace

bool guest_range_valid(const GuestMemory& memory, uint64_t gpa, uint64_t len) noexcept {
    if (gpa + len < gpa) return false;
    if (len == 0) return memory.span(gpa, 0).has_value();
    while (len > 0) {
        const GuestRegion* r = region_of(memory, gpa);
        if (!r) return false;
        const uint64_t n = std::min(len, r->size - (gpa - r->gpa));
        gpa += n;
        len -= n;
    }
    return true;
}

Virtqueue::Virtqueue(const GuestMemory& memory, uint16_t max_size)
    : memory_(memory), max_size_(std::clamp<uint16_t>(std::bit_floor(max_size), 1, kMaxSize)), size_(max_size_) {}

bool Virtqueue::set_size(uint16_t size) noexcept {
    if (enabled_ || size == 0 || size > max_size_ || !std::has_single_bit(size)) return false;
    size_ = size;
    return true;
}

void Virtqueue::save_state(StateWriter& out) const {
    out.u8(1);
    out.u16(size_);
    out.u64(desc_);
    out.u64(avail_);
    out.u64(used_);
    out.boolean(enabled_);
    out.boolean(indirect_allowed_);
    out.boolean(broken_);
    out.u16(last_avail_);
    out.u16(next_used_);
}

bool Virtqueue::load_state(std::span<const uint8_t> blob) noexcept {
    StateReader in(blob);
    uint8_t version = 0;
    uint16_t size = 0, last_avail = 0, next_used = 0;
    uint64_t desc = 0, avail = 0, used = 0;
    bool enabled = false, indirect = false, broken = false;
    in.u8(version);
    in.u16(size);
    in.u64(desc);
    in.u64(avail);
    in.u64(used);
    in.boolean(enabled);
    in.boolean(indirect);
    in.boolean(broken);
    in.u16(last_avail);
    in.u16(next_used);
    if (!in.finished() || version != 1 || size == 0 || size > max_size_ || !std::has_single_bit(size)) return false;
    if (!enabled && (broken || last_avail != 0 || next_used != 0)) return false;
    reset();
    size_ = size;
    desc_ = desc;
    avail_ = avail;
    used_ = used;
    if (enabled) enable();  // rechecks the rings (rings_ok_)
    indirect_allowed_ = indirect;
    broken_ = broken;
    last_avail_ = last_avail;
    next_used_ = next_used;
    return true;
}

void Virtqueue::enable() noexcept {
    // Ring sizes from virtio 1.0 §2.4: descriptor table 16·N, avail 6 + 2·N, used 6 + 8·N bytes.
    // Each ring lies within one RAM region: pop() and push() read and write ring fields with
    // single-region accesses, so a ring across a region boundary would publish a used element
    // without its index (fuzz_pci_virtio_blk found that one). Data buffers may cross (ChainCursor).
    const uint64_t n = size_;
    const bool ok = memory_.span(desc_, 16 * n) && memory_.span(avail_, kRingHeader + 2 * n + 2) &&
                    memory_.span(used_, kRingHeader + kUsedElemSize * n + 2);
    if (!ok) {
        log::debug("virtqueue: rings desc {:#x} avail {:#x} used {:#x} (size {}) are not each within one RAM "
                   "region; queue broken", desc_, avail_, used_, size_);
    }
    rings_ok_ = ok;
    enabled_ = true;
}

void Virtqueue::reset() noexcept {
    size_ = max_size_;
    desc_ = avail_ = used_ = 0;
    enabled_ = false;
    indirect_allowed_ = false;
    broken_ = false;
    rings_ok_ = false;
    last_avail_ = 0;
    next_used_ = 0;
}

Virtqueue::PopStatus Virtqueue::pop(Chain& out) noexcept {
    out.segments.clear();
    out.readable_count = 0;
    out.readable_bytes = out.writable_bytes = 0;
    out.has_writable = false;
    out.error = ChainError::none;
    if (!enabled_ || broken_) return PopStatus::empty;
    if (!rings_ok_) {
        broken_ = true;
        return PopStatus::broken;
    }

    const auto avail_idx = memory_.read_obj<uint16_t>(avail_ + 2);
    if (!avail_idx) {
        log::debug("virtqueue: avail ring at {:#x} is not in RAM", avail_);
        broken_ = true;
        return PopStatus::broken;
    }
    const uint16_t pending = static_cast<uint16_t>(*avail_idx - last_avail_);
    if (pending == 0) return PopStatus::empty;
    if (pending > size_) {  // §2.4.6: the driver can never be more than a ring ahead
        log::debug("virtqueue: avail idx {} is {} entries ahead of {} (size {})", *avail_idx, pending, last_avail_, size_);
        broken_ = true;
        return PopStatus::broken;
    }
    std::atomic_thread_fence(std::memory_order_acquire);  // ring entry after idx

    const auto head = memory_.read_obj<uint16_t>(avail_ + kRingHeader + 2ull * (last_avail_ % size_));
    if (!head || *head >= size_) {
        log::debug("virtqueue: bad avail ring entry (head {})", head ? int{*head} : -1);
        broken_ = true;
        return PopStatus::broken;
    }
    ++last_avail_;
    out.head = *head;
    out.error = walk(*head, out);
    if (out.error != ChainError::none) {
        log::debug("virtqueue: malformed chain at head {} (error {})", *head, static_cast<int>(out.error));
        out.segments.clear();
        out.readable_count = 0;
        out.readable_bytes = out.writable_bytes = 0;
    }
    return PopStatus::chain;
}

Virtqueue::ChainError Virtqueue::walk(uint16_t head, Chain& out) noexcept {
    uint16_t index = head;
    for (unsigned hops = 0;; ++hops) {
        if (hops >= size_) return ChainError::too_long;
        const auto d = memory_.read_obj<Desc>(desc_ + 16ull * index);  // copied before use
        if (!d) return ChainError::address;
        if (d->flags & kDescIndirect) {
            // §2.4.5.3.1: only the head may be indirect, never with NEXT.
            if (!indirect_allowed_ || hops != 0 || (d->flags & kDescNext)) return ChainError::indirect;
            return walk_indirect(*d, out);
        }
        if (ChainError e = add_segment(*d, out); e != ChainError::none) return e;
        if (!(d->flags & kDescNext)) return ChainError::none;
        if (d->next >= size_) return ChainError::descriptor_index;
        index = d->next;
    }
}

Virtqueue::ChainError Virtqueue::walk_indirect(const Desc& table, Chain& out) noexcept {
    if (table.len == 0 || table.len % sizeof(Desc) != 0) return ChainError::indirect;
    if (!guest_range_valid(memory_, table.addr, table.len)) return ChainError::address;
    const uint32_t entries = table.len / sizeof(Desc);
    uint32_t index = 0;
    for (unsigned hops = 0;; ++hops) {
        if (hops >= size_ || hops >= entries) return ChainError::too_long;
        Desc d;
        if (!memory_.read(table.addr + 16ull * index, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&d), sizeof d)))
            return ChainError::address;  // table spans two regions
        if (d.flags & kDescIndirect) return ChainError::indirect;  // no nesting
        if (ChainError e = add_segment(d, out); e != ChainError::none) return e;
        if (!(d.flags & kDescNext)) return ChainError::none;
        if (d.next >= entries) return ChainError::descriptor_index;
        index = d.next;
    }
}

Virtqueue::ChainError Virtqueue::add_segment(const Desc& d, Chain& out) noexcept {
    if (!guest_range_valid(memory_, d.addr, d.len)) return ChainError::address;
    const bool writable = d.flags & kDescWrite;
    if (!writable && out.has_writable) return ChainError::direction;  // §2.4.4.2
    out.has_writable |= writable;
    if (out.segments.size() >= kMaxSize || out.segments.size() >= out.segments.capacity()) return ChainError::too_long;
    if (d.len == 0) return ChainError::none;  // nothing to transfer
    out.segments.push_back(Segment{d.addr, d.len, writable});
    if (writable) {
        out.writable_bytes += d.len;
    } else {
        ++out.readable_count;
        out.readable_bytes += d.len;
    }
    return ChainError::none;
}

bool Virtqueue::push(uint16_t head, uint32_t written) noexcept {
    if (!enabled_ || broken_ || !rings_ok_) return false;
    const uint64_t elem = used_ + kRingHeader + kUsedElemSize * (next_used_ % size_);
    const uint32_t e[2] = {head, written};
    if (!memory_.write_obj(elem, e)) {
        log::debug("virtqueue: used ring at {:#x} is not in RAM", used_);
        broken_ = true;
        return false;
    }
    std::atomic_thread_fence(std::memory_order_release);  // element before idx (§2.4.8.2)
    ++next_used_;
    if (!memory_.write_obj<uint16_t>(used_ + 2, next_used_)) {
        broken_ = true;
        return false;
    }
    return true;
}

bool Virtqueue::interrupt_suppressed() const noexcept {
    std::atomic_thread_fence(std::memory_order_seq_cst);  // used idx store before flags load
    const auto flags = memory_.read_obj<uint16_t>(avail_);
    return flags && (*flags & kAvailNoInterrupt);
}

// --- ChainCursor ---------------------------------------------------------------------------

ChainCursor::ChainCursor(const GuestMemory& memory, std::span<const Virtqueue::Segment> segments) noexcept
    : memory_(memory), segments_(segments) {
    for (const auto& s : segments) remaining_ += s.len;
}

std::span<uint8_t> ChainCursor::next_piece(uint64_t max) noexcept {
    while (index_ < segments_.size() && offset_ >= segments_[index_].len) {
        ++index_;
        offset_ = 0;
    }
    if (index_ >= segments_.size() || max == 0) return {};
    const Virtqueue::Segment& s = segments_[index_];
    const uint64_t gpa = s.gpa + offset_;
    const GuestRegion* r = region_of(memory_, gpa);
    if (!r) return {};
    const uint64_t in_region = r->size - (gpa - r->gpa);
    const uint64_t n = std::min({max, uint64_t{s.len} - offset_, in_region});
    offset_ += n;
    remaining_ -= n;
    return {r->host + (gpa - r->gpa), static_cast<size_t>(n)};
}

bool ChainCursor::skip(uint64_t len) noexcept {
    return for_each_piece(len, [](std::span<uint8_t>) { return true; });
}

bool ChainCursor::read(std::span<uint8_t> out) noexcept {
    size_t done = 0;
    return for_each_piece(out.size(), [&](std::span<uint8_t> p) {
        std::memcpy(out.data() + done, p.data(), p.size());
        done += p.size();
        return true;
    });
}

bool ChainCursor::write(std::span<const uint8_t> in) noexcept {
    size_t done = 0;
    return for_each_piece(in.size(), [&](std::span<uint8_t> p) {
        std::memcpy(p.data(), in.data() + done, p.size());
        done += p.size();
        return true;
    });
}

}  // namespace minivmm
