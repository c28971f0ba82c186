#include "vmm/kvm/ioctl_retry.hpp"
#include "vmm/kvm/vm_snapshot.hpp"

#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

#include <fmt/core.h>

#include "vmm/base/error.hpp"

namespace minivmm {

namespace {

bool get_chip(int fd, uint32_t id, kvm_irqchip& chip) noexcept {
    chip = kvm_irqchip{};
    chip.chip_id = id;
    return xioctl(fd, KVM_GET_IRQCHIP, &chip) == 0;
}

template <typename T>
void set(int fd, unsigned long request, const T& value, const char* what) {
    if (xioctl(fd, request, &value) < 0)
        throw SetupError(kExitKvm, fmt::format("KVM: {} failed: {}", what, std::strerror(errno)));
}

}  // namespace

std::string capture_vm_state(const Vm& vm, VmState& out) noexcept {
    const int fd = vm.fd();
    VmState s;
    const char* failed = nullptr;
    kvm_clock_data clock{};
    if (!get_chip(fd, KVM_IRQCHIP_PIC_MASTER, s.pic_master) || !get_chip(fd, KVM_IRQCHIP_PIC_SLAVE, s.pic_slave) ||
        !get_chip(fd, KVM_IRQCHIP_IOAPIC, s.ioapic))
        failed = "KVM_GET_IRQCHIP";
    else if (xioctl(fd, KVM_GET_PIT2, &s.pit) < 0)
        failed = "KVM_GET_PIT2";
    else if (xioctl(fd, KVM_GET_CLOCK, &clock) < 0)
        failed = "KVM_GET_CLOCK";
    if (failed) {
        try {
            return fmt::format("{} failed: {}", failed, std::strerror(errno));
        } catch (...) {
            return {};
        }
    }
    s.clock_ns = clock.clock;
    s.clock_flags = clock.flags;
    out = s;
    return {};
}

void restore_vm_state(const Vm& vm, const VmState& state) {
    const int fd = vm.fd();
    set(fd, KVM_SET_PIT2, state.pit, "KVM_SET_PIT2");
    set(fd, KVM_SET_IRQCHIP, state.pic_master, "KVM_SET_IRQCHIP (PIC master)");
    set(fd, KVM_SET_IRQCHIP, state.pic_slave, "KVM_SET_IRQCHIP (PIC slave)");
    set(fd, KVM_SET_IRQCHIP, state.ioapic, "KVM_SET_IRQCHIP (IOAPIC)");
    kvm_clock_data clock{};
    clock.clock = state.clock_ns;
    clock.flags = 0;  // not KVM_CLOCK_REALTIME: see vm_snapshot.hpp
    set(fd, KVM_SET_CLOCK, clock, "KVM_SET_CLOCK");
}

}  // namespace minivmm
