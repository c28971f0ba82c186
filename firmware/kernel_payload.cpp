#include "firmware/kernel_payload.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>

#include <fmt/core.h>
#include <lz4.h>
#include <lzma.h>
#define ZLIB_CONST  // next_in points to const bytes
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "firmware/linux_boot.hpp"
#include "vmm/base/bytes.hpp"

namespace minivmm::kernel_payload {

namespace {

inline constexpr size_t kPayloadOffset = 0x248;  // boot.rst: payload_offset, protocol 2.08+
inline constexpr size_t kPayloadLength = 0x24C;  // boot.rst: payload_length, protocol 2.08+
inline constexpr uint16_t kMinProtocol = 0x0208;
inline constexpr uint32_t kHdrS = 0x53726448;    // "HdrS" at 0x202

// Memory a decoder may take for its window: 128 MiB covers the kernel's xz (scripts/xz_wrap.sh:
// --lzma2=dict=32MiB) and zstd -22 --ultra (window log 27, which is also libzstd's default
// ZSTD_WINDOWLOG_LIMIT_DEFAULT), and bounds what a hostile header can make us allocate.
inline constexpr uint64_t kXzMemLimit = 128ull << 20;

// lib/decompress_unlz4.c: the legacy frame's magic, and its blocks' fixed decompressed size.
inline constexpr uint32_t kLz4Magic = 0x184C2102;
inline constexpr int kLz4BlockSize = 8 << 20;

inline constexpr size_t kFirstChunk = 64 << 10;  // the output's first allocation

[[noreturn]] void fail(Format f, const std::string& problem) {
    throw std::invalid_argument(fmt::format("the kernel's {} payload {}", format_name(f), problem));
}

// The decompressed bytes, grown on demand up to limit + 1 bytes: a decoder that fills the extra
// byte has gone over the limit, which finish() reports.
class Output {
public:
    Output(Format format, uint64_t limit)
        : format_(format), limit_(limit), cap_(limit < buf_.max_size() ? static_cast<size_t>(limit) + 1 : buf_.max_size()) {}

    // Free space at the end, at least one byte and at most `most`. Throws when the output is full
    // at limit + 1 bytes.
    std::span<uint8_t> room(size_t most = std::numeric_limits<size_t>::max()) {
        if (used_ == buf_.size()) {
            if (buf_.size() >= cap_) over();
            buf_.resize(std::min(cap_, std::max(kFirstChunk, buf_.size() * 2)));
        }
        const std::span<uint8_t> free = std::span<uint8_t>(buf_).subspan(used_);
        return free.first(std::min(free.size(), most));
    }
    void produced(size_t n) noexcept { used_ += n; }
    void append(std::span<const uint8_t> data) {
        while (!data.empty()) {
            const std::span<uint8_t> r = room();
            const size_t n = std::min(r.size(), data.size());
            std::memcpy(r.data(), data.data(), n);
            produced(n);
            data = data.subspan(n);
        }
    }
    std::vector<uint8_t> finish() {
        if (used_ > limit_) over();
        buf_.resize(used_);
        return std::move(buf_);
    }

private:
    [[noreturn]] void over() const { fail(format_, fmt::format("decompresses to more than {} bytes (the limit)", limit_)); }

    Format format_;
    uint64_t limit_;
    std::vector<uint8_t> buf_;
    size_t cap_;
    size_t used_ = 0;
};

// gzip (RFC 1952) through zlib, which checks the member's CRC-32 and ISIZE. Returns the bytes the
// member took.
size_t inflate_gzip(std::span<const uint8_t> in, Output& out) {
    z_stream s{};
    if (inflateInit2(&s, 16 + MAX_WBITS) != Z_OK) throw std::bad_alloc();  // 16 +: gzip wrapper only
    const std::unique_ptr<z_stream, int (*)(z_stream*)> end(&s, inflateEnd);
    constexpr size_t kStep = 1u << 30;  // avail_in and avail_out are 32-bit
    size_t fed = 0;
    for (;;) {
        if (s.avail_in == 0 && fed < in.size()) {
            s.next_in = in.data() + fed;
            s.avail_in = static_cast<uInt>(std::min(kStep, in.size() - fed));
            fed += s.avail_in;
        }
        const std::span<uint8_t> r = out.room(kStep);
        s.next_out = r.data();
        s.avail_out = static_cast<uInt>(r.size());
        const int ret = inflate(&s, Z_NO_FLUSH);
        out.produced(r.size() - s.avail_out);
        if (ret == Z_STREAM_END) return fed - s.avail_in;
        if (ret == Z_MEM_ERROR) throw std::bad_alloc();
        if (ret == Z_BUF_ERROR && s.avail_in == 0 && fed == in.size()) fail(Format::gzip, "is truncated");
        if (ret != Z_OK && ret != Z_BUF_ERROR) fail(Format::gzip, fmt::format("is corrupt (zlib: {})", s.msg ? s.msg : "error"));
    }
}

// xz (the .xz file format) through liblzma: one stream, whose check (CRC-32 from the kernel's
// xz --check=crc32) liblzma verifies. Returns the bytes the stream took.
size_t unxz(std::span<const uint8_t> in, Output& out) {
    lzma_stream s = LZMA_STREAM_INIT;
    if (lzma_stream_decoder(&s, kXzMemLimit, 0) != LZMA_OK) throw std::bad_alloc();
    const std::unique_ptr<lzma_stream, void (*)(lzma_stream*)> end(&s, lzma_end);
    s.next_in = in.data();
    s.avail_in = in.size();
    for (;;) {
        const std::span<uint8_t> r = out.room();
        s.next_out = r.data();
        s.avail_out = r.size();
        const lzma_ret ret = lzma_code(&s, LZMA_FINISH);
        out.produced(r.size() - s.avail_out);
        switch (ret) {
        case LZMA_OK: break;  // the output was full: more room
        case LZMA_STREAM_END: return in.size() - s.avail_in;
        case LZMA_BUF_ERROR: fail(Format::xz, "is truncated");  // no progress with all input given
        case LZMA_MEM_ERROR: throw std::bad_alloc();
        case LZMA_MEMLIMIT_ERROR:
            fail(Format::xz, fmt::format("needs more than {} MiB of memory to decompress", kXzMemLimit >> 20));
        case LZMA_OPTIONS_ERROR: fail(Format::xz, "uses options liblzma does not support");
        case LZMA_FORMAT_ERROR: fail(Format::xz, "is corrupt (liblzma: not in the .xz format)");
        case LZMA_DATA_ERROR: fail(Format::xz, "is corrupt (liblzma: data error)");
        default: fail(Format::xz, fmt::format("is corrupt (liblzma error {})", static_cast<int>(ret)));
        }
    }
}

[[noreturn]] void zstd_failed(size_t code) {
    switch (ZSTD_getErrorCode(code)) {
    case ZSTD_error_srcSize_wrong: fail(Format::zstd, "is truncated");
    case ZSTD_error_memory_allocation: throw std::bad_alloc();
    default: fail(Format::zstd, fmt::format("is corrupt (libzstd: {})", ZSTD_getErrorName(code)));
    }
}

// zstd (RFC 8878) through libzstd: the first frame only, as lib/decompress_unzstd.c takes it
// (zstd_find_frame_compressed_size: "there may be junk at the end of the frame"). Streaming keeps
// the output within the limit whatever the frame header claims; the window is libzstd's default
// maximum (128 MiB). Returns the bytes the frame took.
size_t unzstd(std::span<const uint8_t> in, Output& out) {
    const size_t frame = ZSTD_findFrameCompressedSize(in.data(), in.size());
    if (ZSTD_isError(frame)) zstd_failed(frame);
    const std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> d(ZSTD_createDCtx(), ZSTD_freeDCtx);
    if (!d) throw std::bad_alloc();
    ZSTD_inBuffer src{in.data(), frame, 0};
    for (;;) {
        const std::span<uint8_t> r = out.room();
        ZSTD_outBuffer dst{r.data(), r.size(), 0};
        const size_t ret = ZSTD_decompressStream(d.get(), &dst, &src);
        out.produced(dst.pos);
        if (ZSTD_isError(ret)) zstd_failed(ret);
        if (ret == 0) return frame;  // the frame is decoded and flushed
        // Input used up and output not full: the decoder waits for bytes the frame does not have.
        if (src.pos == src.size && dst.pos < dst.size) fail(Format::zstd, "is truncated");
    }
}

// The kernel's lz4: the legacy frame of lz4 -l, read as lib/decompress_unlz4.c reads it. After the
// magic come blocks, each a le32 compressed size and an LZ4 block of at most 8 MiB decompressed;
// the magic may recur between blocks (concatenated frames). Its __decompress gives unlz4 the
// payload less its last 4 bytes, the appended size: 4 bytes that are not the magic where a block
// would start are that size. Returns the bytes before it.
size_t unlz4(std::span<const uint8_t> in, Output& out) {
    std::unique_ptr<uint8_t[]> block;  // one block's output, allocated at the first block
    size_t pos = 4;
    while (pos < in.size()) {
        const size_t left = in.size() - pos;
        if (left < 4) fail(Format::lz4, "is truncated");
        const uint32_t word = load_le32(in, pos);
        if (word == kLz4Magic) {
            pos += 4;
            continue;
        }
        if (left == 4) return pos;
        pos += 4;
        if (word == 0 || word > static_cast<uint32_t>(LZ4_compressBound(kLz4BlockSize)))
            fail(Format::lz4, fmt::format("is corrupt (a block of {} bytes)", word));
        if (word > in.size() - pos) fail(Format::lz4, "is truncated");
        if (!block) block = std::make_unique_for_overwrite<uint8_t[]>(kLz4BlockSize);
        const int n = LZ4_decompress_safe(reinterpret_cast<const char*>(in.data() + pos), reinterpret_cast<char*>(block.get()),
                                          static_cast<int>(word), kLz4BlockSize);
        if (n < 0) fail(Format::lz4, fmt::format("is corrupt (the block at byte {})", pos - 4));
        out.append(std::span<const uint8_t>(block.get(), static_cast<size_t>(n)));
        pos += word;
    }
    return pos;
}

// What may follow the stream: nothing, or its decompressed size as 4 bytes little-endian, as
// size_append (scripts/Makefile.lib) writes it after every format but gzip (whose own trailer
// holds the size; arch/x86/boot/compressed/Makefile) and mkpiggy reads it back as z_output_len.
void check_tail(Format f, std::span<const uint8_t> tail, size_t size) {
    if (tail.empty()) return;
    if (tail.size() != 4)
        fail(f, fmt::format("has {} bytes after the compressed stream (only its 4-byte size may follow)", tail.size()));
    const uint32_t said = load_le32(tail);
    if (said != static_cast<uint32_t>(size))
        fail(f, fmt::format("decompresses to {} bytes, but the size after the stream says {}", size, said));
}

std::string first_bytes(std::span<const uint8_t> data) {
    std::string hex;
    for (size_t i = 0; i < data.size() && i < 6; ++i) hex += fmt::format("{}{:02x}", i ? " " : "", data[i]);
    return hex.empty() ? "nothing" : hex;
}

}  // namespace

const char* format_name(Format f) noexcept {
    switch (f) {
    case Format::gzip: return "gzip";
    case Format::xz: return "xz";
    case Format::zstd: return "zstd";
    case Format::lz4: return "lz4";
    case Format::bzip2: return "bzip2";
    case Format::lzma: return "lzma";
    case Format::lzo: return "lzo";
    case Format::unknown: break;
    }
    return "unknown";
}

std::span<const uint8_t> payload(std::span<const uint8_t> bzimage) {
    namespace hdr = linux_boot::hdr;
    if (bzimage.size() < kPayloadLength + 4 || load_le32(bzimage, hdr::kHeader) != kHdrS)
        throw std::invalid_argument("not a Linux bzImage (no 'HdrS' setup header)");
    const uint16_t protocol = load_le16(bzimage, hdr::kVersion);
    if (protocol < kMinProtocol)
        throw std::invalid_argument(fmt::format("the kernel's boot protocol {}.{:02} is older than 2.08, the first to say where its "
                                                "compressed payload is", protocol >> 8, protocol & 0xFF));
    const uint8_t setup_sects = bzimage[hdr::kSetupSects];
    const uint64_t kernel_start = (uint64_t{setup_sects ? setup_sects : 4u} + 1) * 512;  // boot.rst: 0 means 4
    const uint64_t offset = kernel_start + load_le32(bzimage, kPayloadOffset);
    const uint64_t length = load_le32(bzimage, kPayloadLength);
    if (offset > bzimage.size() || length > bzimage.size() - offset)
        throw std::invalid_argument(fmt::format("the kernel's compressed payload ({} bytes at byte {}) lies outside its {}-byte file",
                                                length, offset, bzimage.size()));
    return bzimage.subspan(offset, length);
}

Format detect(std::span<const uint8_t> data) noexcept {
    const auto starts = [data](std::initializer_list<uint8_t> magic) {
        return data.size() >= magic.size() && std::equal(magic.begin(), magic.end(), data.begin());
    };
    if (starts({0x1F, 0x8B})) return Format::gzip;                          // RFC 1952 ID1 ID2
    if (starts({0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00})) return Format::xz;    // .xz Header Magic Bytes
    if (starts({0x28, 0xB5, 0x2F, 0xFD})) return Format::zstd;              // RFC 8878 frame magic
    if (starts({0x02, 0x21, 0x4C, 0x18})) return Format::lz4;               // legacy frame (lz4 -l)
    if (starts({'B', 'Z', 'h'})) return Format::bzip2;
    if (starts({0x5D, 0x00, 0x00})) return Format::lzma;                    // lzma -9 "alone": lc=3 lp=0 pb=2
    if (starts({0x89, 'L', 'Z', 'O'})) return Format::lzo;                  // lzop's magic
    return Format::unknown;
}

std::vector<uint8_t> decompress(std::span<const uint8_t> data, uint64_t limit) {
    const Format f = detect(data);
    Output out(f, limit);
    size_t end = 0;
    switch (f) {
    case Format::gzip: end = inflate_gzip(data, out); break;
    case Format::xz: end = unxz(data, out); break;
    case Format::zstd: end = unzstd(data, out); break;
    case Format::lz4: end = unlz4(data, out); break;
    case Format::unknown:
        throw std::invalid_argument(fmt::format("the kernel's payload is in no compression format minivmm knows (it starts with {})",
                                                first_bytes(data)));
    default:
        throw std::invalid_argument(
            fmt::format("the kernel's payload is {}-compressed, which minivmm does not decompress", format_name(f)));
    }
    std::vector<uint8_t> bytes = out.finish();
    check_tail(f, data.subspan(end), bytes.size());
    return bytes;
}

}  // namespace minivmm::kernel_payload
