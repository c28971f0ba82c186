#include "firmware/bios_image.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/core.h>

#include "vmm/base/error.hpp"
#include "vmm/base/memory_map.hpp"
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
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) throw SetupError(kExitFile, fmt::format("cannot open BIOS image {}: {}", path, std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
        throw SetupError(kExitFile, fmt::format("BIOS image {} is not a regular file", path));
    if (static_cast<uint64_t>(st.st_size) > platform::kBiosMaxSize)
        throw SetupError(kExitFile, fmt::format("BIOS image {} is {} bytes, more than 16 MiB", path, st.st_size));
    std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
    size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = ::read(fd.get(), bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw SetupError(kExitFile, fmt::format("cannot read BIOS image {}: {}", path, n < 0 ? std::strerror(errno) : "short read"));
        done += static_cast<size_t>(n);
    }
    return from_bytes(path, std::move(bytes));
}

uint64_t BiosImage::flash_base() const noexcept { return platform::kFourGiB - bytes_.size(); }

uint64_t BiosImage::shadow_size() const noexcept { return bytes_.size() < kShadowMax ? bytes_.size() : kShadowMax; }

}  // namespace minivmm
