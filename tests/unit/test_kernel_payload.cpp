// A bzImage's compressed payload (firmware/kernel_payload.hpp) on synthetic bzImages whose payloads
// the real tools make as arch/x86/boot/compressed/Makefile and scripts/Makefile.lib do (gzip -n -9;
// xz --check=crc32 --x86 --lzma2=dict=32MiB; zstd -22 --ultra; lz4 -l -9; each but gzip followed by
// size_append's le32 size), then broken: corrupt, truncated, too large, in formats minivmm refuses.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "firmware/kernel_payload.hpp"
#include "firmware/linux_boot.hpp"
#include "tests/unit/temp_dir.hpp"
#include "vmm/base/bytes.hpp"

using namespace minivmm;
namespace kp = minivmm::kernel_payload;
namespace lb = minivmm::linux_boot;
using kp::Format;

namespace {

// Something like a kernel to compress: an ELF magic, text, zero runs and incompressible noise.
std::vector<uint8_t> sample(size_t size) {
    std::vector<uint8_t> out = {0x7F, 'E', 'L', 'F', 2, 1, 1};
    uint32_t x = 2463534242u;  // xorshift32
    for (unsigned line = 0; out.size() < size; ++line) {
        const std::string text = "vmlinux line " + std::to_string(line) + ": the quick brown fox\n";
        out.insert(out.end(), text.begin(), text.end());
        if (line % 7 == 0) out.insert(out.end(), 300, 0);
        for (int i = 0; i < 64; ++i) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            out.push_back(static_cast<uint8_t>(x));
        }
    }
    out.resize(size);
    return out;
}

// `bytes` through `command` (stdin to stdout, piped as the kernel's Makefile pipes); the tool must
// exist: scripts/setup installs it, so a missing one fails.
std::vector<uint8_t> run_tool(const std::string& command, const std::vector<uint8_t>& bytes) {
    const std::string tool = "/usr/bin/" + command.substr(0, command.find(' '));
    REQUIRE_MESSAGE(::access(tool.c_str(), X_OK) == 0, tool << " not found (scripts/setup installs it)");
    testing::TempDir dir;
    testing::spit(dir.sub("in"), bytes);
    const int status = std::system(("cat " + dir.sub("in") + " | " + command + " > " + dir.sub("out")).c_str());
    REQUIRE_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0), command << " failed");
    return testing::slurp(dir.sub("out"));
}

const char* command_of(Format f) {
    switch (f) {
    case Format::gzip: return "gzip -n -f -9";
    case Format::xz: return "xz --check=crc32 --x86 --lzma2=dict=32MiB";
    case Format::zstd: return "zstd -q -22 --ultra";
    case Format::lz4: return "lz4 -q -l -9 - -";
    case Format::bzip2: return "bzip2 -9";
    case Format::lzma: return "lzma -9";
    default: FAIL("no tool"); return "";
    }
}

// vmlinux.bin.<suffix>: the compressed bytes, and for all but gzip their size (le32) after them.
std::vector<uint8_t> kernel_payload_of(Format f, const std::vector<uint8_t>& bytes) {
    std::vector<uint8_t> out = run_tool(command_of(f), bytes);
    if (f != Format::gzip) append_le(out, bytes.size(), 4);
    return out;
}

inline constexpr uint32_t kPayloadOffset = 0x3C0;  // after the decompressor's head, as in real kernels

// A bzImage (boot.rst): the boot sector and `sects` setup sectors with the header, then the
// protected-mode kernel with `payload` at payload_offset and some bytes after it.
std::vector<uint8_t> bzimage(const std::vector<uint8_t>& payload, uint16_t protocol = 0x020F, uint8_t sects = 27) {
    const size_t setup = ((sects == 0 ? 4u : sects) + 1u) * 512;
    std::vector<uint8_t> k(setup + kPayloadOffset, 0xCC);
    k.insert(k.end(), payload.begin(), payload.end());
    k.insert(k.end(), 0x100, 0x90);
    auto put = [&](size_t at, size_t n, uint64_t v) { store_le(std::span(k).subspan(at, n), v); };
    k[lb::hdr::kSetupSects] = sects;
    put(lb::hdr::kBootFlag, 2, 0xAA55);
    put(lb::hdr::kHeader, 4, 0x53726448);  // "HdrS"
    put(lb::hdr::kVersion, 2, protocol);
    put(0x248, 4, kPayloadOffset);  // payload_offset
    put(0x24C, 4, payload.size());  // payload_length
    return k;
}

// The one-line message decompress throws (empty if it returned).
std::string error_of(std::span<const uint8_t> payload, uint64_t limit = 1ull << 30) {
    try {
        kp::decompress(payload, limit);
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "";
}

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

const Format kDecompressed[] = {Format::gzip, Format::xz, Format::zstd, Format::lz4};

}  // namespace

TEST_CASE("every format the kernel's Makefile makes, from a bzImage back to the bytes") {
    const std::vector<uint8_t> bytes = sample(300 << 10);
    for (Format f : kDecompressed) {
        CAPTURE(kp::format_name(f));
        const std::vector<uint8_t> compressed = kernel_payload_of(f, bytes);
        const std::vector<uint8_t> image = bzimage(compressed);
        const std::span<const uint8_t> p = kp::payload(image);
        CHECK(std::vector<uint8_t>(p.begin(), p.end()) == compressed);
        CHECK(kp::detect(p) == f);
        CHECK(kp::decompress(p, 1ull << 30) == bytes);
        CHECK(kp::decompress(p, bytes.size()) == bytes);  // exactly at the limit
        CHECK(has(error_of(p, bytes.size() - 1), std::string("the kernel's ") + kp::format_name(f) + " payload decompresses to more than"));
        // The tool's output alone, without the size after it, is a payload too.
        const std::vector<uint8_t> bare = run_tool(command_of(f), bytes);
        CHECK(kp::decompress(bare, 1ull << 30) == bytes);
    }
}

TEST_CASE("lz4: blocks of 8 MiB, and frames one after another as the legacy reader takes them") {
    const std::vector<uint8_t> bytes = sample((8 << 20) + 12345);  // two blocks
    const std::vector<uint8_t> one = kernel_payload_of(Format::lz4, bytes);
    CHECK(kp::decompress(one, 1ull << 30) == bytes);
    const std::vector<uint8_t> small = sample(1000);
    std::vector<uint8_t> two = run_tool(command_of(Format::lz4), small);
    const std::vector<uint8_t> again = run_tool(command_of(Format::lz4), small);
    two.insert(two.end(), again.begin(), again.end());  // the magic recurs between blocks
    std::vector<uint8_t> expect = small;
    expect.insert(expect.end(), small.begin(), small.end());
    CHECK(kp::decompress(two, 1ull << 30) == expect);
    CHECK(has(error_of(one, 8 << 20), "the kernel's lz4 payload decompresses to more than 8388608 bytes"));
}

TEST_CASE("a corrupt, truncated or mis-sized stream is refused, naming the format") {
    const std::vector<uint8_t> bytes = sample(100 << 10);
    for (Format f : kDecompressed) {
        const std::string name = kp::format_name(f);
        CAPTURE(name);
        const std::vector<uint8_t> good = kernel_payload_of(f, bytes);
        const size_t stream = f == Format::gzip ? good.size() : good.size() - 4;

        std::vector<uint8_t> corrupt = good;
        if (f == Format::lz4) {
            // Legacy lz4 has no checksum: break the block's encoding itself (a literal run of 255s
            // that runs past the block's end).
            std::fill(corrupt.begin() + 12, corrupt.begin() + static_cast<ptrdiff_t>(stream), 0xFF);
        } else {
            corrupt[stream / 2] ^= 0x55;
        }
        const std::string corrupt_error = error_of(corrupt);
        CHECK(has(corrupt_error, "the kernel's " + name + " payload is corrupt"));

        const std::vector<uint8_t> truncated(good.begin(), good.begin() + static_cast<ptrdiff_t>(stream / 2));
        CHECK(error_of(truncated) == "the kernel's " + name + " payload is truncated");

        std::vector<uint8_t> wrong_size = run_tool(command_of(f), bytes);
        append_le(wrong_size, bytes.size() + 1, 4);
        CHECK(error_of(wrong_size) == "the kernel's " + name + " payload decompresses to 102400 bytes, but the size after the "
                                      "stream says 102401");
        std::vector<uint8_t> trailing = good;
        trailing.push_back(0);
        if (f != Format::lz4) {  // for lz4, 5 bytes after the last block are a block header cut short
            CHECK(error_of(trailing) == "the kernel's " + name + " payload has " + (f == Format::gzip ? "1" : "5") +
                                            " bytes after the compressed stream (only its 4-byte size may follow)");
        } else {
            CHECK(error_of(trailing) == "the kernel's lz4 payload is truncated");
        }
    }
}

TEST_CASE("formats minivmm does not decompress are named and refused") {
    const std::vector<uint8_t> bytes = sample(4096);
    const std::vector<uint8_t> bz = kernel_payload_of(Format::bzip2, bytes);
    CHECK(kp::detect(bz) == Format::bzip2);
    CHECK(error_of(bz) == "the kernel's payload is bzip2-compressed, which minivmm does not decompress");
    const std::vector<uint8_t> lzma = kernel_payload_of(Format::lzma, bytes);
    CHECK(kp::detect(lzma) == Format::lzma);
    CHECK(error_of(lzma) == "the kernel's payload is lzma-compressed, which minivmm does not decompress");
    const std::vector<uint8_t> lzo = {0x89, 'L', 'Z', 'O', 0x00, 0x0D, 0x0A, 0x1A, 0x0A};  // lzop's header
    CHECK(kp::detect(lzo) == Format::lzo);
    CHECK(error_of(lzo) == "the kernel's payload is lzo-compressed, which minivmm does not decompress");

    const std::vector<uint8_t> elf = {0x7F, 'E', 'L', 'F', 2, 1, 1, 0};
    CHECK(kp::detect(elf) == Format::unknown);
    CHECK(error_of(elf) == "the kernel's payload is in no compression format minivmm knows (it starts with 7f 45 4c 46 02 01)");
    CHECK(kp::detect({}) == Format::unknown);
    CHECK(error_of({}) == "the kernel's payload is in no compression format minivmm knows (it starts with nothing)");
    const std::vector<uint8_t> lz4_frame = {0x04, 0x22, 0x4D, 0x18};  // the lz4 frame format: not the kernel's
    CHECK(kp::detect(lz4_frame) == Format::unknown);
    const std::vector<uint8_t> half_xz = {0xFD, '7', 'z', 'X', 'Z'};
    CHECK(kp::detect(half_xz) == Format::unknown);
}

TEST_CASE("format_name") {
    CHECK(std::string(kp::format_name(Format::gzip)) == "gzip");
    CHECK(std::string(kp::format_name(Format::xz)) == "xz");
    CHECK(std::string(kp::format_name(Format::zstd)) == "zstd");
    CHECK(std::string(kp::format_name(Format::lz4)) == "lz4");
    CHECK(std::string(kp::format_name(Format::bzip2)) == "bzip2");
    CHECK(std::string(kp::format_name(Format::lzma)) == "lzma");
    CHECK(std::string(kp::format_name(Format::lzo)) == "lzo");
    CHECK(std::string(kp::format_name(Format::unknown)) == "unknown");
    CHECK(std::string(kp::format_name(static_cast<Format>(99))) == "unknown");
}

TEST_CASE("payload: where the setup header says, inside the file, from protocol 2.08") {
    const std::vector<uint8_t> data(1000, 0xAB);
    const auto image = bzimage(data);
    const std::span<const uint8_t> p = kp::payload(image);
    CHECK(p.data() == image.data() + 28 * 512 + kPayloadOffset);
    CHECK(p.size() == data.size());
    const auto four = bzimage(data, 0x020F, 0);  // setup_sects 0 means 4
    CHECK(kp::payload(four).data() == four.data() + 5 * 512 + kPayloadOffset);
    CHECK(kp::payload(bzimage(data, 0x0208)).size() == data.size());

    auto expect_error = [](const std::vector<uint8_t>& k, const std::string& message) {
        try {
            kp::payload(k);
            FAIL("accepted");
        } catch (const std::invalid_argument& e) {
            CHECK(std::string(e.what()) == message);
        }
    };
    expect_error(bzimage(data, 0x0207),
                 "the kernel's boot protocol 2.07 is older than 2.08, the first to say where its compressed payload is");
    auto hdrs = bzimage(data);
    hdrs[0x202] = 'X';
    expect_error(hdrs, "not a Linux bzImage (no 'HdrS' setup header)");
    expect_error(std::vector<uint8_t>(hdrs.begin(), hdrs.begin() + 0x24F), "not a Linux bzImage (no 'HdrS' setup header)");

    auto put = [](std::vector<uint8_t>& k, size_t at, uint32_t v) { store_le(std::span(k).subspan(at, 4), v); };
    const size_t start = 28 * 512;
    auto too_long = bzimage(data);
    put(too_long, 0x24C, static_cast<uint32_t>(too_long.size() - start - kPayloadOffset + 1));
    expect_error(too_long, "the kernel's compressed payload (" + std::to_string(too_long.size() - start - kPayloadOffset + 1) +
                               " bytes at byte " + std::to_string(start + kPayloadOffset) + ") lies outside its " +
                               std::to_string(too_long.size()) + "-byte file");
    auto exact = bzimage(data);  // up to the file's last byte is inside
    put(exact, 0x24C, static_cast<uint32_t>(exact.size() - start - kPayloadOffset));
    CHECK(kp::payload(exact).size() == exact.size() - start - kPayloadOffset);
    auto beyond = bzimage(data);
    put(beyond, 0x248, 0xFFFFFFFF);
    put(beyond, 0x24C, 0xFFFFFFFF);
    CHECK_THROWS_AS(kp::payload(beyond), std::invalid_argument);
    auto empty_at_end = bzimage(data);
    put(empty_at_end, 0x248, static_cast<uint32_t>(empty_at_end.size() - start));
    put(empty_at_end, 0x24C, 0);
    CHECK(kp::payload(empty_at_end).empty());
}
