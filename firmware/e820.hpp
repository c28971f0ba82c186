// The BIOS memory map handed to SeaBIOS in the fw_cfg file "etc/e820" (SeaBIOS src/fw/paravirt.c
// qemu_early_e820): RAM below and above 4 GiB plus the pages KVM needs for its TSS and identity
// map. SeaBIOS itself cuts out the 0xA0000-0x100000 legacy hole and its own reservations.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace minivmm {

inline constexpr uint32_t kE820Ram = 1;
inline constexpr uint32_t kE820Reserved = 2;

struct E820Entry {
    uint64_t addr = 0;
    uint64_t size = 0;
    uint32_t type = 0;
};

// SeaBIOS's struct e820_entry is built for i386, where u64 aligns to 4: 20 bytes, packed LE.
inline constexpr size_t kE820EntrySize = 20;

// RAM [0, ram_below_4g), RAM [4 GiB, 4 GiB + ram_above_4g) when non-zero, RESERVED
// [kKvmIdentityMapAddr, +kKvmReservedSize), and RESERVED [kTpmCrbBufferBase, +kTpmCrbBufferSize)
// when `tpm_crb_buffer` (the CRB's buffer is RAM of the machine's, which no OS may take for its
// own). Throws std::invalid_argument when ram_below_4g is zero or above platform::kLowMemoryLimit,
// or the high RAM end overflows.
std::vector<E820Entry> build_e820(uint64_t ram_below_4g, uint64_t ram_above_4g, bool tpm_crb_buffer = false);

// The map a kernel gets when minivmm boots it without firmware (-bios none), as firmware would
// report it after its own set-up (ACPI 6.5 §15 "System Address Map Interfaces"): RAM [0, 0x9FC00)
// (below it Linux puts its AP trampoline), RESERVED [0x9FC00, 0xA0000) and [0xE0000, 0x100000)
// (the RSDP's F-segment), RAM [1 MiB, ram_below_4g - firmware_area), RESERVED for the last
// `firmware_area` bytes (the ACPI tables and the TPM event log: what SeaBIOS keeps in its high
// zone), then what build_e820 adds (the KVM pages, the CRB buffer, RAM above 4 GiB). In address
// order. Throws std::invalid_argument as build_e820 does, or when ram_below_4g leaves no RAM
// above 1 MiB.
std::vector<E820Entry> build_direct_boot_e820(uint64_t ram_below_4g, uint64_t ram_above_4g, bool tpm_crb_buffer,
                                              uint64_t firmware_area);
inline constexpr uint64_t kE820LowRamEnd = 0x9FC00;
inline constexpr uint64_t kE820FsegBase = 0xE0000;

// The entries as SeaBIOS reads them: {u64 addr, u64 size, u32 type} little-endian, no padding.
std::vector<uint8_t> encode_e820(std::span<const E820Entry> entries);

}  // namespace minivmm
