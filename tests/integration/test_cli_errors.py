#!/usr/bin/env python3
"""Bad input gives one clear line naming the problem and the documented exit status, never a
crash or a half-started VM. Needs no KVM for most cases (errors are caught before KVM set-up).

usage: test_cli_errors.py MINIVMM"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmmtest  # noqa: E402

BIOS = "/usr/share/seabios/bios-256k.bin"


def main():
    minivmm = sys.argv[1]
    s = vmmtest.Suite()
    disk = os.path.join(s.tmp.name, "disk.img")
    with open(disk, "wb") as f:
        f.write(b"\0" * 1024 * 1024)
    odd = os.path.join(s.tmp.name, "odd.img")
    with open(odd, "wb") as f:
        f.write(b"\0" * 1000)
    bad_bios = os.path.join(s.tmp.name, "bios.bin")
    with open(bad_bios, "wb") as f:
        f.write(b"\0" * 1000)

    cases = [
        ("no arguments", [], 2, "no disk image"),
        ("unknown option", ["-frob", disk], 2, "unknown option -frob"),
        ("bad -m", ["-m", "lots", disk], 2, "-m"),
        ("-m too small", ["-m", "8M", disk], 2, "out of range"),
        ("bad -smp", ["-smp", "0", disk], 2, "-smp"),
        ("bad -serial", ["-serial", "pty", disk], 2, "-serial"),
        ("missing option value", [disk, "-bios"], 2, "needs a value"),
        ("missing disk", [os.path.join(s.tmp.name, "nope.img")], 3, "nope.img"),
        ("disk is a directory", [s.tmp.name], 3, s.tmp.name),
        ("disk size not a multiple of 512", [odd], 3, "512"),
        ("missing BIOS", ["-bios", "/nonexistent/bios.bin", disk], 3, "/nonexistent/bios.bin"),
        ("BIOS of a bad size", ["-bios", bad_bios, disk], 3, "64 KiB"),
        ("unwritable serial file", ["-serial", "file:/nonexistent/dir/s.log", disk], 3, "/nonexistent/dir/s.log"),
    ]
    for name, args, code, text in cases:
        r = vmmtest.run([minivmm] + args, timeout=30)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        ok = (r.returncode == code and len(lines) == 1 and text in lines[0] and lines[0].startswith("minivmm: error:"))
        s.check(f"{name}: exit {code}, one line naming the problem", ok, r)

    r = vmmtest.run([minivmm, "--help"], timeout=30)
    s.check("--help exits 0 and documents options", r.returncode == 0 and "-no-reboot" in r.stdout, r)
    r = vmmtest.run([minivmm, "--version"], timeout=30)
    s.check("--version", r.returncode == 0 and r.stdout.startswith("minivmm "), r)
    s.finish()


if __name__ == "__main__":
    main()
