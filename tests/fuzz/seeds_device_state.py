"""Seeds of fuzz_device_state (tests/fuzz/make_seeds.py)."""
from seed_bytes import u8, u16, u32, u64


def seeds():
    """Device state blobs as the devices save them (devices/device_state.hpp): the first byte picks
    the device (0 UART, 1 CMOS, 2 ACPI PM, 3 reset control, 4 A20 gate, 5 fw_cfg, 6 boot marker,
    7 -kernel boot port, 8 PCI host, 9 MSI-X table, 10 virtqueue, 11 virtio-blk). For 8 and 11 an odd
    second byte XORs the rest onto a blob the device saved (fuzz_device_state.cpp): zeros keep it."""
    uart = u8(1) + u32(16) + bytes(range(16)) + u8(3, 5, 0x41, 0x07, 0xC1, 0x03, 0x0B, 0x02, 0xB0, 0x5A) + u16(1) + u8(1)
    cmos = u8(1) + u32(128) + bytes(0x10 + i % 7 for i in range(128)) + u8(0x0B) + u64(-3600) + u64(2030) + u8(7, 15, 10, 20, 30)
    return {"uart-fifo-full": u8(0) + uart, "uart-fresh": u8(0, 1) + u32(16) + bytes(16) + u8(0, 0, 0, 0, 0, 0, 0, 0, 0xB0, 0)
            + u16(0x0C) + u8(0), "cmos-offset-set": u8(1) + cmos,
            "acpi-pm-timer": u8(2, 1) + u16(1) + u16(0x0121) + u16(0x1402) + u64(0x812345) + u64(1 << 24),
            "reset-control": u8(3, 1, 0x0A), "a20-off": u8(4, 1, 0), **more_seeds()}


def more_seeds():
    """fw_cfg with etc/ro (key 0x20) and an 8-byte writable etc/rw (0x21); a 3-vector MSI-X table;
    a virtqueue of at most 64 entries, as fuzz_device_state.cpp builds them."""
    fw_cfg = u8(1) + u16(0x20) + u64(2) + u64(1 << 32) + u16(1) + u16(0x21) + u32(8) + bytes(range(0x10, 0x18))
    entry = u32(0xFEE01000) + u32(0) + u32(0x41)
    msix = u8(1) + u32(48) + b"".join(entry + u32(1) for _ in range(3)) + u64(0b100) + u8(1, 0)
    vq = u8(1) + u16(16) + u64(0x1000) + u64(0x2000) + u64(0x3000) + u8(1, 1, 0) + u16(5) + u16(5)
    return {"fw-cfg-written-file": u8(5) + fw_cfg, "boot-marked": u8(6, 1, 1), "linux-boot-loaded": u8(7, 1, 1, 0),
            "pci-host-saved": u8(8, 1) + bytes(4), "pci-host-cut": u8(8, 3) + bytes(8),
            "msix-pending-masked": u8(9) + msix, "virtqueue-enabled": u8(10) + vq,
            "virtio-blk-saved": u8(11, 1) + bytes(16), "virtio-blk-cut": u8(11, 3) + bytes(300)}
