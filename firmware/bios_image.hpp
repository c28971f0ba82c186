// The firmware image (SeaBIOS's bios-256k.bin): loaded once, validated, and copied into the
// machine at every power-on: the whole image at the top of 4 GiB, as QEMU maps its BIOS, and its last
// 256 KiB as writable RAM below 1 MiB, because there is no PAM-capable bridge to unlock shadow RAM
// (SeaBIOS src/fw/shadow.c make_bios_writable: "Unable to unlock ram - bridge not found").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace minivmm {

class BiosImage {
public:
    // Throws SetupError(kExitFile) naming the file when it is missing, unreadable, empty, not a
    // multiple of 64 KiB or larger than 16 MiB.
    static BiosImage load(const std::string& path);
    // For tests: an image from bytes, validated the same way.
    static BiosImage from_bytes(std::string name, std::vector<uint8_t> bytes);

    const std::vector<uint8_t>& bytes() const noexcept { return bytes_; }
    uint64_t size() const noexcept { return bytes_.size(); }
    // Guest-physical base of the flash alias: 4 GiB - size.
    uint64_t flash_base() const noexcept;
    // The part copied below 1 MiB: the last min(size, 256 KiB) bytes, ending at 0x100000.
    uint64_t shadow_size() const noexcept;
    uint64_t shadow_base() const noexcept { return 0x100000 - shadow_size(); }
    const uint8_t* shadow_bytes() const noexcept { return bytes_.data() + (bytes_.size() - shadow_size()); }

private:
    BiosImage(std::string name, std::vector<uint8_t> bytes) : name_(std::move(name)), bytes_(std::move(bytes)) {}
    std::string name_;
    std::vector<uint8_t> bytes_;
};

}  // namespace minivmm
