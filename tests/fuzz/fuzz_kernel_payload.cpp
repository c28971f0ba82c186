// libFuzzer target for a bzImage's compressed payload (firmware/kernel_payload.hpp): the kernel
// file is the user's, so every byte of its setup header and payload may be wrong. The input is a
// selector byte and the payload's bytes: bits 0-2 pick a format whose magic is put in front of them
// (gzip, xz, zstd, lz4, bzip2, lzma, lzo; 7: none), bits 3-6 the output limit (4 MiB shifted
// right by 0-15, down to 128 bytes). The bytes after the selector are also read as a bzImage, and
// with selector 7 the payload found in it, if any, is what is decompressed.
// Checks: decompress() either throws std::invalid_argument (anything else escapes and crashes) or
// returns at most `limit` bytes from a payload detect() calls gzip, xz, zstd or lz4; it never
// reads outside the payload (ASan: the payload is an exactly-sized heap block). payload() returns
// a span inside the file or throws std::invalid_argument.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <stdexcept>
#include <vector>

#include "firmware/kernel_payload.hpp"
#include "tests/fuzz/fuzz_support.hpp"

using namespace minivmm;
using namespace minivmm::fuzz;
namespace kp = minivmm::kernel_payload;

namespace {

constexpr uint64_t kLimit = 4 << 20;

const std::vector<uint8_t> kMagic[8] = {
    {0x1F, 0x8B}, {0xFD, '7', 'z', 'X', 'Z', 0x00}, {0x28, 0xB5, 0x2F, 0xFD}, {0x02, 0x21, 0x4C, 0x18},
    {'B', 'Z', 'h'}, {0x5D, 0x00, 0x00}, {0x89, 'L', 'Z', 'O'}, {},
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const uint8_t selector = data[0];
    const std::span<const uint8_t> rest(data + 1, size - 1);
    std::span<const uint8_t> found;
    bool is_bzimage = false;
    try {
        found = kp::payload(rest);
        is_bzimage = true;
        check(found.data() >= rest.data() && found.data() + found.size() <= rest.data() + rest.size());
    } catch (const std::invalid_argument&) {
    }

    // The payload in an exactly-sized block: the bzImage's (selector 7, when there is one), or
    // the bytes after the selector behind the chosen magic.
    const std::vector<uint8_t>& magic = kMagic[selector & 7];
    const bool from_bzimage = (selector & 7) == 7 && is_bzimage;
    const size_t n = from_bzimage ? found.size() : magic.size() + rest.size();
    const std::unique_ptr<uint8_t[]> payload(new uint8_t[n]);
    if (from_bzimage) {
        if (n) std::memcpy(payload.get(), found.data(), n);
    } else {
        if (!magic.empty()) std::memcpy(payload.get(), magic.data(), magic.size());
        if (!rest.empty()) std::memcpy(payload.get() + magic.size(), rest.data(), rest.size());
    }

    const uint64_t limit = kLimit >> ((selector >> 3) & 15);
    const kp::Format format = kp::detect({payload.get(), n});
    try {
        const std::vector<uint8_t> out = kp::decompress({payload.get(), n}, limit);
        check(out.size() <= limit);
        check(format == kp::Format::gzip || format == kp::Format::xz || format == kp::Format::zstd || format == kp::Format::lz4);
    } catch (const std::invalid_argument&) {
    }
    return 0;
}
