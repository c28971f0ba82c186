"""Seeds of fuzz_device_state (tests/fuzz/make_seeds.py)."""
from seed_bytes import u8, u16, u32, u64


def seeds():
    """Device state blobs as the devices save them (devices/device_state.hpp): the first byte picks
    the device (0 UART, 1 CMOS, 2 ACPI PM, 3 reset control, 4 A20 gate)."""
    uart = u8(1) + u32(16) + bytes(range(16)) + u8(3, 5, 0x41, 0x07, 0xC1, 0x03, 0x0B, 0x02, 0xB0, 0x5A) + u16(1) + u8(1)
    cmos = u8(1) + u32(128) + bytes(0x10 + i % 7 for i in range(128)) + u8(0x0B) + u64(-3600) + u64(2030) + u8(7, 15, 10, 20, 30)
    return {"uart-fifo-full": u8(0) + uart, "uart-fresh": u8(0, 1) + u32(16) + bytes(16) + u8(0, 0, 0, 0, 0, 0, 0, 0, 0xB0, 0)
            + u16(0x0C) + u8(0), "cmos-offset-set": u8(1) + cmos,
            "acpi-pm-timer": u8(2, 1) + u16(1) + u16(0x0121) + u16(0x1402) + u64(0x812345) + u64(1 << 24),
            "reset-control": u8(3, 1, 0x0A), "a20-off": u8(4, 1, 0)}
