// The 64-bit entry of the x86 Linux boot protocol, for a boot without firmware (-bios none):
// what a boot loader sets up before it jumps to a bzImage's startup_64 (Linux
// Documentation/arch/x86/boot.rst, "64-bit BOOT PROTOCOL"; the zero page's layout is
// Documentation/arch/x86/zero-page.rst). The kernel, command line and initrd are placed as
// firmware/linux_boot.hpp plans them for SeaBIOS; here minivmm also writes
//   - struct boot_params (the "zero page") at kBootParamsAddr: the kernel's setup header, the
//     e820 map and acpi_rsdp_addr; %rsi points at it;
//   - a GDT whose selector 0x10 is a flat 64-bit code segment and 0x18 a flat data segment
//     (__BOOT_CS and __BOOT_DS, as boot.rst requires);
//   - page tables that identity-map the first 4 GiB with 2 MiB pages ("the range with
//     setup_header.init_size from start address of loaded kernel and zero page and command line
//     buffer get ident mapping": all of them lie below 4 GiB).
// Pure: unit-tested without KVM; vmm/direct_boot.hpp writes the bytes and sets the vCPU state.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "firmware/e820.hpp"
#include "firmware/linux_boot.hpp"

namespace minivmm::linux_boot64 {

// Low memory, below the kernel's real-mode area (0x10000) and far below 0x9FC00.
inline constexpr uint64_t kGdtAddr = 0x500;
inline constexpr uint64_t kBootParamsAddr = 0x7000;
inline constexpr uint64_t kStackTop = 0x8FF0;      // %rsp (the kernel sets its own stack at once)
inline constexpr uint64_t kPageTablesAddr = 0x9000;  // PML4, PDPT, then one page directory per GiB
inline constexpr uint64_t kIdentityMappedBytes = 4ull << 30;
inline constexpr size_t kPageTablesSize = (2 + kIdentityMappedBytes / (1ull << 30)) * 4096;
inline constexpr uint16_t kCodeSelector = 0x10;  // __BOOT_CS
inline constexpr uint16_t kDataSelector = 0x18;  // __BOOT_DS
inline constexpr uint64_t kEntryOffset = 0x200;  // startup_64: the protected-mode kernel's start + 0x200

inline constexpr uint16_t kMinProtocol = 0x020C;  // xloadflags and the 64-bit entry: protocol 2.12
inline constexpr size_t kXLoadFlags = 0x236;
inline constexpr uint16_t kXlfKernel64 = 0x0001;  // "kernel has the legacy 64-bit entry point at 0x200"

// boot_params offsets (zero-page.rst).
namespace zp {
inline constexpr size_t kAcpiRsdpAddr = 0x070;
inline constexpr size_t kE820Entries = 0x1E8;
inline constexpr size_t kSetupHeader = 0x1F1;
inline constexpr size_t kE820Table = 0x2D0;
inline constexpr size_t kE820Max = 128;  // E820_MAX_ENTRIES_ZEROPAGE
inline constexpr size_t kSize = 4096;
}  // namespace zp

// Throws std::invalid_argument with one line when the kernel `plan` describes has no 64-bit entry
// (protocol older than 2.12, or XLF_KERNEL_64 clear in xloadflags).
void check_64bit_entry(const linux_boot::Plan& plan);

// The zero page: the setup header as `plan` patched it (boot.rst: from 0x1F1 to 0x202 plus the byte
// at 0x201), the e820 map (at most zp::kE820Max entries) and the RSDP's address.
std::vector<uint8_t> boot_params(const linux_boot::Plan& plan, std::span<const E820Entry> e820, uint64_t rsdp_addr);

// The GDT (null, null, code 0x10, data 0x18) and its limit for LGDT.
std::vector<uint8_t> gdt();

// PML4 at kPageTablesAddr, one PDPT, and 2 MiB-page directories for the first kIdentityMappedBytes.
std::vector<uint8_t> page_tables();

// Where the vCPU starts: the protected-mode kernel's load address + 0x200.
inline uint64_t entry_point() { return linux_boot::kKernelAddr + kEntryOffset; }

}  // namespace minivmm::linux_boot64
