"""Seeds of fuzz_kernel_payload (tests/fuzz/make_seeds.py writes them): a selector byte, then a
payload without the magic the harness puts back in front (see the target's comment). Payloads as
arch/x86/boot/compressed/Makefile makes them (gzip -9; xz with CRC-32 and the x86 filter; each
but gzip followed by its size, le32), a hand-made zstd frame with a raw block and an lz4 legacy
frame with a literal and a match sequence (no zstd or lz4 in Python's library), and a bzImage."""
import gzip
import lzma
import struct

GZIP, XZ, ZSTD, LZ4, BZIP2, RAW = 0, 1, 2, 3, 4, 7
MAGIC_LENGTH = {GZIP: 2, XZ: 6, ZSTD: 4, LZ4: 4, BZIP2: 3, RAW: 0}


def kernel_like(size):
    text = b"".join(b"vmlinux line %d: the quick brown fox\n" % i for i in range(size // 30 + 1))
    return (b"\x7fELF\x02\x01\x01" + text)[:size]


def seed(fmt, payload, limit_shift=0):
    return bytes([fmt | limit_shift << 3]) + payload[MAGIC_LENGTH[fmt]:]


def xz(data, dict_size):
    filters = [{"id": lzma.FILTER_X86}, {"id": lzma.FILTER_LZMA2, "preset": 9, "dict_size": dict_size}]
    return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32, filters=filters)


def zstd_raw(data):
    # RFC 8878: magic, descriptor 0x20 (single segment, 1-byte content size), one last raw block.
    return struct.pack("<IBB", 0xFD2FB528, 0x20, len(data)) + struct.pack("<I", len(data) << 3 | 1)[:3] + data


def lz4_legacy(blocks):
    # lib/decompress_unlz4.c: magic, then each block as its le32 size and LZ4 sequences.
    return struct.pack("<I", 0x184C2102) + b"".join(struct.pack("<I", len(b)) + b for b in blocks)


def bzimage(payload):
    setup = bytearray(28 * 512)
    setup[0x1F1] = 27
    struct.pack_into("<H", setup, 0x1FE, 0xAA55)
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<HII", setup, 0x206, 0x020F, 0, 0)
    struct.pack_into("<II", setup, 0x248, 0x40, len(payload))
    return bytes(setup) + bytes(0x40) + payload + bytes(16)


def seeds():
    data = kernel_like(3000)
    size = struct.pack("<I", len(data))
    # "abcd", then a 16-byte match 4 back, then 6 literals: 26 bytes out.
    sequences = bytes([0x4C]) + b"abcd" + struct.pack("<H", 4) + bytes([0x60]) + b"efghij"
    return {
        "gzip": seed(GZIP, gzip.compress(data, 9, mtime=0)),
        "xz-sized": seed(XZ, xz(data, 1 << 20) + size),
        "xz-kernel-dict": seed(XZ, xz(data, 32 << 20) + size),
        "xz-over-limit": seed(XZ, xz(data, 1 << 20), limit_shift=12),
        "zstd-raw-sized": seed(ZSTD, zstd_raw(data[:200]) + struct.pack("<I", 200)),
        "lz4-two-blocks": seed(LZ4, lz4_legacy([sequences, bytes([0x50]) + b"hello"]) + struct.pack("<I", 31)),
        "lz4-magic-again": seed(LZ4, lz4_legacy([sequences]) + lz4_legacy([sequences])),
        "bzip2": seed(BZIP2, b"BZh91AY&SY" + bytes(20)),
        "bzimage-gzip": seed(RAW, bzimage(gzip.compress(data, 9, mtime=0))),
    }
