#include "firmware/bios_image.hpp"


#include <cerrno>
#include <cstring>

#include <fmt/core.h>

#include "vmm/base/error.hpp"
#include "vmm/base/read_file.hpp"
#include "vmm/base/platform.hpp"

namespace minivmm {

namespace {
constexpr uint64_t kShadowMax = platform::kBiosShadowEnd - platform::kBiosShadowStart;  // 256 KiB
}

BiosImage BiosImage::from_bytes(std::string name, std::vector<uint8_t> bytes) {
    if (bytes.empty()) throw SetupError(kExitFile, fmt::format("BIOS image {} is empty", name));
    if (bytes.size() % 0x10000 != 0 || bytes.size() > platform::kBiosMaxSize)
        throw SetupError(kExitFile, fmt::format("BIOS image {} is {} bytes; it must be a multiple of 64 KiB and at most 16 MiB",
                                                name, bytes.size()));
    return BiosImage(std::move(name), std::move(bytes));
}

BiosImage BiosImage::load(const std::string& path) {
    FileRead f = read_whole_file(path, platform::kBiosMaxSize, /*follow_links=*/true);
    switch (f.status) {
    case FileRead::Status::ok: return from_bytes(path, std::move(f.bytes));
    case FileRead::Status::cannot_open:
    case FileRead::Status::symbolic_link:
        throw SetupError(kExitFile, fmt::format("cannot open BIOS image {}: {}", path, std::strerror(f.err)));
    case FileRead::Status::not_regular: throw SetupError(kExitFile, fmt::format("BIOS image {} is not a regular file", path));
    case FileRead::Status::too_large:
        throw SetupError(kExitFile, fmt::format("BIOS image {} is {} bytes, more than 16 MiB", path, f.size));
    case FileRead::Status::cannot_read:
    case FileRead::Status::shrank: break;
    }
    throw SetupError(kExitFile,
                     fmt::format("cannot read BIOS image {}: {}", path, f.err != 0 ? std::strerror(f.err) : "short read"));
}

uint64_t BiosImage::flash_base() const noexcept { return platform::kFourGiB - bytes_.size(); }

uint64_t BiosImage::shadow_size() const noexcept { return bytes_.size() < kShadowMax ? bytes_.size() : kShadowMax; }

}  // namespace minivmm
