#!/usr/bin/env python3
"""Writes the hand-made seed inputs of the libFuzzer targets into tests/fuzz/corpus/<target>/.

Each seed is a short, meaningful run of the target's input format (see the comment at the top of
each tests/fuzz/fuzz_<target>.cpp): a driver initialising virtio-blk and reading a sector, SeaBIOS
reading a file through fw_cfg DMA, a TIS command round trip, and so on. libFuzzer starts from
them instead of from nothing. Files are named after their content's purpose; re-running the
script rewrites them identically.
Usage: tests/fuzz/make_seeds.py [output-directory]   (default: tests/fuzz/corpus next to it)
"""
import pathlib
import struct
import sys

import seeds_control_request
import seeds_device_state
import seeds_ek_certificate
import seeds_file_digests
import seeds_elf_kernel  # the seed modules beside it (the script's folder is on sys.path)
import seeds_kernel_payload
import seeds_kvm_state
import seeds_pci_virtio_blk
import seeds_snapshot
import seeds_tcg_event_log
import seeds_tpm_device_state
from seed_bytes import u8, u16, u32, u64


# --- fuzz_exit_handler ----------------------------------------------------------------------
EXIT_PORTS = [0x0, 0x60, 0x63, 0x64, 0xFFF8, 0xFFFC, 0xFFFE, 0xFFFF, 0x3F8, 0x3FD, 0x3FF, 0x70, 0x71,
              0x510, 0x511, 0x514, 0x518, 0x51B, 0xCF8, 0xCF9, 0xCFC, 0xCFE, 0xCFF, 0x402]
EXIT_MMIO = [0x0, 0x8, 0xF, 0xFED40000, 0xFED44FF8, 0xFED44FFF, 0xFED3FFFF, 0xFFFFFFFFFFFFF000,
             0xFFFFFFFFFFFFFFF8, 0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFE, 0xFFFFFFFFFFFFEFFF]
IO_SIZE_INDEX = {1: 0, 2: 1, 4: 2}


def io_exit(out, port, size, count, data=b""):
    """An I/O exit with its data at offset 4096 (count 0..4 via the small-count encoding). The
    harness fills the data area from the input for both directions."""
    shape = (1 if out else 0) | IO_SIZE_INDEX[size] << 1
    count_sel = 0x10 + (count - 1) % 4 if count else 0
    data = (data + bytes(size * count))[:min(size * count, 64)]
    return u8(0, shape, EXIT_PORTS.index(port), count_sel, 0) + data


def mmio_exit(addr, length, write, data=0):
    shape = [1, 2, 4, 8].index(length) | (0x08 if write else 0)
    return u8(3, shape, EXIT_MMIO.index(addr)) + u64(data)


def other_exit(index, sub_type=0, suberror=0):
    return u8(5, index, sub_type, suberror)


def exit_handler_seeds():
    return {
        "uart-out-rep": u8(0) + io_exit(True, 0x3F8, 1, 2, b"hi") + io_exit(False, 0x3FD, 1, 1),
        "recorder-rep-in": u8(0) + io_exit(False, 0x60, 1, 4) + io_exit(False, 0x63, 2, 1)
        + io_exit(True, 0xFFFC, 4, 1, b"abcd"),
        "pci-and-fwcfg": u8(1) + io_exit(True, 0xCF8, 4, 1, u32(0x80000800)) + io_exit(False, 0xCFC, 4, 1)
        + io_exit(True, 0x510, 2, 1, u16(0)) + io_exit(False, 0x511, 1, 4),
        "mmio": u8(2) + mmio_exit(0xFED40000, 4, True, 0x12345678) + mmio_exit(0xFED44FF8, 8, False)
        + mmio_exit(0xFFFFFFFFFFFFFFF8, 8, False) + mmio_exit(0x8, 8, True, 1),
        "other-exits": u8(3) + b"".join(other_exit(i, 1 + i % 3, i % 4) for i in range(10)),
        # size 3; 4 GiB of data at 1 TiB; MMIO of length 0; exit_reason overwritten with raw bytes
        "malformed": u8(4, 0) + u8(0, 0x46, 3, 1, 0x10, 0) + b"abc" + u8(0, 0x01, 8, 0xF0) + u32(0xFFFFFFFF)
        + u8(6) + u64(1 << 40) + u8(3, 0x05, 3) + u64(0) + u8(6) + u16(8) + u8(4) + u32(0),
    }


# --- fuzz_fw_cfg ----------------------------------------------------------------------------
FW_GPAS = [0x0, 0x10, 0xFF0, 0xFF8, 0xFFC, 0x1000, 0x17F0, 0x17F8, 0x17FC, 0x1800, 0x2000, 0x3FF8, 0x4000,
           0x40F0, 0x40F8, 0x40FC, 0x4100, 0xFFFFFFFFFFFFF000, 0xFFFFFFFFFFFFFFE0, 0xFFFFFFFFFFFFFFEC,
           0xFFFFFFFFFFFFFFF0, 0xFFFFFFFFFFFFFFF8]
FW_KEYS = [0x0000, 0x0001, 0x0019, 0x0005, 0x000F, 0x8002, 0x8003, 0x000E, 0x4019, 0xC002]


def fw_select(key_index):
    return u8(3, key_index)


def fw_port_reads(n):
    return u8(7, n)


def fw_dma(desc_gpa, control, length_sel, addr_gpa, key_index=None, one_write=False, length_arg=b""):
    """Descriptor at FW_GPAS[desc_gpa]; control bits | optional select key; buffer at FW_GPAS[addr_gpa]."""
    op = 4 | (0x10 if one_write else 0)
    bits = control | (0x20 if key_index is not None else 0)
    out = u8(op, desc_gpa, bits)
    if key_index is not None:
        out += u8(key_index)
    return out + u8(length_sel) + length_arg + u8(addr_gpa)


def fw_cfg_seeds():
    read, skip, select, write = 0x02, 0x04, 0x08, 0x10
    return {
        "signature-and-directory": u8(0x10) + fw_port_reads(4) + fw_select(2) + fw_port_reads(68)
        + u8(0) + u8(4) + u8(0x18) + u8(4),  # read signature register, 4-byte
        "dma-read-e820": u8(0x11) + fw_dma(2, read | select, 2, 5, key_index=10, length_arg=u16(40))
        + fw_dma(3, read, 2, 5, one_write=True, length_arg=u16(0x900)),
        "dma-skip-and-write": u8(0x12) + fw_select(2) + fw_dma(12, skip, 1, 0, length_arg=u8(8))
        + fw_dma(12, read, 1, 13, length_arg=u8(16)) + fw_dma(0, write, 1, 0, length_arg=u8(4)),
        "dma-edges": u8(0x13) + fw_dma(3, read | select, 5, 16, key_index=2) + fw_dma(18, read, 1, 20, length_arg=u8(32))
        + fw_dma(15, read, 4, 0, length_arg=u32(0xFFFFFFFF)) + fw_dma(21, read, 1, 0, length_arg=u8(1)),
        "port-widths": u8(0x14) + b"".join(u8(op, off) for op, off in [(0x00, 0), (0x08, 1), (0x10, 4), (0x18, 8),
                                                                       (0x28, 2), (0x30, 11), (0x20, 0xF3)])
        + u8(2 | 0x08, 0) + u64(0x19) + fw_port_reads(8),
    }


# --- fuzz_cmos ------------------------------------------------------------------------------
def cmos_seeds():
    def index(i):
        return u8(0, i)

    def read():
        return u8(1)

    def write(v):
        return u8(2, v)

    time_regs = [0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x32]
    return {
        "read-clock": u8(0x02) + b"".join(index(r) + read() for r in time_regs + [0x0A, 0x0B, 0x0C, 0x0D]),
        "set-time-bcd": u8(0x02) + u8(5 | 0x40) + u8(0x30, 0x45, 0x13, 0x29, 0x02, 0x24, 0x20) + index(0x07) + read(),
        "set-time-binary-12h": u8(0x22) + u8(5 | 0x80) + u8(59, 59, 0x8C, 31, 12, 99, 99) + u8(4 | 0x10) + u64(86400),
        "nvram-and-ports": u8(0x41) + index(0x40) + write(0xA5) + read() + index(0x8F) + write(0xFE) + read()
        + u8(3 | 0x08) + u8(0x7F, 0x11) + bytes(6) + u8(3 | 0x48) + u8(7),
        "clock-jumps": u8(0x80) + u8(4 | 0x10) + u64(1 << 37) + index(0x32) + read() + u8(4 | 0x18) + index(0)
        + read() + u8(4 | 0x18) + u8(4 | 0x08) + u32(0xFFFFFFFF) + index(0x09) + read(),
    }


# --- fuzz_uart ------------------------------------------------------------------------------
def uart_seeds():
    def wr(offset, value):
        return u8(3) + u8(value) + bytes(7) + u8(offset)  # 1-byte write (size selector 0)

    def rd(offset):
        return u8(0, offset)

    return {
        "driver-init-transmit": u8(0) + u8(6, 0x0C, 0xC7, 0x0B, 0x0F) + wr(0, ord("o")) + wr(0, ord("k")) + rd(2) + rd(5),
        "receive-drain": u8(0) + u8(6, 0x01, 0x01, 0x08, 0x01) + u8(5, 5) + b"hello" + rd(2) + u8(7),
        "loopback": u8(1) + wr(4, 0x1F) + wr(2, 0x01) + wr(0, 0x41) + wr(0, 0x42) + rd(6) + u8(7) + wr(4, 0x08),
        "fifo-overrun": u8(0) + wr(2, 0xC1) + u8(5, 20) + bytes(range(20)) + rd(5) + wr(2, 0x00) + u8(5, 3) + b"xyz"
        + u8(7),
        "wide-accesses": u8(0) + u8(0x03 | 0x10) + u64(0x0300000F80) + u8(0) + u8(0x00 | 0x18) + u8(0)
        + u8(0x00 | 0x10) + u8(6) + u8(0x03 | 0x18) + u64(0xFFFFFFFF) + u8(0xF5),
    }


# --- fuzz_swtpm_protocol ---------------------------------------------------------------------
def swtpm_seeds():
    def ctrl(cmd_index, chunks):
        out = u8(0, cmd_index)
        for c in chunks:
            out += u8(len(c)) + c
        return out

    def reader(shape, chunks, extra=b""):
        out = u8(1, shape) + extra
        for c in chunks:
            out += u16(len(c)) + c
        return out

    rsp = bytes([0x80, 0x01, 0, 0, 0, 12, 0, 0, 0, 0, 0xAA, 0xBB])
    return {
        "ctrl-capability": ctrl(0, [struct.pack(">I", 0), struct.pack(">I", 0x348F)]),
        "ctrl-error-and-sizes": ctrl(1, [struct.pack(">I", 9)]) + ctrl(9, [struct.pack(">IIII", 0, 4096, 128, 4096)[:6],
                                                                             struct.pack(">IIII", 0, 4096, 128, 4096)[6:]]),
        "response-complete": reader(0, [rsp[:3], rsp[3:10], rsp[10:]]) + reader(0x40, [rsp]),
        "response-malformed": reader(1, [bytes([0x80, 0x01, 0, 0, 0, 11, 0, 0, 0, 0])])
        + reader(0x08, [bytes([0, 0xC4, 0, 0, 0, 5, 0, 0, 0, 9])], extra=u16(64)),
        "headers": u8(3, 10) + bytes([0x80, 0x01, 0, 0, 0, 10, 0, 0, 1, 1]) + u16(0x8001) + u32(0x101) + u32(0x2407)
        + u32(0x11) + u8(3),
        # A 10-byte state blob in three CMD_GET_STATEBLOB replies, then a TPM state blob ("MVTS").
        "state-blobs": u8(4) + u32(0) + u32(10) + u32(4) + b"abcd" + u32(0) + u32(6) + u32(4) + b"efgh"
        + u32(0) + u32(2) + u32(2) + b"ij" + u16(33) + b"MVTS" + u8(1, 2) + u32(0) + u32(3) + b"abc"
        + u32(2) + u32(0) + u32(0) + u32(0),
    }


# --- fuzz_tpm_tis ---------------------------------------------------------------------------
def tpm_tis_seeds():
    def command(locality, body):
        return u8(5 | locality << 3, len(body)) + body

    def complete(rsp):
        return u8(4) + u16(len(rsp)) + rsp

    def read(offset, size_sel=2):
        return u8(0 | size_sel << 3) + u16(offset)

    startup = bytes([0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x44, 0, 0])
    ok = bytes([0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0])
    return {
        "command-round-trip": u8(0x20) + command(0, startup) + complete(ok) + read(0x18) + b"".join(read(0x24, 0) for _ in range(10)),
        "localities": u8(0x21) + command(3, startup) + u8(6 | 0x80 | 2 << 3) + complete(ok) + u8(6 | 3 << 3) + read(0x3000)
        + command(1, ok),
        "interface-registers": u8(0x00) + b"".join(read(off) for off in (0x0, 0x8, 0xC, 0x14, 0x18, 0x30, 0xF00))
        + u8(2 | 2 << 3) + u16(0x8) + u64(0xFF) + u8(7),
    }


# --- fuzz_tpm_crb ---------------------------------------------------------------------------
def tpm_crb_seeds():
    startup = bytes([0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x44, 0, 0])
    ok = bytes([0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0])

    def command(body):
        return u8(2, len(body)) + body

    def complete(rsp):
        return u8(3) + u16(len(rsp)) + rsp

    def read(offset, size_sel=2):
        return u8(0 | size_sel << 3) + u16(offset)

    def scribble(at, data):  # the guest writes the buffer's RAM
        return u8(6) + u16(at) + u8(len(data)) + data

    return {
        "command-round-trip": u8(0) + command(startup) + complete(ok) + read(0x4C) + read(0x44)
        + b"".join(read(0x80 + i, 0) for i in range(10)),
        "scribble-while-executing": u8(0) + command(startup) + scribble(0, bytes(12)) + scribble(0x1FF0, b"\xff" * 16)
        + read(0x4C) + complete(ok) + read(0x4C) + read(0x44),
        "buffer-not-in-ram": u8(0x10) + command(startup) + read(0x44) + read(0x5C) + read(0x60),
        "short-command-and-response": u8(3) + command(ok[:6]) + command(startup) + complete(ok[:4]) + read(0x44),
        "registers": u8(8) + b"".join(read(off) for off in (0x0, 0xC, 0x30, 0x34, 0x40, 0x44, 0x58, 0x5C, 0x68))
        + u8(1 | 2 << 3) + u16(0x8) + u64(1) + u8(4) + u8(5 | 0x80),
    }


# --- fuzz_acpi_pm ---------------------------------------------------------------------------
def acpi_pm_seeds():
    SIZE_SEL = {1: 0, 2: 1, 4: 2, 8: 3, 3: 5}

    def rd(offset, size):  # port 0x600 + offset (offsets -4..15)
        return u8(0 | SIZE_SEL[size] << 2, offset + 4)

    def wr(offset, size, value):
        return u8(2 | SIZE_SEL[size] << 2, offset + 4) + u64(value)[:size]

    period = u8(3 | 2 << 2, 0)  # one TMR_STS period (~2.34 s)
    return {
        "linux-probe": u8(0) + rd(0, 2) + rd(2, 2) + rd(4, 2) + b"".join(rd(8, 4) for _ in range(3))
        + u8(3 | 1 << 2) + u32(1000000) + rd(8, 4),
        "tmr-sts": u8(1) + period + rd(0, 2) + wr(0, 2, 0x0001) + rd(0, 2) + period + period + rd(0, 1)
        + wr(1, 1, 0x01) + rd(0, 2) + wr(0, 4, 0x00000001) + rd(0, 4),
        "enables-and-control": u8(0) + wr(2, 2, 0xFFFF) + rd(2, 2) + wr(3, 1, 0) + rd(2, 2) + wr(4, 2, 0x0C07)
        + rd(4, 2) + wr(5, 1, 0x0C) + rd(4, 2),
        "poweroff-s5": u8(0) + wr(4, 2, 0x2000) + rd(4, 2) + wr(5, 1, 0x20) + wr(4, 2, 0x2400),
        "edges-and-clock-end": u8(3) + rd(-4, 8) + rd(6, 2) + rd(10, 4) + rd(11, 1) + wr(10, 4, 0) + wr(-2, 4, 0xFFFF)
        + u8(3 | 3 << 2) + u64(1 << 63) + rd(8, 4) + u8(3 | 3 << 2) + u64(1 << 63) + rd(0, 2),
    }


# --- fuzz_debug_port ------------------------------------------------------------------------
def debug_port_seeds():
    def ch(c):
        return u8(1, c)

    return {
        "seabios-probe-and-log": u8(1) + u8(0, 8) + b"".join(ch(c) for c in b"SeaBIOS (version 1.16)\n"),
        "no-sink": u8(0) + u8(0, 8) + b"".join(ch(c) for c in b"dropped"),
        "wide-and-neighbours": u8(1) + u8(0 | 2 << 2, 8) + u8(0, 7) + u8(0, 9) + u8(1 | 0x80 | 1 << 2, 8) + b"ab"
        + u8(1 | 0x80, 9) + b"x" + u8(3 | 3 << 2) + b"12345678" + u8(3 | 0x80 | 2 << 2),
    }


# --- fuzz_reset_control ---------------------------------------------------------------------
def reset_control_seeds():
    def cf9(offset_from_cf4, size_sel, write=False):
        return u8((1 if write else 0) | size_sel << 3, offset_from_cf4 & 0xF)

    def p92(offset_from_8e, size_sel, write=False):
        return u8((1 if write else 0) | size_sel << 3, 0x80 | offset_from_8e)

    return {
        "seabios-reboot": u8(2 | 0 << 3) + u8(2 | 1 << 3) + cf9(5, 0),  # 0x02 then 0x06, read 0xCF9
        "acpi-reset-reg": u8(2 | 2 << 3) + cf9(5, 0) + u8(3),
        "a20-and-fast-reset": p92(4, 0) + u8(2 | 0x40 | 6 << 3) + p92(4, 0) + u8(2 | 0x40 | 5 << 3) + p92(4, 0)
        + u8(2 | 0x40 | 0x80) + u8(0),
        "pci-config-neighbours": cf9(4, 2, True) + u32(0x80000000) + cf9(8, 2) + cf9(5, 1) + cf9(5, 0, True) + u8(0x0E)
        + cf9(4, 3) + cf9(3, 1) + cf9(11, 3, True) + u64(0) + p92(3, 1) + p92(4, 1, True) + u16(0x0101),
    }


# --- fuzz_disk_overlay ----------------------------------------------------------------------
def disk_overlay_seeds():
    def at(v):  # pick_offset case 4: v % (size + 1)
        return u8(4, 0) + u16(v)

    def block(k, delta=0):  # block boundary k, plus -128..127
        return u8(1 | k << 3, delta)

    def end(delta=0):
        return u8(2, delta)

    def top(delta=0):  # 2^64 - 1 + delta
        return u8(3, delta)

    def small(n):
        return u8(n << 2)

    def sectors(k):
        return u8(1 | k << 2)

    def any_len(n):
        return u8(3) + u16(n)

    def rd(off, ln):
        return u8(0) + off + ln

    def wr(off, ln, data=b""):
        return u8(2) + off + ln + data

    flush = u8(3) + at(0) + small(0)
    return {
        "sector-write-read": u8(2) + wr(at(512), sectors(1), bytes(range(256)) * 2) + rd(at(0), sectors(8)) + flush
        + rd(at(512), sectors(1)),
        "straddle-blocks": u8(3) + wr(block(1, -4), small(8), b"ABCDEFGH") + rd(block(1, -8), small(16))
        + wr(block(3, -100), any_len(9000)) + rd(block(2), any_len(12288)),
        "partial-last-block": u8(2) + wr(end(-8), small(8), b"lastbyte") + rd(end(-16), small(16)) + wr(end(-7), small(8))
        + rd(end(0), small(0)) + rd(end(1), small(0)),
        "out-of-range": u8(0) + wr(top(0), small(1), b"x") + rd(top(-7), small(8)) + wr(end(0), small(1), b"y")
        + rd(u8(5, 0) + u64(1 << 63), sectors(1)) + rd(at(0), sectors(1)),
    }


# --- fuzz_tis_libtpms -----------------------------------------------------------------------
def tis_libtpms_seeds():
    def trip(locality, template, extra=b"", patch=None):  # templates: 0 Startup, 1 GetRandom(n),
        op = 3 | locality << 3 | (0x80 if patch else 0)  # 2 PCR_Read, 3 GetCapability, 4 SelfTest, 5 raw
        out = u8(op, template) + extra
        return out + (u8(*patch) if patch else b"")

    def rd(offset, size_sel=2):
        return u8(0 | size_sel << 3) + u16(offset)

    raw_startup = bytes([0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x44, 0, 0])
    return {
        "boot-sequence": u8(0) + trip(0, 0) + trip(0, 4) + trip(0, 1, u8(32)) + trip(0, 2) + trip(0, 3) + rd(0x18),
        "startup-twice-and-reset": u8(1) + trip(0, 0) + trip(0, 0) + u8(7) + trip(0, 0) + trip(2, 1, u8(80)),
        "before-startup-and-patched": u8(0) + trip(0, 2) + trip(0, 0, patch=(11, 1)) + trip(1, 5, u8(len(raw_startup))
                                                                                             + raw_startup),
        "established-and-localities": u8(1) + trip(3, 0) + u8(6 | 3 << 3) + rd(0x3000, 0) + u8(5 | 3 << 3) + u8(5 | 0x40)
        + rd(0x0000, 0) + u8(4 | 1 << 3, 1, 8) + u8(5 | 0x80 | 1 << 3) + u8(2),
    }


TARGETS = {
    "exit_handler": exit_handler_seeds,
    "fw_cfg": fw_cfg_seeds,
    "cmos": cmos_seeds,
    "uart": uart_seeds,
    "device_state": seeds_device_state.seeds,
    "pci_virtio_blk": seeds_pci_virtio_blk.seeds,
    "swtpm_protocol": swtpm_seeds,
    "tpm_tis": tpm_tis_seeds,
    "tpm_crb": tpm_crb_seeds,
    "acpi_pm": acpi_pm_seeds,
    "debug_port": debug_port_seeds,
    "reset_control": reset_control_seeds,
    "disk_overlay": disk_overlay_seeds,
    "tis_libtpms": tis_libtpms_seeds,
    "tcg_event_log": seeds_tcg_event_log.seeds,
    "elf_kernel": seeds_elf_kernel.seeds,
    "kernel_payload": seeds_kernel_payload.seeds,
    "file_digests": seeds_file_digests.seeds,
    "ek_certificate": seeds_ek_certificate.seeds,
    "snapshot": seeds_snapshot.seeds,
    "control_request": seeds_control_request.seeds,
    "kvm_state": seeds_kvm_state.seeds,
    "tpm_device_state": seeds_tpm_device_state.seeds,
}


def main():
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent / "corpus"
    for target, make in TARGETS.items():
        directory = out / target
        directory.mkdir(parents=True, exist_ok=True)
        seeds = make()
        for name, data in seeds.items():
            (directory / name).write_bytes(data)
        print(f"{directory}: {len(seeds)} seeds")


if __name__ == "__main__":
    main()
