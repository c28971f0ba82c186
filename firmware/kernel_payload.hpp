// The compressed kernel inside a bzImage, unpacked on the host, so that minivmm can load the
// kernel's ELF vmlinux and enter it directly (PVH) instead of running the kernel's own
// decompressor. The payload is found through the setup header (Linux Documentation/arch/x86/boot.rst,
// "payload_offset" and "payload_length", protocol 2.08+) and is what arch/x86/boot/compressed/Makefile
// makes: vmlinux.bin (the stripped ELF vmlinux) and its relocations, compressed, followed for every
// format but gzip by their size as a little-endian u32 (scripts/Makefile.lib, size_append).
//
// Pure: no files; the caller reads the bzImage and loads the ELF.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace minivmm::kernel_payload {

enum class Format { gzip, xz, zstd, lz4, bzip2, lzma, lzo, unknown };

// "gzip", "xz", "zstd", "lz4", "bzip2", "lzma", "lzo" or "unknown".
const char* format_name(Format f) noexcept;

// The compressed payload of a bzImage: payload_length bytes at payload_offset, counted from the
// start of the protected-mode kernel ((setup_sects, 0 meaning 4, + 1) * 512 bytes into the file).
// Throws std::invalid_argument with one line when the file has no setup header ("HdrS"), its
// protocol is older than 2.08, or the payload does not lie inside the file.
std::span<const uint8_t> payload(std::span<const uint8_t> bzimage);

// The format, by the magic bytes each compressor starts its output with.
Format detect(std::span<const uint8_t> payload) noexcept;

// Decompresses a gzip, xz, zstd or lz4 payload (lz4 in the legacy frame the kernel uses,
// lib/decompress_unlz4.c) into at most `limit` bytes. The stream may be followed by nothing or by
// a 4-byte little-endian size, which must then be the output's size (mod 2^32). Throws
// std::invalid_argument with one line naming the format and the problem: a format minivmm does not
// decompress (bzip2, lzma, lzo, unknown), a corrupt or truncated stream, other bytes after it, a
// size that does not match, or output beyond `limit`.
std::vector<uint8_t> decompress(std::span<const uint8_t> payload, uint64_t limit);

}  // namespace minivmm::kernel_payload
