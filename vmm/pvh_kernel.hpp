// -bios none, the fast way in: the kernel's ELF vmlinux entered through PVH (firmware/pvh.hpp)
// instead of its bzImage's 64-bit entry, so the guest does not decompress itself. The bzImage's
// payload (boot.rst "payload_offset") is decompressed here once at start-up
// (firmware/kernel_payload.hpp) and every power-on of the run loads the same ELF
// (firmware/elf_kernel.hpp). With -kernel-cache DIR the ELF is kept in DIR as
// <SHA-256 of the bzImage>.vmlinux, so the next run with the same bzImage skips the decompression;
// such an entry is not read into memory but kept open and read in place: its headers at start-up,
// its segments straight into guest RAM at every power-on, once fstat shows it unchanged.
// What is measured is still the bzImage file (PCR 9), as in every other -kernel boot: the ELF is a
// pure function of it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "firmware/elf_kernel.hpp"
#include "firmware/linux_boot.hpp"
#include "vmm/base/guest_memory.hpp"
#include "vmm/base/read_file.hpp"

namespace minivmm {

class PvhKernel {
public:
    struct Source {
        std::span<const uint8_t> bzimage;       // the -kernel file (a bzImage, or for from_elf the ELF)
        std::string name;                       // for messages: the -kernel path
        std::vector<uint8_t> sha256;            // of the bzImage (the cache's key; with cache_dir only)
        const linux_boot::Plan& plan;           // where the command line and the initrd go
        uint64_t ram_below_4g;
        std::optional<std::string> cache_dir;   // -kernel-cache
    };
    // nullopt, with `why` set for an info line, when the bzImage cannot be entered this way but its
    // 64-bit entry can: a payload format minivmm does not decompress, or an ELF without a PVH entry.
    // Throws SetupError(kExitFile) with one line when the kernel is broken either way (a corrupt or
    // truncated payload, a malformed ELF, segments outside RAM or over the initrd), and for a cache
    // directory that cannot be used (a symbolic link, not a directory); one that cannot be written
    // is a warning.
    static std::optional<PvhKernel> from_bzimage(const Source& source, std::string& why);
    // An ELF vmlinux given to -kernel itself (KernelBoot::is_elf). Throws SetupError(kExitFile) for
    // an ELF minivmm cannot load or enter (see elf_kernel::parse).
    static PvhKernel from_elf(const Source& source);

    const elf_kernel::Image& image() const noexcept { return image_; }
    uint64_t elf_size() const noexcept { return cached_ ? cached_->size() : elf_.size(); }
    bool from_cache() const noexcept { return cached_.has_value(); }
    // The -kernel-cache entry's fd, read at every power-on (the sandbox allows fstat on it), or -1.
    int cache_fd() const noexcept { return cached_ ? cached_->fd() : -1; }
    // Every segment into guest RAM; false if one does not fit (it was checked at start-up). From
    // -kernel-cache, also false, with one error line, when the entry changed since start-up (its
    // FileStamp: the Image was parsed from what it was then) or cannot be read.
    bool load_into(const GuestMemory& memory) const noexcept;

private:
    PvhKernel() = default;
    void check_initrd(const Source& s) const;
    std::vector<uint8_t> elf_;        // the ELF in memory: decompressed at start-up, or the -kernel file
    std::optional<OpenFile> cached_;  // or the -kernel-cache entry, open, read in place
    std::string cache_entry_;         // its path, for messages
    elf_kernel::Image image_;
};

}  // namespace minivmm
