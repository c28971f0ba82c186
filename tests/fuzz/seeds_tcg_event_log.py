"""Seeds of fuzz_tcg_event_log (tests/fuzz/make_seeds.py writes them): logs as SeaBIOS writes them
(crypto-agile with SHA-1 and SHA-256, and SHA-1 for TPM 1.2), empty, and a truncated one."""
import struct


def agile_log(events):
    spec = b"Spec ID Event03\0" + struct.pack("<IBBBBI", 0, 0, 2, 0, 2, 2) + struct.pack("<HHHH", 4, 20, 11, 32) + b"\0"
    log = struct.pack("<II", 0, 3) + bytes(20) + struct.pack("<I", len(spec)) + spec
    for i in range(events):
        log += struct.pack("<IIIH", i, 4, 2, 4) + bytes(20) + struct.pack("<H", 11) + bytes(32) + struct.pack("<I", 4) + bytes(4)
    return log


def sha1_log(events):
    return b"".join(struct.pack("<II", i, 8) + bytes([i]) * 20 + struct.pack("<I", 3) + b"abc" for i in range(events))


def seeds():
    def seed(version, area, size, data=b"vmlinuz\0"):
        area = area.ljust(size, b"\0")[:size]
        return bytes([version]) + struct.pack("<H", size) + area + bytes([len(data)]) + data
    return {
        "agile-3": seed(1, agile_log(3), 1024),
        "agile-full": seed(1, agile_log(3), len(agile_log(3)) + 40),
        "agile-truncated": seed(1, agile_log(3)[:150], 150),
        "sha1-2": seed(0, sha1_log(2), 512),
        "sha1-empty": seed(0, b"", 256),
        "garbage": seed(1, bytes(range(256)) * 2, 512),
    }
