#!/usr/bin/env python3
"""KVM integration tests: minivmm boots the real SeaBIOS from a disk holding the project's own
test program (tests/guest), which checks serial, INT 13h disk I/O over virtio-blk, the ACPI
tables, and powers off through ACPI S5; plus reset, -no-reboot, -snapshot, -smp and the guest's
boot-complete mark.

usage: test_minivmm_boot.py MINIVMM TEST_GUEST_BIN MKIMAGE_PY"""
import hashlib
import os
import re
import subprocess
import sys

from tests.harness import suite

BIOS = suite.BIOS


def mvg_ok(out, boots=1):
    fails = re.findall(r"MVG: \S+ FAIL.*", out)
    dones = re.findall(r"MVG: DONE pass=(\d+) fail=(\d+)", out)
    return not fails and len(dones) == boots and all(f == "0" and int(p) > 0 for p, f in dones)


def main():
    minivmm, program, mkimage = sys.argv[1:4]
    suite.require_kvm_and_bios()
    s = suite.Suite()
    basic = suite.make_image(mkimage, program, "basic", s.tmp.name)
    reset = suite.make_image(mkimage, program, "reset", s.tmp.name)

    # 1. A plain boot: SeaBIOS banner, then the boot sector's checks, then ACPI power-off (exit 0).
    debuglog = os.path.join(s.tmp.name, "seabios.log")
    r = suite.run([minivmm, "-bios", BIOS, "-debugcon", f"file:{debuglog}", basic])
    s.check("boot: exit status 0 after ACPI S5 power-off", r.returncode == 0, r)
    s.check("boot: SeaBIOS banner on COM1", "SeaBIOS (version" in r.stdout, r)
    s.check("boot: guest checks all pass (serial, INT 13h read/write, RSDP, table checksums)", mvg_ok(r.stdout), r)
    for check in ("serial", "disk-read", "disk-write", "rsdp", "acpi-tables"):
        s.check(f"boot: guest check {check}", re.search(rf"MVG: {check} PASS", r.stdout) is not None, r)
    log = open(debuglog, errors="replace").read() if os.path.exists(debuglog) else ""
    s.check("boot: -debugcon receives SeaBIOS's log", "SeaBIOS (version" in log and "Booting from Hard Disk" in log, log[-2000:])
    s.check("boot: SeaBIOS found the virtio-blk disk", "virtio" in log.lower(), log[-2000:])

    # 2. Reset: the guest resets through 0xCF9, SeaBIOS runs again, the second boot powers off.
    r = suite.run([minivmm, "-bios", BIOS, reset])
    s.check("reset: exit status 0", r.returncode == 0, r)
    s.check("reset: SeaBIOS ran twice", r.stdout.count("SeaBIOS (version") == 2, r)
    s.check("reset: second boot seen by the guest", "MVG: second-boot PASS" in r.stdout, r)
    s.check("reset: both boots pass", mvg_ok(r.stdout, boots=1) and r.stdout.count("MVG: reset-request boot=1") == 1, r)

    # 2b. The other reset methods (mkimage.py --reset-method): the FADT's RESET_REG, port 0x92
    # bit 0, a triple fault (KVM_EXIT_SHUTDOWN). Each must reboot once and then power off.
    for method in ("acpi", "port92", "triple"):
        img = os.path.join(s.tmp.name, f"reset-{method}.img")
        subprocess.run([sys.executable, mkimage, "--program", program, "--out", img, "--mode", "reset",
                        "--reset-method", method], check=True)
        r = suite.run([minivmm, "-bios", BIOS, img])
        s.check(f"reset {method}: exit status 0", r.returncode == 0, r)
        s.check(f"reset {method}: SeaBIOS ran twice", r.stdout.count("SeaBIOS (version") == 2, r)
        s.check(f"reset {method}: the guest used it", f"MVG: info reset method={method}" in r.stdout, r)
        s.check(f"reset {method}: second boot passes", "MVG: second-boot PASS" in r.stdout and mvg_ok(r.stdout), r)

    # 3. -no-reboot: the reset ends the VMM instead.
    fresh = suite.make_image(mkimage, program, "reset", s.tmp.name)
    r = suite.run([minivmm, "-bios", BIOS, "-no-reboot", fresh])
    s.check("no-reboot: exit status 0 at the guest's reset", r.returncode == 0, r)
    s.check("no-reboot: SeaBIOS ran once", r.stdout.count("SeaBIOS (version") == 1 and "reset-request" in r.stdout, r)

    # 4. -snapshot: the guest writes a sector, the image file stays byte-identical.
    before = hashlib.sha256(open(basic, "rb").read()).hexdigest()
    r = suite.run([minivmm, "-bios", BIOS, "-snapshot", basic])
    after = hashlib.sha256(open(basic, "rb").read()).hexdigest()
    s.check("snapshot: guest write succeeded inside the guest", r.returncode == 0 and mvg_ok(r.stdout), r)
    s.check("snapshot: image unchanged", before == after)

    # 5. Two vCPUs: SeaBIOS must find both (it waits for every AP's SIPI response).
    r = suite.run([minivmm, "-bios", BIOS, "-smp", "2", "-m", "256M", "-snapshot",
                     "-debugcon", f"file:{debuglog}", basic])
    log = open(debuglog, errors="replace").read() if os.path.exists(debuglog) else ""
    s.check("smp 2: boots and powers off", r.returncode == 0 and mvg_ok(r.stdout), r)
    s.check("smp 2: SeaBIOS found 2 CPUs", "Found 2 cpu(s)" in log, log[-2000:])

    # 6. The boot-complete mark (devices/boot_marker.hpp): the guest writes 123 to port 0x3F0 before
    # its DONE line; minivmm prints one line with the time since its start, within the run's time.
    marked = os.path.join(s.tmp.name, "marked.img")
    subprocess.run([sys.executable, mkimage, "--program", program, "--out", marked, "--mode", "basic", "--boot-mark"],
                   check=True)
    r = suite.run([minivmm, "-bios", BIOS, "-snapshot", marked])
    times = [(float(a), float(b)) for a, b in re.findall(r"^minivmm: boot-time: ([0-9.]+) ms from start to the guest's "
                                                         r"boot-complete mark, ([0-9.]+) ms after this power-on$",
                                                         r.stderr, re.M)]
    s.check("boot mark: the guest's checks pass", r.returncode == 0 and mvg_ok(r.stdout), r)
    s.check("boot mark: one boot-time line, 0 < since power-on < since start < the run's wall time",
            len(times) == 1 and 0 < times[0][1] < times[0][0] < r.seconds * 1000, r)
    s.check("boot mark: nothing else on stderr", r.stderr.count("\n") == 1, r)
    r = suite.run([minivmm, "-bios", BIOS, "-snapshot", basic])
    s.check("boot mark: none without the guest's mark", "boot-time" not in r.stderr and r.returncode == 0, r)

    s.finish()


if __name__ == "__main__":
    main()
