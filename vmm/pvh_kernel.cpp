#include "vmm/pvh_kernel.hpp"

#include <stdexcept>

#include <fmt/core.h>

#include "firmware/kernel_payload.hpp"
#include "vmm/base/error.hpp"
#include "vmm/base/log.hpp"
#include "vmm/direct_boot.hpp"
#include "vmm/kernel_cache.hpp"

namespace minivmm {

namespace {

constexpr uint64_t kMaxElf = 512ull << 20;  // far above any kernel's decompressed size

std::string hex(std::span<const uint8_t> bytes) {
    std::string out;
    for (uint8_t b : bytes) out += fmt::format("{:02x}", b);
    return out;
}

// An open file as the ELF reader reads it. (A reference fits std::function's local storage:
// nothing allocated, in load_into's noexcept path too.)
elf_kernel::ReadAt reader(const OpenFile& file) {
    return [&file](uint64_t offset, std::span<uint8_t> out) noexcept { return file.read_at(offset, out); };
}

}  // namespace

std::optional<PvhKernel> PvhKernel::from_bzimage(const Source& s, std::string& why) {
    PvhKernel k;
    const uint64_t ram_start = linux_boot::kKernelAddr, ram_end = s.ram_below_4g - kFirmwareArea;
    std::optional<std::string> dir = s.cache_dir ? std::optional(kernel_cache::directory(*s.cache_dir)) : std::nullopt;
    const std::string entry = hex(s.sha256) + ".vmlinux";
    if (dir) {
        // Only the headers and the notes are read now; the segments at every power-on (load_into).
        FileOpen cached = open_input_file(*dir + "/" + entry, kMaxElf, /*follow_links=*/false);
        if (cached.ok()) {
            try {
                k.image_ = elf_kernel::parse(cached.file.size(), reader(cached.file), ram_start, ram_end);
                k.cached_ = std::move(cached.file);
                k.cache_entry_ = *dir + "/" + entry;
            } catch (const std::invalid_argument& e) {
                log::warn("-kernel-cache {}: {} is not a usable kernel ({}); decompressing again", *dir, entry, e.what());
            }
        }
    }
    if (!k.cached_) {
        std::span<const uint8_t> payload;
        try {
            payload = kernel_payload::payload(s.bzimage);
        } catch (const std::invalid_argument& e) {
            why = e.what();
            return std::nullopt;
        }
        const kernel_payload::Format format = kernel_payload::detect(payload);
        if (format != kernel_payload::Format::gzip && format != kernel_payload::Format::xz &&
            format != kernel_payload::Format::zstd && format != kernel_payload::Format::lz4) {
            why = format == kernel_payload::Format::unknown
                      ? std::string("its payload is in no compression format minivmm knows")
                      : fmt::format("its payload is {}-compressed, which minivmm does not decompress",
                                    kernel_payload::format_name(format));
            return std::nullopt;
        }
        try {
            k.elf_ = kernel_payload::decompress(payload, kMaxElf);
        } catch (const std::invalid_argument& e) {
            throw SetupError(kExitFile, fmt::format("-kernel {}: {}", s.name, e.what()));
        }
        if (!elf_kernel::is_elf(k.elf_)) {
            why = "its payload is not an ELF vmlinux";
            return std::nullopt;
        }
        try {
            k.image_ = elf_kernel::parse(k.elf_, ram_start, ram_end);
        } catch (const std::invalid_argument& e) {
            if (std::string(e.what()).find("no PVH entry") != std::string::npos) {
                why = e.what();
                return std::nullopt;
            }
            throw SetupError(kExitFile, fmt::format("-kernel {}: the decompressed kernel: {}", s.name, e.what()));
        }
        if (dir) kernel_cache::store(*dir, entry, k.elf_, "the decompressed kernel");
    }
    k.check_initrd(s);
    return k;
}

PvhKernel PvhKernel::from_elf(const Source& s) {
    PvhKernel k;
    try {
        k.image_ = elf_kernel::parse(s.bzimage, linux_boot::kKernelAddr, s.ram_below_4g - kFirmwareArea);
    } catch (const std::invalid_argument& e) {
        throw SetupError(kExitFile, fmt::format("-kernel {}: {}", s.name, e.what()));
    }
    k.elf_.assign(s.bzimage.begin(), s.bzimage.end());
    k.check_initrd(s);
    return k;
}

bool PvhKernel::load_into(const GuestMemory& memory) const noexcept {
    if (!cached_) return elf_kernel::load_into(memory, image_, elf_);
    if (cached_->stamp_now() != cached_->stamp()) {
        log::error("-kernel-cache: {} changed while minivmm ran; not loading it", cache_entry_);
        return false;
    }
    if (!elf_kernel::load_into(memory, image_, cached_->size(), reader(*cached_))) {
        log::error("-kernel-cache: {} could not be read into guest RAM", cache_entry_);
        return false;
    }
    return true;
}

void PvhKernel::check_initrd(const Source& s) const {
    if (s.plan.initrd_size != 0 && s.plan.initrd_addr < image_.highest && image_.lowest < s.plan.initrd_addr + s.plan.initrd_size)
        throw SetupError(kExitFile, fmt::format("-kernel {}: the kernel's segments [{:#x}, {:#x}) overlap the initrd at {:#x}",
                                                s.name, image_.lowest, image_.highest, s.plan.initrd_addr));
}

}  // namespace minivmm
