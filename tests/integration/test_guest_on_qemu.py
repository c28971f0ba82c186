#!/usr/bin/env python3
"""Boots the guest test program (tests/guest) under QEMU TCG and checks its MVG lines.

This validates the test program itself on a reference machine (QEMU pc: ACPI with \\_S5 and
PM1a_CNT at 0x604, reset via 0xCF9); minivmm's integration tests boot the same images.
Cases:
  basic      one boot, every check PASS, DONE fail=0, QEMU exits by itself (ACPI S5)
  reset      boot 1 ends with a 0xCF9 reset, boot 2 reports second-boot PASS and powers off
  reset-acpi, reset-port92, reset-triple
             the same with mkimage.py --reset-method: the FADT's RESET_REG (on -M q35, whose
             revision 3 FADT has RESET_REG 0xCF9/0x0F), port 0x92 bit 0, a triple fault
  reset-acpi-fadt-rev1
             (negative) --reset-method acpi on QEMU pc, whose revision 1 FADT has no
             RESET_REG: boot 1 must report reset FAIL before any reset request and halt
  no-acpi    (negative) QEMU pc,acpi=off: rsdp/acpi-tables/poweroff must FAIL, guest halts
  truncated  (negative) program sectors zeroed: the MBR must report disk-read FAIL and halt
After the runs the image is read back: boot counter and the disk-write scratch pattern.
Exit status: 0 all passed, 1 failures, 77 (meson "skip") without qemu-system-x86_64.
"""
import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile

from tests.harness.qemu import run_qemu

SECTOR = 512
REQUIRED_CHECKS = ["serial", "config", "disk-read", "disk-write", "rsdp", "acpi-tables"]


def split_boots(lines):
    """Groups MVG lines per boot; every boot starts with its "serial" line."""
    boots = []
    for line in lines:
        if line.startswith("serial ") or not boots:
            boots.append([])
        boots[-1].append(line)
    return boots


def results(boot):
    """{name: [(PASS|FAIL, detail)]} of one boot's result lines."""
    out = {}
    for line in boot:
        parts = line.split(" ", 2)
        if len(parts) >= 2 and parts[1] in ("PASS", "FAIL"):
            out.setdefault(parts[0], []).append((parts[1], parts[2] if len(parts) > 2 else ""))
    return out


def done_counts(boot):
    for line in boot:
        if line.startswith("DONE "):
            fields = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
            return int(fields.get("pass", -1)), int(fields.get("fail", -1))
    return None


def check_boot_all_pass(boot, extra_checks=(), expect_done=True):
    problems = []
    res = results(boot)
    for name in REQUIRED_CHECKS + list(extra_checks):
        got = res.get(name)
        if not got:
            problems.append(f"no result line for {name}")
        elif got != [("PASS", got[0][1])]:
            problems.append(f"{name}: {got}")
    for name, got in res.items():
        for status, detail in got:
            if status != "PASS":
                problems.append(f"FAIL line: {name} {detail}")
    done = done_counts(boot)
    passes = sum(1 for got in res.values() for status, _ in got if status == "PASS")
    if expect_done:
        if done is None:
            problems.append("no DONE line")
        elif done != (passes, 0):
            problems.append(f"DONE pass={done[0]} fail={done[1]}, expected pass={passes} fail=0")
    elif done is not None:
        problems.append("DONE line on a boot that should have reset")
    return problems


def check_image(image, boot_count):
    """Boot counter in the config sector and the disk-write pattern (see check_disk.c)."""
    problems = []
    with open(image, "rb") as f:
        data = f.read(128 * SECTOR)
    magic, _mode, count, scratch_lba, _n, _p = struct.unpack_from("<8sIIIII", data, 63 * SECTOR)
    if magic != b"MVGCONF1" or count != boot_count:
        problems.append(f"config sector: magic={magic!r} boot_count={count}, expected {boot_count}")
        return problems
    scratch = data[scratch_lba * SECTOR:(scratch_lba + 2) * SECTOR]
    head, boot, nonce, lba = struct.unpack_from("<8sIII", scratch)
    if head != b"MVGSCRAT" or boot != boot_count or lba != scratch_lba:
        problems.append(f"scratch header: {head!r} boot={boot} lba={lba}")
        return problems
    bad = [i for i in range(20, len(scratch)) if scratch[i] != (i * 7 + nonce + boot) & 0xFF]
    if bad:
        problems.append(f"scratch pattern differs at byte {bad[0]} ({len(bad)} bytes)")
    return problems


def outcome_problems(run, want_exit):
    if want_exit:
        if not run.exited:
            return [f"QEMU still running after {run.elapsed:.0f} s (guest did not power off)"]
        if run.returncode != 0:
            return [f"QEMU exit status {run.returncode}"]
    return []


class Suite:
    """The cases of one test program: counts, timings and the PASS/FAIL lines (shared with the TPM suite)."""

    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        self.passed = 0
        self.failed = 0
        self.times = []

    def image(self, name, mode, reset_method=None):
        path = os.path.join(self.workdir, f"{name}.img")
        extra = ["--reset-method", reset_method] if reset_method else []
        subprocess.run([sys.executable, self.args.mkimage, "--program", self.args.program, "--out", path,
                        "--mode", mode, *extra], check=True)
        return path

    def status(self):
        """Prints the totals; exit status 1 if a case failed or none ran (as tests.harness.suite.Suite.finish)."""
        print(f"{self.passed} passed, {self.failed} failed")
        if self.passed + self.failed == 0:
            print("FAIL no case ran")
        return 1 if self.failed or self.passed == 0 else 0

    def report(self, name, run, problems):
        lines = run.mvg_lines()
        if problems or self.args.verbose:
            for line in lines:
                print(f"    | {line}")
            if problems and not lines:
                print(f"    | raw: {run.raw[-800:].decode('latin-1')!r}")
        self.times.append((name, run.elapsed))
        if problems:
            self.failed += 1
            print(f"FAIL {name} ({run.elapsed:.2f} s)")
            for p in problems:
                print(f"    - {p}")
        else:
            self.passed += 1
            print(f"PASS {name} ({run.elapsed:.2f} s, {len(lines)} MVG lines)")

    def case_basic(self):
        img = self.image("basic", "basic")
        run = run_qemu(self.args.qemu, img, self.args.timeout)
        boots = split_boots(run.mvg_lines())
        problems = outcome_problems(run, want_exit=True)
        if len(boots) != 1:
            problems.append(f"{len(boots)} boots, expected 1")
        if boots:
            problems += check_boot_all_pass(boots[0])
        problems += check_image(img, 1)
        self.report("basic", run, problems)

    def case_reset(self, method=None, machine="pc"):
        name = f"reset-{method}" if method else "reset"
        img = self.image(name, "reset", method)
        run = run_qemu(self.args.qemu, img, self.args.timeout, reboot=True, machine=machine)
        boots = split_boots(run.mvg_lines())
        problems = outcome_problems(run, want_exit=True)
        if len(boots) != 2:
            problems.append(f"{len(boots)} boots, expected 2")
        if boots:
            problems += [f"boot 1: {p}" for p in check_boot_all_pass(boots[0], expect_done=False)]
            if boots[0][-1] != "reset-request boot=1":
                problems.append(f"boot 1 ends with {boots[0][-1]!r}, expected 'reset-request boot=1'")
            want = f"info reset method={method or 'cf9'}"
            if want not in boots[0]:
                problems.append(f"boot 1 has no {want!r} line")
        if len(boots) >= 2:
            problems += [f"boot 2: {p}" for p in check_boot_all_pass(boots[1], extra_checks=["second-boot"])]
        problems += check_image(img, 2)
        self.report(f"{name} (-M {machine})" if method else name, run, problems)

    def case_reset_acpi_fadt_rev1(self):
        img = self.image("reset-acpi-rev1", "reset", "acpi")
        run = run_qemu(self.args.qemu, img, self.args.timeout, reboot=True,
                       stop_when=lambda lines: any(l.startswith("DONE ") for l in lines))
        boots = split_boots(run.mvg_lines())
        problems = []
        if len(boots) != 1:
            problems.append(f"{len(boots)} boots, expected 1 (no reset without RESET_REG)")
        res = results(boots[0]) if boots else {}
        if res.get("reset") != [("FAIL", "FADT revision below 2 has no RESET_REG")]:
            problems.append(f"reset: expected FAIL 'FADT revision below 2 has no RESET_REG', got {res.get('reset')}")
        if boots and any(l.startswith("reset-request") for l in boots[0]):
            problems.append("reset-request printed although the method is unusable")
        done = done_counts(boots[0]) if boots else None
        if done is None or done[1] != 1:
            problems.append(f"DONE {done}, expected fail=1")
        problems += check_image(img, 1)
        self.report("reset-acpi-fadt-rev1 (negative)", run, problems)

    def case_no_acpi(self):
        img = self.image("noacpi", "basic")
        run = run_qemu(self.args.qemu, img, self.args.timeout, machine="pc,acpi=off",
                       stop_when=lambda lines: any(l.startswith("DONE ") for l in lines))
        boots = split_boots(run.mvg_lines())
        problems = []
        res = results(boots[0]) if boots else {}
        for name in ("rsdp", "acpi-tables", "poweroff"):
            if [s for s, _ in res.get(name, [])] != ["FAIL"]:
                problems.append(f"{name}: expected one FAIL, got {res.get(name)}")
        for name in ("serial", "config", "disk-read", "disk-write"):
            if [s for s, _ in res.get(name, [])] != ["PASS"]:
                problems.append(f"{name}: expected PASS, got {res.get(name)}")
        done = done_counts(boots[0]) if boots else None
        if done != (4, 3):
            problems.append(f"DONE {done}, expected pass=4 fail=3")
        self.report("no-acpi (negative)", run, problems)

    def case_truncated(self):
        img = self.image("truncated", "basic")
        with open(self.args.program, "rb") as f:
            sectors = len(f.read()) // SECTOR
        with open(img, "r+b") as f:
            f.seek(SECTOR)
            f.write(bytes((sectors - 1) * SECTOR))
        run = run_qemu(self.args.qemu, img, self.args.timeout,
                       stop_when=lambda lines: any(" FAIL " in l for l in lines))
        lines = run.mvg_lines()
        problems = []
        if not lines or not lines[0].startswith("disk-read FAIL"):
            problems.append(f"expected 'disk-read FAIL' from the MBR, got {lines[:3]}")
        if run.timed_out:
            problems.append("no output before the timeout")
        self.report("truncated (negative)", run, problems)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--program", required=True, help="test_guest.bin")
    parser.add_argument("--mkimage", default=os.path.join(here, "..", "guest", "mkimage.py"))
    parser.add_argument("--qemu", default="qemu-system-x86_64")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per QEMU run")
    parser.add_argument("--keep", metavar="DIR", help="write the images to DIR and keep them")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every MVG line")
    args = parser.parse_args()

    qemu = shutil.which(args.qemu)
    if not qemu:
        print(f"SKIP: {args.qemu} not found")
        return 77
    args.qemu = qemu
    if not os.path.isfile(args.program):
        print(f"FAIL: program {args.program} not found")
        return 1

    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        workdir, cleanup = args.keep, None
    else:
        cleanup = tempfile.TemporaryDirectory(prefix="mvg-")
        workdir = cleanup.name
    try:
        suite = Suite(args, workdir)
        suite.case_basic()
        suite.case_reset()
        suite.case_reset("acpi", machine="q35")
        suite.case_reset("port92")
        suite.case_reset("triple")
        suite.case_reset_acpi_fadt_rev1()
        suite.case_no_acpi()
        suite.case_truncated()
    finally:
        if cleanup:
            cleanup.cleanup()
    return suite.status()


if __name__ == "__main__":
    sys.exit(main())
