#include "firmware/linux_boot.hpp"

#include <algorithm>
#include <stdexcept>

#include <fmt/core.h>

#include "vmm/base/bytes.hpp"

namespace minivmm::linux_boot {

namespace {

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument(what); }

uint64_t le(std::span<const uint8_t> image, size_t offset, size_t size) {
    return load_le(image.subspan(offset, size));
}

void put(std::vector<uint8_t>& setup, size_t offset, size_t size, uint64_t value) {
    store_le(std::span<uint8_t>(setup).subspan(offset, size), value);
}

std::string mib(uint64_t bytes) { return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20)); }

}  // namespace

Plan plan(std::span<const uint8_t> kernel, uint64_t initrd_size, const std::string& cmdline, uint64_t ram_below_4g) {
    // boot.rst "DETAILS OF HEADER FIELDS": boot_flag 0xAA55 and "HdrS" identify protocol 2.00+.
    if (kernel.size() < hdr::kEnd || le(kernel, hdr::kBootFlag, 2) != 0xAA55 || le(kernel, hdr::kHeader, 4) != 0x53726448)
        bad("not a Linux bzImage (no boot sector flag or 'HdrS' setup header)");
    Plan p;
    p.protocol = static_cast<uint16_t>(le(kernel, hdr::kVersion, 2));
    if (p.protocol < kMinProtocol)
        bad(fmt::format("the kernel's boot protocol {}.{:02} is older than 2.06, the oldest minivmm boots", p.protocol >> 8,
                        p.protocol & 0xFF));
    if (!(kernel[hdr::kLoadFlags] & hdr::kLoadedHigh))
        bad("a zImage (its kernel is not loaded at 1 MiB): only bzImage kernels can be booted");

    // setup_sects 0 means 4 (boot.rst); the boot sector itself is one more.
    const unsigned sects = kernel[hdr::kSetupSects] == 0 ? 4 : kernel[hdr::kSetupSects];
    const uint64_t setup_size = (uint64_t{sects} + 1) * 512;
    if (setup_size > kMaxSetupSize) bad(fmt::format("the kernel's setup code is {} bytes, more than 32 KiB", setup_size));
    if (setup_size >= kernel.size())
        bad(fmt::format("the kernel file is {} bytes and ends inside its {}-byte setup code", kernel.size(), setup_size));
    p.setup.assign(kernel.begin(), kernel.begin() + static_cast<ptrdiff_t>(setup_size));
    p.kernel_offset = setup_size;
    p.kernel_size = kernel.size() - setup_size;
    if (le(kernel, hdr::kSysSize, 4) * 16 > p.kernel_size)
        bad(fmt::format("the kernel file is truncated: its header says {} bytes of kernel, the file has {}",
                        le(kernel, hdr::kSysSize, 4) * 16, p.kernel_size));
    p.kernel_end = kKernelAddr + p.kernel_size;
    if (p.protocol >= 0x020A) {
        // boot.rst "init_size": the memory the kernel needs from its runtime start while it
        // decompresses; that start is pref_address (16 MiB for x86-64) when the kernel would be
        // relocated below it, else the load address aligned to kernel_alignment.
        const uint64_t pref = le(kernel, hdr::kPrefAddress, 8), align = le(kernel, hdr::kKernelAlignment, 4);
        uint64_t start = pref;
        if (kernel[hdr::kRelocatableKernel] != 0) {
            start = std::max<uint64_t>(kKernelAddr, pref);
            if (align > 1 && (align & (align - 1)) == 0) start = (start + align - 1) & ~(align - 1);
        }
        const uint64_t init_size = le(kernel, hdr::kInitSize, 4);
        if (start > ram_below_4g || init_size > ram_below_4g)
            bad(fmt::format("the kernel runs at {:#x} and needs {} there, more than the guest's RAM", start, mib(init_size)));
        p.kernel_end = std::max(p.kernel_end, start + init_size);
    }

    if (ram_below_4g <= kFirmwareReserve + kKernelAddr) bad("the guest has too little RAM for a kernel");
    const uint64_t usable_end = ram_below_4g - kFirmwareReserve;  // SeaBIOS's tables lie above
    if (p.kernel_end > usable_end)
        bad(fmt::format("the kernel needs {} from 1 MiB up, more than the guest's {} of RAM below its firmware tables "
                        "(give the guest more memory with -m)", mib(p.kernel_end - kKernelAddr), mib(usable_end - kKernelAddr)));

    // cmdline_size: the longest line without its NUL (boot.rst); the NUL must end below the EBDA.
    const uint64_t cmdline_size = std::min<uint64_t>(le(kernel, hdr::kCmdlineSize, 4), kCmdlineLimit - kCmdlineAddr - 1);
    if (cmdline.size() > cmdline_size)
        bad(fmt::format("the command line is {} bytes; this kernel accepts at most {} (cmdline_size)", cmdline.size(),
                        cmdline_size));
    if (cmdline.find('\0') != std::string::npos) bad("the command line contains a NUL byte");

    if (initrd_size > 0) {
        // initrd_addr_max: the highest address the initrd's last byte may have.
        const uint64_t limit = std::min<uint64_t>(le(kernel, hdr::kInitrdAddrMax, 4) + 1, usable_end);
        if (initrd_size > limit || ((limit - initrd_size) & ~uint64_t{0xFFF}) < p.kernel_end)
            bad(fmt::format("the initrd ({}) does not fit in the guest's RAM between the kernel ({} from 1 MiB up) and "
                            "{:#x} (give the guest more memory with -m)", mib(initrd_size), mib(p.kernel_end - kKernelAddr), limit));
        p.initrd_addr = (limit - initrd_size) & ~uint64_t{0xFFF};  // page-aligned, as high as allowed
        p.initrd_size = initrd_size;
    }

    // The fields a boot loader writes (boot.rst "LOADING THE REST OF THE KERNEL").
    p.setup[hdr::kTypeOfLoader] = kLoaderType;
    p.setup[hdr::kLoadFlags] |= hdr::kCanUseHeap;
    put(p.setup, hdr::kHeapEndPtr, 2, kHeapEnd);
    put(p.setup, hdr::kCode32Start, 4, kKernelAddr);
    put(p.setup, hdr::kCmdLinePtr, 4, kCmdlineAddr);
    put(p.setup, hdr::kRamdiskImage, 4, p.initrd_addr);
    put(p.setup, hdr::kRamdiskSize, 4, p.initrd_size);
    return p;
}

Plan plan_elf(uint64_t kernel_end, uint64_t initrd_size, const std::string& cmdline, uint64_t ram_below_4g) {
    Plan p;
    p.kernel_end = kernel_end;
    if (ram_below_4g <= kFirmwareReserve + kKernelAddr) bad("the guest has too little RAM for a kernel");
    const uint64_t usable_end = ram_below_4g - kFirmwareReserve;
    if (kernel_end > usable_end)
        bad(fmt::format("the kernel needs {} from 1 MiB up, more than the guest's {} of RAM below its firmware tables "
                        "(give the guest more memory with -m)", mib(kernel_end - kKernelAddr), mib(usable_end - kKernelAddr)));
    if (cmdline.size() > kElfCmdlineMax)
        bad(fmt::format("the command line is {} bytes; a kernel takes at most {} (COMMAND_LINE_SIZE)", cmdline.size(),
                        kElfCmdlineMax));
    if (cmdline.find('\0') != std::string::npos) bad("the command line contains a NUL byte");
    if (initrd_size > 0) {
        if (initrd_size > usable_end || ((usable_end - initrd_size) & ~uint64_t{0xFFF}) < kernel_end)
            bad(fmt::format("the initrd ({}) does not fit in the guest's RAM between the kernel ({} from 1 MiB up) and "
                            "{:#x} (give the guest more memory with -m)", mib(initrd_size), mib(kernel_end - kKernelAddr),
                            usable_end));
        p.initrd_addr = (usable_end - initrd_size) & ~uint64_t{0xFFF};
        p.initrd_size = initrd_size;
    }
    return p;
}

bool load_into(const GuestMemory& memory, const Plan& plan, std::span<const uint8_t> kernel,
               std::span<const uint8_t> initrd, const std::string& cmdline) noexcept {
    if (plan.kernel_offset + plan.kernel_size != kernel.size() || initrd.size() != plan.initrd_size) return false;
    std::vector<uint8_t> line;
    try {
        line.assign(cmdline.begin(), cmdline.end());
        line.push_back(0);
    } catch (...) {
        return false;
    }
    return memory.write(kRealModeAddr, plan.setup) && memory.write(kCmdlineAddr, line) &&
           memory.write(kKernelAddr, kernel.subspan(plan.kernel_offset)) &&
           (initrd.empty() || memory.write(plan.initrd_addr, initrd));
}

}  // namespace minivmm::linux_boot
