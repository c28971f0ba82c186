// libFuzzer target for the -snapshot copy-on-write overlay of DiskImage. The base images are
// made once per process in a temporary directory (sizes 512 B, 4 KiB, 4 KiB + 512 B and
// 64 KiB + 1.5 KiB, so the last overlay block is whole or partial) and filled with a pattern.
// The input is a configuration byte (which image) followed by reads, writes and flushes at
// offsets near block boundaries, near the end of the image, past it and near 2^64, of 0 bytes
// to 3 blocks.
// Checks: every read returns exactly what a plain model (the base bytes with every accepted
// write applied in order) holds; a read or write succeeds exactly when it lies inside the image,
// and a refused one changes nothing; size() is the file's size, the image is not read-only and
// flush() succeeds; the base file's bytes are unchanged after every input.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_support.hpp"
#include "vmm/host/disk_image.hpp"

using namespace minivmm;
using namespace minivmm::fuzz;

namespace {

constexpr uint64_t kBlock = DiskImage::kOverlayBlock;
constexpr uint64_t kSizes[4] = {512, kBlock, kBlock + 512, 16 * kBlock + 1536};

struct BaseImages {
    std::string dir;
    std::string paths[4];
    std::vector<uint8_t> bytes[4];

    BaseImages() {
        char tmpl[] = "/tmp/fuzz-disk-overlay-XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) std::abort();
        dir = tmpl;
        for (size_t i = 0; i < 4; ++i) {
            paths[i] = dir + "/base" + std::to_string(i) + ".img";
            bytes[i].resize(kSizes[i]);
            for (uint64_t at = 0; at < kSizes[i]; ++at) bytes[i][at] = static_cast<uint8_t>(at * 7 + at / 4096 + i);
            const int fd = ::open(paths[i].c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0444);
            if (fd < 0 || ::write(fd, bytes[i].data(), bytes[i].size()) != static_cast<ssize_t>(bytes[i].size()))
                std::abort();
            ::close(fd);
        }
    }
    ~BaseImages() { std::filesystem::remove_all(dir); }

    // The file's bytes and size as they are now equal the pattern it was made with.
    bool unchanged(size_t i) const {
        struct stat st {};
        if (::stat(paths[i].c_str(), &st) != 0 || static_cast<uint64_t>(st.st_size) != kSizes[i]) return false;
        std::vector<uint8_t> now(kSizes[i] + 1);
        const int fd = ::open(paths[i].c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return false;
        const ssize_t n = ::pread(fd, now.data(), now.size(), 0);
        ::close(fd);
        return n == static_cast<ssize_t>(kSizes[i]) && std::memcmp(now.data(), bytes[i].data(), kSizes[i]) == 0;
    }
};

BaseImages* images;

// Offsets the bugs live at: block edges, the image end, past it, and near 2^64.
uint64_t pick_offset(Input& in, uint64_t size) {
    const uint8_t sel = in.u8();
    const int64_t delta = static_cast<int8_t>(in.u8());
    uint64_t anchor;
    switch (sel % 6) {
    case 0: anchor = 0; break;
    case 1: anchor = (sel >> 3) % (size / kBlock + 1) * kBlock; break;  // a block boundary
    case 2: anchor = size; break;
    case 3: anchor = ~uint64_t{0}; break;
    case 4: return in.u16() % (size + 1);
    default: return in.u64();
    }
    return anchor + static_cast<uint64_t>(delta);
}

size_t pick_length(Input& in) {
    const uint8_t sel = in.u8();
    switch (sel % 4) {
    case 0: return sel >> 2;                          // 0..63
    case 1: return 512u * ((sel >> 2) % 9);           // whole sectors, 0..4 KiB
    case 2: return kBlock - 1 + (sel >> 2) % 3;       // a block, give or take one
    default: return in.u16() % (3 * kBlock + 1);      // anything up to 3 blocks
    }
}

bool inside(uint64_t offset, size_t len, uint64_t size) { return offset <= size && len <= size - offset; }

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    images = new BaseImages;
    std::atexit([] { delete images; });
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Input in(data, size);
    const size_t which = in.u8() % 4;
    const uint64_t image_size = kSizes[which];
    {
        std::unique_ptr<DiskImage> disk = DiskImage::open(images->paths[which], true);
        check(disk->snapshot() && disk->size() == image_size && !disk->read_only());
        std::vector<uint8_t> model = images->bytes[which];
        std::vector<uint8_t> buf;
        for (unsigned ops = 0; !in.empty() && ops < 256; ++ops) {
            const uint8_t op = in.u8();
            const uint64_t offset = pick_offset(in, image_size);
            const size_t len = pick_length(in);
            const bool ok = inside(offset, len, image_size);
            switch (op % 4) {
            case 0:
            case 1: {  // a read into a buffer with a guard band after it
                buf.assign(len + 16, 0xA5);
                check(disk->read(offset, std::span<uint8_t>(buf.data(), len)) == ok);
                for (size_t i = len; i < len + 16; ++i) check(buf[i] == 0xA5);
                if (ok) check(std::memcmp(buf.data(), model.data() + offset, len) == 0);
                break;
            }
            case 2: {  // a write of input bytes, then a fill pattern
                buf.resize(len);
                in.fill(buf);
                check(disk->write(offset, buf) == ok);
                if (ok && len > 0) std::memcpy(model.data() + offset, buf.data(), len);
                break;
            }
            default:
                check(disk->flush());
                break;
            }
        }
        // The whole image once more: a write that went astray shows up here.
        buf.assign(image_size, 0);
        check(disk->read(0, buf) && buf == model);
    }
    check(images->unchanged(which));
    return 0;
}
