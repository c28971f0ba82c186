// Every device of one machine, constructed, wired to its interrupt lines and mapped on the
// buses; plus the firmware-facing data generated for it (ACPI tables, fw_cfg contents).
// Adding a device means its entry in MachineSpec::devices() (vmm/machine_spec.cpp), one member,
// its mapping at that entry and, where the OS must find it, its ACPI description in make_acpi()
// (machine_devices.cpp). The TPM's device, worker and waits are its
// slot's (vmm/tpm_slot.hpp); this attaches them to the machine.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "acpi/acpi_builder.hpp"
#include "devices/acpi_pm.hpp"
#include "devices/boot_marker.hpp"
#include "devices/block_backend.hpp"
#include "devices/cf9_decoder.hpp"
#include "devices/cmos.hpp"
#include "devices/debug_port.hpp"
#include "devices/fw_cfg.hpp"
#include "devices/linux_boot_port.hpp"
#include "firmware/fw_cfg_setup.hpp"
#include "firmware/pci_resources.hpp"
#include "devices/pci_host.hpp"
#include "devices/reset_control.hpp"
#include "devices/uart16550.hpp"
#include "devices/virtio_blk.hpp"
#include "devices/bus.hpp"
#include "vmm/machine_spec.hpp"
#include "vmm/base/guest_memory.hpp"
#include "vmm/kernel_boot.hpp"
#include "vmm/host/boot_timer.hpp"
#include "vmm/kvm/kvm.hpp"
#include "vmm/kvm/machine_events.hpp"
#include "vmm/tpm_slot.hpp"
#include "vmm/virtio_io_thread.hpp"

namespace minivmm {

class MachineDevices final {
public:
    struct Wiring {
        const MachineSpec& spec;  // what is present and where (devices())
        Vm& vm;
        const GuestMemory& memory;
        MachineEvents& events;  // the devices' SystemControl; the disk's I/O thread posts its failures
        Bus& pio;
        Bus& mmio;
        std::mutex& device_lock;  // held for every device call (devices/device.hpp)
        BlockBackend* disk;  // nullptr: no virtio-blk device
        ByteSink* serial_out;
        ByteSink* debug_out;
        TpmSlot& tpm;  // its attach() gives this machine its TPM, if there is one
        const KernelBoot* kernel;  // -kernel: the boot ROM, its port and the measurements; nullptr: none
        const GuestMemory& tpm_crb_buffer;  // the CRB's buffer RAM (platform::kTpmCrbBufferBase); empty unless CRB
        // The host page behind a read-only KVM slot at the CRB's register page, or empty (no CRB,
        // or KVM has no read-only slots): the registers are then plain MMIO.
        std::span<uint8_t> tpm_crb_register_page;
    };
    explicit MachineDevices(const Wiring& wiring);  // throws on set-up errors

    // The disk's I/O thread (vmm/virtio_io_thread.hpp), if there is a disk: started with the vCPUs
    // (after the sandbox is installed), stopped after them.
    void start_io() { if (disk_io_) disk_io_->start(); }
    void stop_io() noexcept { if (disk_io_) disk_io_->stop(); }

    size_t serial_input(std::span<const uint8_t> bytes) noexcept { return uart_.receive(bytes); }
    const std::vector<std::pair<std::string, std::vector<uint8_t>>>& acpi_dumps() const noexcept { return acpi_.dumps; }
    // This machine's TPM (its coalesced zones, the vCPU's waits, the boot's stats); nullptr without one.
    TpmSlot::Attachment* tpm() noexcept { return tpm_.get(); }
    const TpmSlot::Attachment* tpm() const noexcept { return tpm_.get(); }

    // -bios none (vmm/direct_boot.hpp): the tables to install, and the BARs firmware would assign.
    const AcpiBlobs& acpi() const noexcept { return acpi_; }
    std::string assign_pci_resources(const PciWindows& windows);  // empty, or one line

    // Snapshots (vmm/machine_devices_state.cpp): every device's state, with the device lock held
    // and nothing running. load_state: "" or one line naming the device whose state is refused.
    // save_state: false if the TPM has a command outstanding (the machine pauses and quiesces first).
    bool save_state(StateWriter& out);
    std::string load_state(StateReader& in);
    // After a pause: requests the guest queued while the disk's I/O thread was stopped are served.
    void resume_io_queues() noexcept;

private:
    std::vector<std::pair<const char*, SavesState*>> saved_devices();
    void attach_kernel_boot(const Wiring& w, FwCfgSetup& setup);

    AcpiBlobs acpi_;
    KvmIrqLine com1_irq_;
    KvmIrqLine virtio_irq_;
    KvmMsiSink msi_;
    Uart16550 uart_;
    Cmos cmos_;
    A20Gate a20_;
    ResetControl reset_;
    AcpiPm acpi_pm_;
    FwCfg fw_cfg_;
    BootTimer boot_timer_;
    BootMarker boot_marker_{boot_timer_};
    std::unique_ptr<DebugPort> debug_port_;
    PciHost pci_;
    Cf9Decoder cf8_ports_;
    std::unique_ptr<VirtioBlk> virtio_blk_;
    std::unique_ptr<VirtioIoThread> disk_io_;  // after the device: stopped before it goes
    // -kernel: the port the boot ROM asks on; the fw_cfg file where SeaBIOS writes the event log's address.
    std::unique_ptr<LinuxBootPort> linux_boot_port_;
    std::optional<uint16_t> tpm_log_address_key_;
    // Last: its worker completes into the TPM device under the device lock, and is joined first.
    std::unique_ptr<TpmSlot::Attachment> tpm_;
};

}  // namespace minivmm
