// MachineDevices' part of a snapshot (vmm/machine_snapshot.cpp): each device's own blob
// (devices/device_state.hpp), in a fixed order, each a length-prefixed byte string. A device the
// machine does not have (no disk, no -kernel, no TPM) has no entry; the machine's options, which
// decide that, come from the snapshot itself. Called with the device lock held, the vCPUs and the
// disk's I/O thread stopped and the TPM idle.
#include <fmt/core.h>

#include "vmm/machine_devices.hpp"

namespace minivmm {

std::vector<std::pair<const char*, SavesState*>> MachineDevices::saved_devices() {
    std::vector<std::pair<const char*, SavesState*>> list{{"COM1", &uart_},          {"CMOS", &cmos_},
                                                          {"A20 gate", &a20_},       {"reset control", &reset_},
                                                          {"ACPI PM", &acpi_pm_},    {"fw_cfg", &fw_cfg_},
                                                          {"boot marker", &boot_marker_}};
    if (linux_boot_port_) list.emplace_back("-kernel boot port", linux_boot_port_.get());
    // The PCI functions before the host: the host's load maps their restored BARs on the buses
    // (and so tells the disk's I/O thread where the notify registers are).
    if (virtio_blk_) list.emplace_back("virtio-blk", virtio_blk_.get());
    list.emplace_back("PCI host", &pci_);
    return list;
}

bool MachineDevices::save_state(StateWriter& out) {
    const auto devices = saved_devices();
    out.u32(static_cast<uint32_t>(devices.size()));
    for (const auto& [name, device] : devices) out.bytes(saved_state(*device));
    // The TPM's interface (TIS or CRB registers; TpmSlot::Attachment): false with a command outstanding.
    out.boolean(tpm_ != nullptr);
    if (tpm_) {
        StateWriter tpm;
        if (!tpm_->save_state(tpm)) return false;
        out.bytes(tpm.data());
    }
    return true;
}

std::string MachineDevices::load_state(StateReader& in) {
    const auto devices = saved_devices();
    uint32_t count = 0;
    if (!in.u32(count) || count != devices.size())
        return fmt::format("the snapshot has {} devices, this machine {}", count, devices.size());
    std::vector<uint8_t> blob;
    for (const auto& [name, device] : devices) {
        if (!in.bytes(blob, 64u << 20)) return fmt::format("the {} state is cut short", name);
        if (!device->load_state(blob)) return fmt::format("the {} state is malformed", name);
    }
    bool has_tpm = false;
    if (!in.boolean(has_tpm) || has_tpm != (tpm_ != nullptr)) return "the snapshot's TPM interface is not this machine's";
    if (tpm_) {
        std::span<const uint8_t> tpm;
        if (!in.bytes_view(tpm)) return "the TPM interface's state is cut short";
        if (!tpm_->load_state(tpm)) return "the TPM interface's state is malformed";
    }
    if (!in.finished()) return "the devices' state has bytes after its end";
    // Requests the guest notified in the saved process but no thread served (its eventfds were
    // that process's): served now.
    if (virtio_blk_) virtio_blk_->resume_queues();
    return {};
}

void MachineDevices::resume_io_queues() noexcept {
    if (virtio_blk_) virtio_blk_->resume_queues();
}

}  // namespace minivmm
