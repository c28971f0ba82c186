// Direct kernel boot (-kernel/-initrd/-append): the x86 Linux boot protocol as a boot loader
// follows it (Linux Documentation/arch/x86/boot.rst, "THE REAL-MODE KERNEL HEADER" and "LOADING
// THE REST OF THE KERNEL"). The setup header is checked and the pieces are placed as QEMU and
// GRUB place them for protocol 2.02+: real-mode code at 0x10000, its heap and stack up to
// 0x20000, the command line at 0x20000, the protected-mode kernel at 0x100000 and the initrd as
// high as initrd_addr_max and the RAM below SeaBIOS's tables allow.
//
// Pure: parsing and placement are unit-tested without KVM; load_into() writes the result into
// guest memory when the boot ROM (firmware/linux_boot_rom.S) asks for it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vmm/base/guest_memory.hpp"

namespace minivmm::linux_boot {

inline constexpr uint64_t kRealModeAddr = 0x10000;   // real-mode code (setup), segment 0x1000
inline constexpr uint64_t kCmdlineAddr = 0x20000;    // NUL-terminated command line
inline constexpr uint64_t kKernelAddr = 0x100000;    // protected-mode kernel (code32_start)
inline constexpr uint16_t kHeapEnd = 0xFE00;         // heap_end_ptr: setup's heap and stack end at 0x20000 - 0x200
inline constexpr uint16_t kMinProtocol = 0x0206;     // cmdline_size appeared in 2.06
inline constexpr uint32_t kMaxSetupSize = 0x8000;    // setup code beyond 32 KiB would run into the heap
// The command line must end below the EBDA SeaBIOS keeps under 640 KiB (src/config.h BUILD_EBDA_MINIMUM).
inline constexpr uint64_t kCmdlineLimit = 0x90000;
// SeaBIOS's high zone: the top BUILD_MAX_HIGHTABLE (16 MiB) of RAM below 4 GiB, reserved in its e820
// while it runs (src/malloc.c malloc_preinit; what stays unused is given back at boot). The ROM runs
// after that, but the initrd is kept out of all of it, whatever SeaBIOS still holds there.
inline constexpr uint64_t kFirmwareReserve = 16ull << 20;
inline constexpr uint8_t kLoaderType = 0xFF;         // type_of_loader: "undefined" (no ID assigned to minivmm)

// Setup header offsets (boot.rst, "THE REAL-MODE KERNEL HEADER").
namespace hdr {
inline constexpr size_t kSetupSects = 0x1F1;
inline constexpr size_t kSysSize = 0x1F4;  // protected-mode code in 16-byte paragraphs (4 bytes from 2.04)
inline constexpr size_t kBootFlag = 0x1FE;
inline constexpr size_t kHeader = 0x202;
inline constexpr size_t kVersion = 0x206;
inline constexpr size_t kTypeOfLoader = 0x210;
inline constexpr size_t kLoadFlags = 0x211;
inline constexpr size_t kCode32Start = 0x214;
inline constexpr size_t kRamdiskImage = 0x218;
inline constexpr size_t kRamdiskSize = 0x21C;
inline constexpr size_t kHeapEndPtr = 0x224;
inline constexpr size_t kCmdLinePtr = 0x228;
inline constexpr size_t kInitrdAddrMax = 0x22C;
inline constexpr size_t kKernelAlignment = 0x230;
inline constexpr size_t kRelocatableKernel = 0x234;
inline constexpr size_t kCmdlineSize = 0x238;
inline constexpr size_t kPrefAddress = 0x258;
inline constexpr size_t kInitSize = 0x260;
inline constexpr size_t kEnd = 0x264;  // the header as of protocol 2.10
inline constexpr uint8_t kLoadedHigh = 0x01;
inline constexpr uint8_t kCanUseHeap = 0x80;
}  // namespace hdr

// Where each piece goes, and the setup code with its header filled in.
struct Plan {
    uint16_t protocol = 0;
    std::vector<uint8_t> setup;  // (setup_sects + 1) * 512 bytes, header patched, for kRealModeAddr
    uint64_t kernel_offset = 0;  // where the protected-mode kernel starts in the file
    uint64_t kernel_size = 0;
    uint64_t kernel_end = 0;     // the end of the kernel, and of the memory it decompresses into (init_size
                                 // from its runtime start, boot.rst "init_size"): the initrd lies above
    uint64_t initrd_addr = 0;    // 0 without an initrd
    uint64_t initrd_size = 0;
};

// Checks the kernel's setup header and places everything for a guest with `ram_below_4g` bytes of
// RAM below 4 GiB. Throws std::invalid_argument with one line for: not a bzImage (no boot flag or
// "HdrS", or a zImage that is not loaded high), a protocol older than 2.06, a setup or kernel
// (syssize) that does not fit the file, a command line longer than the kernel's cmdline_size, a
// kernel or initrd that does not fit the guest's RAM.
Plan plan(std::span<const uint8_t> kernel, uint64_t initrd_size, const std::string& cmdline, uint64_t ram_below_4g);

// For an ELF vmlinux entered through PVH (-bios none; firmware/pvh.hpp): no setup header, so the
// command line may have up to kElfCmdlineMax bytes (x86's COMMAND_LINE_SIZE less the NUL) and the
// initrd goes as high as below the firmware reserve, above `kernel_end` (the ELF's highest byte).
// Throws std::invalid_argument as plan() does.
inline constexpr size_t kElfCmdlineMax = 2047;
Plan plan_elf(uint64_t kernel_end, uint64_t initrd_size, const std::string& cmdline, uint64_t ram_below_4g);

// Writes the setup code, the command line, the protected-mode kernel and the initrd where `plan`
// says. False (nothing meaningful loaded) if any range is outside guest RAM.
bool load_into(const GuestMemory& memory, const Plan& plan, std::span<const uint8_t> kernel,
               std::span<const uint8_t> initrd, const std::string& cmdline) noexcept;

}  // namespace minivmm::linux_boot
