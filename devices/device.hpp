// The interfaces every device model is written against. Nothing here knows about KVM,
// sockets or threads: the VMM core implements IrqLine/MsiSink/SystemControl on top of KVM,
// and unit tests and fuzzers implement them with plain recorders.
//
// Locking, the one rule for every device: devices contain no locks and are not thread-safe.
// Every call into a device (read, write, and any other method another thread reaches, such as
// Uart16550::receive or TpmFrontend::command_completed) is made with the machine's device lock
// held; the owner takes it (vmm/kvm/vcpu.cpp around exit dispatch and coalesced-MMIO replay,
// Machine::serial_input, the TPM worker's completion in vmm/tpm_slot.cpp, the disk's I/O thread
// in vmm/virtio_io_thread.cpp), never the device.
// Only calls no other thread can race with go without it: set-up before the vCPU threads start,
// the PPI mailbox between two machines (TpmSlot::power_on, vmm/tpm_slot.cpp), and a virtio
// request's I/O on the thread serving its queue (VirtioPci::serve, vmm/virtio_io_thread.hpp),
// which touches only that request's buffers and the disk, never the transport's state.
// What a device calls with the lock held (IrqLine, MsiSink, SystemControl, ByteSink,
// TpmPort, callbacks) must never take the device lock, wait for a thread that takes
// it, or wait for the host console: the ByteSink behind a console is a non-blocking queue.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "vmm/base/bytes.hpp"

namespace minivmm {

// A device mapped on the port-I/O or MMIO bus. `offset` is relative to the base the device
// was mapped at; the bus guarantees that [offset, offset + data.size()) lies inside the
// mapping and that data.size() is 1..8. Accesses are little-endian byte spans.
class Device {
public:
    virtual ~Device() = default;
    virtual std::string_view name() const noexcept = 0;
    virtual void read(uint64_t offset, std::span<uint8_t> data) noexcept = 0;
    virtual void write(uint64_t offset, std::span<const uint8_t> data) noexcept = 0;
};

// One interrupt input of the in-kernel PIC/IOAPIC (a GSI). Edge-triggered ISA devices pulse it
// (set(true) then set(false)); level-triggered ones hold it while their condition lasts.
class IrqLine {
public:
    virtual ~IrqLine() = default;
    virtual void set(bool level) noexcept = 0;
};

// Message-signalled interrupts (PCI MSI-X): the device hands over the address/data pair the
// guest programmed into its MSI-X table.
class MsiSink {
public:
    virtual ~MsiSink() = default;
    virtual void signal(uint64_t address, uint32_t data) noexcept = 0;
};

// Machine-level requests a device can make (reset through 0xCF9 or the ACPI reset register,
// power-off through ACPI S5). The VMM acts on them after the current exit is handled.
class SystemControl {
public:
    virtual ~SystemControl() = default;
    virtual void request_reset() noexcept = 0;
    virtual void request_poweroff() noexcept = 0;
};

// Where a character device (UART transmitter, debug port) sends its bytes: a file, stdout,
// or a recorder in tests. Must not block for long and never throws.
class ByteSink {
public:
    virtual ~ByteSink() = default;
    virtual void write(std::span<const uint8_t> bytes) noexcept = 0;
};

}  // namespace minivmm
