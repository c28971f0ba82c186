#include "vmm/kvm/exit_stats.hpp"

#include <algorithm>

#include <fmt/core.h>

#include "vmm/base/platform.hpp"
#include "vmm/kvm/exit_handler.hpp"

namespace minivmm {

void ExitStats::add(const Device* device, bool mmio, bool write, uint64_t n) noexcept {
    for (size_t i = 0; i < used_; ++i) {
        Slot& s = slots_[i];
        if (s.device == device && s.mmio == mmio && s.write == write) {
            s.count += n;
            return;
        }
    }
    if (used_ == slots_.size()) {
        overflow_ += n;
        return;
    }
    slots_[used_++] = Slot{device, mmio, write, n};
}

void ExitStats::add_register(uint32_t offset, Access access, uint64_t n) noexcept {
    for (size_t i = 0; i < registers_used_; ++i) {
        RegisterSlot& s = registers_[i];
        if (s.offset == offset && s.access == access) {
            s.count += n;
            return;
        }
    }
    if (registers_used_ == registers_.size()) {
        overflow_ += n;
        return;
    }
    registers_[registers_used_++] = RegisterSlot{offset, access, n};
}

void ExitStats::replayed(uint64_t address) noexcept {
    ++coalesced_;
    if (address - platform::kTpmTisBase < platform::kTpmTisSize)
        add_register(static_cast<uint32_t>(address - platform::kTpmTisBase), Access::coalesced, 1);
}

void ExitStats::count(const kvm_run& run, const Bus& pio, const Bus& mmio) noexcept {
    if (run.exit_reason < reasons_.size()) ++reasons_[run.exit_reason];
    else ++other_reason_;
    if (run.exit_reason == KVM_EXIT_IO) {
        add(pio.find(run.io.port, run.io.size ? run.io.size : 1).device, false, run.io.direction == KVM_EXIT_IO_OUT, 1);
    } else if (run.exit_reason == KVM_EXIT_MMIO) {
        add(mmio.find(run.mmio.phys_addr, run.mmio.len ? run.mmio.len : 1).device, true, run.mmio.is_write, 1);
        if (run.mmio.phys_addr - platform::kTpmTisBase < platform::kTpmTisSize)
            add_register(static_cast<uint32_t>(run.mmio.phys_addr - platform::kTpmTisBase),
                         run.mmio.is_write ? Access::write : Access::read, 1);
    }
}

void ExitStats::merge(const ExitStats& other) noexcept {
    for (size_t i = 0; i < reasons_.size(); ++i) reasons_[i] += other.reasons_[i];
    other_reason_ += other.other_reason_;
    for (size_t i = 0; i < other.used_; ++i) {
        const Slot& s = other.slots_[i];
        add(s.device, s.mmio, s.write, s.count);
    }
    for (size_t i = 0; i < other.registers_used_; ++i) {
        const RegisterSlot& r = other.registers_[i];
        add_register(r.offset, r.access, r.count);
    }
    overflow_ += other.overflow_;
    coalesced_ += other.coalesced_;
}

uint64_t ExitStats::total() const noexcept {
    uint64_t n = other_reason_;
    for (uint64_t r : reasons_) n += r;
    return n;
}

uint64_t ExitStats::of_device(const Device* device, bool mmio, bool write) const noexcept {
    for (size_t i = 0; i < used_; ++i)
        if (slots_[i].device == device && slots_[i].mmio == mmio && slots_[i].write == write) return slots_[i].count;
    return 0;
}

std::vector<std::string> ExitStats::lines(unsigned boot) const {
    std::vector<std::string> out;
    out.push_back(fmt::format("exit-stats boot={} total={} coalesced={}", boot, total(), coalesced_));
    std::vector<std::pair<uint64_t, uint32_t>> reasons;
    for (uint32_t r = 0; r < reasons_.size(); ++r)
        if (reasons_[r]) reasons.emplace_back(reasons_[r], r);
    std::sort(reasons.rbegin(), reasons.rend());
    for (auto [n, r] : reasons) out.push_back(fmt::format("exit-stats boot={} reason={} count={}", boot, exit_reason_name(r), n));
    if (other_reason_) out.push_back(fmt::format("exit-stats boot={} reason=other count={}", boot, other_reason_));
    std::vector<Slot> slots(slots_.begin(), slots_.begin() + static_cast<std::ptrdiff_t>(used_));
    std::sort(slots.begin(), slots.end(), [](const Slot& a, const Slot& b) { return a.count > b.count; });
    for (const Slot& s : slots)
        out.push_back(fmt::format("exit-stats boot={} reason={} device={} dir={} count={}", boot,
                                  s.mmio ? "KVM_EXIT_MMIO" : "KVM_EXIT_IO",
                                  s.device ? s.device->name() : std::string_view("unmapped"), s.write ? "write" : "read",
                                  s.count));
    std::vector<RegisterSlot> regs(registers_.begin(), registers_.begin() + static_cast<std::ptrdiff_t>(registers_used_));
    std::sort(regs.begin(), regs.end(), [](const RegisterSlot& a, const RegisterSlot& b) {
        return a.offset != b.offset ? a.offset < b.offset : a.access < b.access;
    });
    for (const RegisterSlot& r : regs)
        out.push_back(fmt::format("exit-stats boot={} tpm-register={:#x} dir={} count={}", boot, r.offset,
                                  r.access == Access::read ? "read" : r.access == Access::write ? "write" : "coalesced",
                                  r.count));
    if (overflow_) out.push_back(fmt::format("exit-stats boot={} device=uncounted count={}", boot, overflow_));
    return out;
}

}  // namespace minivmm
