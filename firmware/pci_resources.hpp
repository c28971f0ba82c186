// What firmware does to PCI before an OS runs, for a boot without firmware (-bios none): size every
// BAR of function 0 on each slot of bus 0 (write all-ones, read back: PCI Local Bus 3.0 §6.2.5.1),
// give each an address in the host bridge's windows (the DSDT's _CRS lists them), largest first so
// each is naturally aligned with no gaps, and enable I/O and memory decoding. SeaBIOS does the same
// in src/fw/pciinit.c (pci_bios_check_devices, pci_bios_map_devices). Linux then keeps the
// assignment as it finds it. Pure: the configuration space is reached through PciConfigAccess.
#pragma once

#include <cstdint>
#include <string>

namespace minivmm {

class PciConfigAccess {
public:
    virtual ~PciConfigAccess() = default;
    // Function 0 of `slot` on bus 0; `reg` dword-aligned. A missing slot reads all-ones.
    virtual uint32_t read32(uint8_t slot, uint16_t reg) = 0;
    virtual void write32(uint8_t slot, uint16_t reg, uint32_t value) = 0;
};

struct PciWindows {
    uint64_t mmio_base = 0, mmio_end = 0;  // 32-bit memory window [base, end)
    uint32_t io_base = 0, io_end = 0;      // I/O port window [base, end)
};

// Empty on success, else one line (the BARs do not fit the windows; nothing is then enabled).
std::string assign_pci_resources(PciConfigAccess& config, const PciWindows& windows);

}  // namespace minivmm
