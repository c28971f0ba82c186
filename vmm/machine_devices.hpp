// Every device of one machine, constructed, wired to its interrupt lines and mapped on the
// buses; plus the firmware-facing data generated for it (ACPI tables, fw_cfg contents).
// Adding a device means one member, one mapping and, where the OS must find it, its ACPI
// description in make_acpi() (machine_devices.cpp; the TPM, attach_tpm(), is the worked example).
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "acpi/acpi_builder.hpp"
#include "devices/acpi_pm.hpp"
#include "devices/block_backend.hpp"
#include "devices/cf9_decoder.hpp"
#include "devices/cmos.hpp"
#include "devices/debug_port.hpp"
#include "devices/fw_cfg.hpp"
#include "devices/linux_boot_port.hpp"
#include "firmware/fw_cfg_setup.hpp"
#include "devices/pci_host.hpp"
#include "devices/reset_control.hpp"
#include "devices/uart16550.hpp"
#include "devices/register_mirror.hpp"
#include "devices/tpm_interface.hpp"
#include "devices/tpm_ppi.hpp"
#include "devices/virtio_blk.hpp"
#include "devices/bus.hpp"
#include "vmm/cli.hpp"
#include "vmm/base/guest_memory.hpp"
#include "vmm/kernel_boot.hpp"
#include "vmm/kvm/kvm.hpp"
#include "vmm/tpm/tpm_backend.hpp"
#include "vmm/tpm/tpm_worker.hpp"
#include "vmm/kvm/vcpu.hpp"

namespace minivmm {

class MachineDevices final : public ExitWaits {
public:
    struct Wiring {
        const Config& config;
        Vm& vm;
        const GuestMemory& memory;
        SystemControl& system;
        Bus& pio;
        Bus& mmio;
        std::mutex& device_lock;  // held for every device call (devices/device.hpp)
        BlockBackend* disk;  // nullptr: no virtio-blk device
        ByteSink* serial_out;
        ByteSink* debug_out;
        TpmBackend* tpm;  // nullptr: no TPM
        TpmPpi* tpm_ppi;  // nullptr: no Physical Presence Interface (needs a TPM)
        const KernelBoot* kernel;  // -kernel: the boot ROM, its port and the measurements; nullptr: none
        uint64_t ram_below_4g;
        uint64_t ram_above_4g;
        const GuestMemory& tpm_crb_buffer;  // the CRB's buffer RAM (platform::kTpmCrbBufferBase); empty unless CRB
        // The host page behind a read-only KVM slot at the CRB's register page, or empty (no CRB,
        // or KVM has no read-only slots): the registers are then plain MMIO.
        std::span<uint8_t> tpm_crb_register_page;
    };
    explicit MachineDevices(const Wiring& wiring);  // throws on set-up errors

    // A guest read of the TIS while a TPM command executes is a poll for its end: the vCPU waits
    // (without the device lock) up to kTpmPollStall for the response, so the poll finds it ready
    // instead of the guest sleeping and polling again (Linux tpm_try_transmit sleeps 1 ms per
    // miss). A TPM on LPC stalls the bus the same way, with "long wait" SYNC cycles (Intel Low Pin
    // Count Interface Specification 1.1, SYNC field). The bound keeps a slow command (key generation) from holding the vCPU.
    static constexpr std::chrono::microseconds kTpmPollStall{2000};
    void before_dispatch(const kvm_run& run) noexcept override;
    // After the TIS write that started a command (tpmGo) the vCPU waits up to kTpmStartStall, so
    // a command that is not slow has completed, and raised its interrupt, before the guest runs
    // on. Linux 6.4+ tests the TIS interrupt with one command and sleeps only 1 ms after tpmGo
    // before it gives up on the interrupt and polls for good (drivers/char/tpm/tpm_tis_core.c
    // tpm_tis_send); swtpm's round trip on a loaded host, or one scheduler time slice, is longer.
    // The guest loses nothing: it waits for that command anyway, and a slow one (key generation)
    // costs the vCPU this bound once.
    static constexpr std::chrono::microseconds kTpmStartStall{10000};
    void after_dispatch(const kvm_run& run) noexcept override;

    size_t serial_input(std::span<const uint8_t> bytes) noexcept { return uart_.receive(bytes); }
    const std::vector<std::pair<std::string, std::vector<uint8_t>>>& acpi_dumps() const noexcept { return acpi_.dumps; }
    // Guest-physical ranges where the TPM device takes only writes that may wait in KVM's
    // coalesced MMIO ring (vmm/kvm/coalesced_mmio.hpp): the TIS data FIFOs, or the CRB's register page.
    struct MmioZone {
        uint64_t base;
        uint32_t size;
    };
    std::vector<MmioZone> coalescible_tpm_zones() const;

    // What the TPM did during this power-on; nullopt without a TPM.
    std::optional<TpmWorker::Stats> tpm_stats() const noexcept {
        return tpm_worker_ ? std::optional(tpm_worker_->stats()) : std::nullopt;
    }

private:
    void attach_tpm(const Wiring& w);
    void attach_kernel_boot(const Wiring& w, FwCfgSetup& setup);

    AcpiBlobs acpi_;
    KvmIrqLine com1_irq_;
    KvmIrqLine virtio_irq_;
    KvmIrqLine tpm_irq_;  // ISA IRQ 13; raised only by a TIS with -tpm-irq on
    KvmMsiSink msi_;
    Uart16550 uart_;
    Cmos cmos_;
    A20Gate a20_;
    ResetControl reset_;
    AcpiPm acpi_pm_;
    FwCfg fw_cfg_;
    std::unique_ptr<DebugPort> debug_port_;
    PciHost pci_;
    Cf9Decoder cf8_ports_;
    std::unique_ptr<VirtioBlk> virtio_blk_;
    // -kernel: the port the boot ROM asks on; the fw_cfg file where SeaBIOS writes the event log's address.
    std::unique_ptr<LinuxBootPort> linux_boot_port_;
    std::optional<uint16_t> tpm_log_address_key_;
    // TPM: the worker runs backend commands off the vCPU threads and completes them into the
    // TIS or CRB device under the device lock. Declared after the device so it is destroyed
    // (joined) first.
    TpmInterface tpm_interface_ = TpmInterface::tis;
    std::unique_ptr<TpmFrontend> tpm_device_;
    std::unique_ptr<RegisterMirror> crb_registers_;  // the CRB's register page served from memory
    std::unique_ptr<TpmWorker> tpm_worker_;
};

}  // namespace minivmm
