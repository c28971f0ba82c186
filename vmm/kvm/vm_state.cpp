#include "vmm/kvm/vm_state.hpp"

#include <span>
#include <type_traits>

namespace minivmm {

namespace {

constexpr uint8_t kVersion = 1;

}  // namespace

void VmState::save(StateWriter& out) const {
    out.u8(kVersion);
    put(out, pic_master);
    put(out, pic_slave);
    put(out, ioapic);
    put(out, pit);
    out.u64(clock_ns);
    out.u32(clock_flags);
}

bool VmState::load(StateReader& in) {
    VmState s;
    uint8_t version = 0;
    if (!in.u8(version) || version != kVersion) return false;
    get(in, s.pic_master);
    get(in, s.pic_slave);
    get(in, s.ioapic);
    get(in, s.pit);
    in.u64(s.clock_ns);
    in.u32(s.clock_flags);
    if (!in.ok()) return false;
    if (s.pic_master.chip_id != KVM_IRQCHIP_PIC_MASTER || s.pic_slave.chip_id != KVM_IRQCHIP_PIC_SLAVE ||
        s.ioapic.chip_id != KVM_IRQCHIP_IOAPIC)
        return false;
    // The flags KVM_GET_PIT2 reports (Documentation/virt/kvm/api.rst KVM_GET_PIT2).
    if (s.pit.flags & ~uint32_t{KVM_PIT_FLAGS_HPET_LEGACY | KVM_PIT_FLAGS_SPEAKER_DATA_ON}) return false;
    if (s.clock_flags & ~uint32_t{KVM_CLOCK_TSC_STABLE | KVM_CLOCK_REALTIME | KVM_CLOCK_HOST_TSC}) return false;
    *this = s;
    return true;
}

}  // namespace minivmm
