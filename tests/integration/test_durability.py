#!/usr/bin/env python3
"""Disk durability on KVM: what the guest wrote is in the image file even when minivmm is
SIGKILLed right after the write, -snapshot never touches the file even when killed, and an image
minivmm cannot write is given to the guest read-only: the guest's writes fail inside the guest,
the VM keeps running and powers off (exit 0), the file stays unchanged.

(-snapshot with a clean power-off leaving the image byte-identical is test_minivmm_boot.py,
case 4; that virtio-blk offers VIRTIO_BLK_F_RO and fails writes for a read-only backend is the
unit test "virtio-blk read-only backend" in tests/unit/test_virtio_blk.cpp.)

usage: test_durability.py MINIVMM TEST_GUEST_BIN MKIMAGE_PY"""
import hashlib
import importlib.util
import os
import re
import shutil
import signal
import struct
import subprocess
import sys

from tests.harness import suite, vmm

BIOS = suite.BIOS
SECTOR = 512
DISK_WRITE = re.compile(rb"MVG: disk-write PASS lba=(\d+) sectors=(\d+) boot=(\d+) nonce=0x([0-9a-fA-F]+)\r?\n")


def load_mkimage(path):
    spec = importlib.util.spec_from_file_location("mkimage", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scratch_pattern(boot, nonce, lba, length=2 * SECTOR):
    """tests/guest/check_disk.c check_disk_write: byte i = (i*7 + nonce + boot) & 0xFF, then
    "MVGSCRAT", u32 boot, u32 nonce, u32 LBA over the first 20 bytes (little-endian)."""
    data = bytearray((i * 7 + nonce + boot) & 0xFF for i in range(length))
    data[0:20] = b"MVGSCRAT" + struct.pack("<III", boot, nonce, lba)
    return bytes(data)


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def run_until(cmd, pattern, timeout=120):
    """Starts cmd, reads its stdout until `pattern` matches, then SIGKILLs it at once. Returns
    (match or None, stdout bytes, exit status)."""
    def kill_at_match(out, proc):
        if pattern.search(out) and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)

    r = vmm.run(cmd, timeout, on_output=kill_at_match, stderr=subprocess.DEVNULL)
    out = r.text.encode("latin-1")
    return pattern.search(out), out, r.returncode


def read_sectors(path, lba, count):
    with open(path, "rb") as f:
        f.seek(lba * SECTOR)
        return f.read(count * SECTOR)


class ReadOnly:
    """Makes `path` unwritable even for root, two ways: a read-only bind mount in a private mount
    namespace around the command (open(O_RDWR) fails with EROFS), or the ext2/3/4 immutable
    attribute (EPERM). Root ignores file modes, and /dev/kvm is root-only here, so running
    minivmm as another user is not an option."""

    @staticmethod
    def bind_mount_works(path):
        r = subprocess.run(["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0" && ! (: >> "$0") 2>/dev/null',
                            path], capture_output=True)
        return r.returncode == 0

    @staticmethod
    def bind_mount_cmd(path, cmd):
        return ["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', path] + cmd

    @staticmethod
    def chattr(path, on):
        if not shutil.which("chattr"):
            return False
        return subprocess.run(["chattr", "+i" if on else "-i", path], capture_output=True).returncode == 0


def check_read_only_run(s, label, r, img, before):
    s.check(f"{label}: minivmm runs and powers off with exit 0", r.returncode == 0, r)
    s.check(f"{label}: minivmm warns that the image is not writable",
            re.search(r"minivmm: warning: disk image .* is not writable", r.stderr) is not None, r.stderr)
    s.check(f"{label}: the guest's disk-write fails inside the guest (INT 13h AH=43h error)",
            re.search(r"MVG: disk-write FAIL AH=43h LBA 64 error 0x[0-9A-F]+", r.stdout) is not None, r)
    s.check(f"{label}: so does the boot-counter write (config)",
            re.search(r"MVG: config FAIL writing boot counter", r.stdout) is not None, r)
    fails = re.findall(r"MVG: (\S+) FAIL", r.stdout)
    s.check(f"{label}: reads still work: only those two checks fail, DONE reached",
            sorted(fails) == ["config", "disk-write"] and "MVG: disk-read PASS" in r.stdout
            and re.search(r"MVG: DONE pass=\d+ fail=2", r.stdout) is not None, r)
    s.check(f"{label}: the image is byte-identical", sha256(img) == before)


def main():
    minivmm, program, mkimage_path = sys.argv[1:4]
    suite.require_kvm_and_bios()
    mkimage = load_mkimage(mkimage_path)
    s = suite.Suite()

    # 1. SIGKILL right after the guest's write: the sectors are in the file. Twice on one image,
    # so the second run also proves the first run's boot counter (LBA 63) survived the kill.
    img = suite.make_image(mkimage_path, program, "basic", s.tmp.name)
    nonces = []
    for boot in (1, 2):
        m, out, status = run_until([minivmm, "-bios", BIOS, img], DISK_WRITE)
        text = out.decode(errors="replace")
        if not s.check(f"kill run {boot}: disk-write PASS seen, minivmm SIGKILLed",
                       m is not None and status == -signal.SIGKILL, f"exit {status}\n{text[-3000:]}"):
            continue
        lba, sectors, seen_boot, nonce = int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4), 16)
        nonces.append(nonce)
        s.check(f"kill run {boot}: guest reports LBA 64, 2 sectors, boot {boot}",
                (lba, sectors, seen_boot) == (64, 2, boot), m.group(0))
        got = read_sectors(img, lba, sectors)
        want = scratch_pattern(seen_boot, nonce, lba, sectors * SECTOR)
        first_bad = next((i for i in range(len(want)) if got[i] != want[i]), None)
        s.check(f"kill run {boot}: LBA {lba}-{lba + sectors - 1} in the image hold the pattern (nonce 0x{nonce:x})",
                got == want, f"first difference at byte {first_bad}: {got[first_bad:first_bad + 16].hex() if first_bad is not None else ''}")
        cfg = mkimage.read_config(img)
        s.check(f"kill run {boot}: boot counter in LBA 63 is {boot}", cfg["boot_count"] == boot, cfg)
    s.check("kill runs: the two boots used different nonces", len(nonces) == 2 and nonces[0] != nonces[1], nonces)

    # 2. -snapshot killed after the guest's write: nothing reached the file (no flush-at-exit path).
    snap = os.path.join(s.tmp.name, "snapshot.img")
    mkimage.make_image(program, snap, "basic", 8 << 20)
    before = sha256(snap)
    m, out, status = run_until([minivmm, "-bios", BIOS, "-snapshot", snap], DISK_WRITE)
    s.check("snapshot killed: the guest's write succeeded inside the guest", m is not None,
            out.decode(errors="replace")[-3000:])
    s.check("snapshot killed: the image is byte-identical", sha256(snap) == before)

    # 3. Read-only image: the guest gets a read-only disk, writes fail in the guest, minivmm lives.
    ro = os.path.join(s.tmp.name, "ro.img")
    mkimage.make_image(program, ro, "basic", 8 << 20)
    before = sha256(ro)
    methods = 0
    if ReadOnly.bind_mount_works(ro):
        methods += 1
        r = suite.run(ReadOnly.bind_mount_cmd(ro, [minivmm, "-bios", BIOS, ro]))
        check_read_only_run(s, "read-only bind mount (EROFS)", r, ro, before)
    else:
        print("SKIP read-only bind mount: unshare -m / mount --bind -o ro not permitted here")
    if ReadOnly.chattr(ro, True):
        methods += 1
        try:
            r = suite.run([minivmm, "-bios", BIOS, ro])
        finally:
            ReadOnly.chattr(ro, False)
        check_read_only_run(s, "immutable file (EPERM)", r, ro, before)
    else:
        print("SKIP immutable file: chattr +i not supported here")
    s.check("read-only: at least one way to make the image unwritable worked", methods > 0)
    s.finish()


if __name__ == "__main__":
    main()
