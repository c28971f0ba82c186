"""Seeds of fuzz_tpm_device_state (tests/fuzz/make_seeds.py)."""
from seed_bytes import u8, u32, u64


def seeds():
    """The TPM interfaces' state blobs as they save them (devices/device_state.hpp): the first byte
    modulo 4 picks the device (5: TIS 2.0, 6: TIS 1.2, 7: CRB, 8: PPI)."""
    def tis(tpm2, loc0, active, buffer, rw, rlen, level):
        family = 0x04000000 if tpm2 else 0
        idle = u8(0, 0x80) + u32(family) + u32(0x08) + u32(0)
        return (u8(5 if tpm2 else 6, 1, 2 if tpm2 else 1) + u32(4096) + u32(0x2100 if tpm2 else 0xFFFFFFFF)
                + (loc0 or idle) + idle * 4 + u8(active) + u32(4096) + buffer.ljust(4096, b"\0") + u32(rw) + u32(rlen) + u8(level))
    ok = bytes([0x80, 0x01, 0, 0, 0, 0x0a, 0, 0, 0, 0])
    tis_busy = tis(True, u8(2, 0xA0) + u32(0x04000090) + u32(0x8000008F) + u32(0x85), 0, ok, 4, 10, 1)
    tis_fresh = tis(True, None, 0xFF, b"", 0, 0, 0)
    tis12_ready = tis(False, u8(1, 0xA0) + u32(0x40) + u32(0x08) + u32(0), 0, b"", 0, 0, 0)
    crb = u8(7, 1) + u32(4096) + u64(0xFED41000) + u8(1, 0, 0, 0) + u32(0)
    ppi = u8(8, 1) + b"".join(u32(v) for v in (2, 1, 5, 0, 0, 0, 0, 5, 0, 0, 0))
    return {"tis-response-half-read": tis_busy, "tis-fresh": tis_fresh, "tis12-ready": tis12_ready,
            "crb-assigned": crb, "ppi-clear-pending": ppi}
