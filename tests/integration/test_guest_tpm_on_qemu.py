#!/usr/bin/env python3
"""Boots the guest test program's TPM checks (tests/guest, mkimage.py --tpm) under QEMU TCG with
a real swtpm, the reference that minivmm's TPM TIS and ACPI tables copy:

  swtpm socket --tpmstate dir=D --ctrl type=unixio,path=D/sock [--tpm2]
  qemu-system-x86_64 -accel tcg -M pc ... -chardev socket,id=chrtpm,path=D/sock
      -tpmdev emulator,id=tpm0,chardev=chrtpm -device tpm-tis,tpmdev=tpm0

Cases:
  tpm2-basic, tpm12-basic   one boot: every check PASS (tpm-acpi, tpm-tis-regs, tpm-cmd,
                            tpm-eventlog included), DONE fail=0, QEMU exits by itself
  tpm2-reset, tpm12-reset   two boots (0xCF9 reset): both pass; boot 2's event log holds only
                            its own events and replays to the TPM's PCRs (they started over)
  tpm20-crb-reset           the same with QEMU's -device tpm-crb and --tpm 2.0-crb: the program's
                            CRB driver and tpm-crb-regs checks against QEMU's CRB (tpm-tis-regs
                            does not run)
  none-basic                QEMU without a TPM, --tpm none: tpm-acpi and tpm-tis-regs PASS
  tpm2-image-no-tpm         (negative) --tpm 2.0 on QEMU without a TPM: all four TPM checks FAIL
  none-image-tpm2           (negative) --tpm none on QEMU with a TPM 2.0: tpm-acpi, tpm-tis-regs FAIL
Prints one line per case with its QEMU wall time, then "N passed, N failed".
Exit status: 0 all passed, 1 failures, 77 (meson "skip") without qemu-system-x86_64 or swtpm.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

from tests.integration.test_guest_on_qemu import (check_boot_all_pass, check_image, done_counts,
                                                  outcome_problems, results, split_boots)
from tests.integration import test_guest_on_qemu as guest_on_qemu
from tests.harness.qemu import qemu_env
from tests.harness.qemu import run_qemu as guest_on_qemu_run
from tests.harness.swtpm import Swtpm

TPM_CHECKS = ["tpm-acpi", "tpm-tis-regs", "tpm-cmd", "tpm-eventlog"]
CRB_CHECKS = ["tpm-acpi", "tpm-crb-regs", "tpm-cmd", "tpm-eventlog"]
NO_TPM_CHECKS = ["tpm-acpi", "tpm-tis-regs"]


def run_qemu(qemu, image, timeout, extra_args, reboot=False):
    return guest_on_qemu_run(qemu, image, timeout, reboot=reboot, extra_args=extra_args, env=qemu_env())


def expect_status(boot, names, status):
    """Each of names has exactly one result line, with the given status."""
    res = results(boot)
    return [f"{n}: expected one {status}, got {res.get(n)}" for n in names
            if [s for s, _ in res.get(n, [])] != [status]]


def eventlog_detail(boot):
    got = results(boot).get("tpm-eventlog") or [("", "")]
    return got[0][1]


class Suite(guest_on_qemu.Suite):
    def image(self, name, mode, tpm):
        path = os.path.join(self.workdir, f"{name}.img")
        subprocess.run([sys.executable, self.args.mkimage, "--program", self.args.program, "--out", path,
                        "--mode", mode, "--tpm", tpm], check=True)
        return path

    def boot(self, name, mode, tpm_image, tpm_device, reboot=False):
        """Makes the image, starts swtpm (tpm_device "2.0"/"1.2"; "2.0-crb": TPM 2.0 behind QEMU's
        tpm-crb) or none, runs QEMU."""
        img = self.image(name, mode, tpm_image)
        swtpm = None
        extra = []
        if tpm_device:
            state = os.path.join(self.workdir, f"{name}.tpm")
            os.makedirs(state)
            swtpm = Swtpm(state, tpm_device.startswith("2.0"), sock_name="sock", binary=self.args.swtpm,
                          output="log")
            extra = swtpm.qemu_args("tpm-crb" if tpm_device.endswith("-crb") else "tpm-tis")
        try:
            run = run_qemu(self.args.qemu, img, self.args.timeout, extra, reboot=reboot)
        finally:
            if swtpm:
                swtpm.close()
        if swtpm and (self.args.verbose or run.returncode not in (0, None)):
            print(f"    swtpm: {swtpm.output_tail()}")
        return img, run

    def case_basic(self, version):
        name = f"tpm{version.replace('.', '')}-basic"
        img, run = self.boot(name, "basic", version, version)
        boots = split_boots(run.mvg_lines())
        problems = outcome_problems(run, want_exit=True)
        if len(boots) != 1:
            problems.append(f"{len(boots)} boots, expected 1")
        if boots:
            problems += check_boot_all_pass(boots[0], extra_checks=TPM_CHECKS)
        problems += check_image(img, 1)
        self.report(name, run, problems)

    def case_reset(self, version):
        name = f"tpm{version.replace('.', '')}-reset"
        checks = CRB_CHECKS if version.endswith("-crb") else TPM_CHECKS
        img, run = self.boot(name, "reset", version, version, reboot=True)
        boots = split_boots(run.mvg_lines())
        problems = outcome_problems(run, want_exit=True)
        if len(boots) != 2:
            problems.append(f"{len(boots)} boots, expected 2")
        if boots:
            problems += [f"boot 1: {p}" for p in check_boot_all_pass(boots[0], checks, expect_done=False)]
            if boots[0][-1] != "reset-request boot=1":
                problems.append(f"boot 1 ends with {boots[0][-1]!r}, expected 'reset-request boot=1'")
        if len(boots) >= 2:
            problems += [f"boot 2: {p}" for p in check_boot_all_pass(boots[1], checks + ["second-boot"])]
            # SeaBIOS measures the same things on every boot: a log holding only boot 2's events
            # (the TPM was reset) has boot 1's event count and replays to the same PCR values.
            first, second = eventlog_detail(boots[0]), eventlog_detail(boots[1])
            if first != second:
                problems.append(f"tpm-eventlog differs between boots: {first!r} / {second!r}")
        problems += check_image(img, 2)
        self.report(name, run, problems)

    def case_none(self):
        img, run = self.boot("none-basic", "basic", "none", None)
        boots = split_boots(run.mvg_lines())
        problems = outcome_problems(run, want_exit=True)
        if len(boots) != 1:
            problems.append(f"{len(boots)} boots, expected 1")
        if boots:
            problems += check_boot_all_pass(boots[0], extra_checks=NO_TPM_CHECKS)
            problems += [f"unexpected {n} line" for n in ("tpm-cmd", "tpm-eventlog") if n in results(boots[0])]
        problems += check_image(img, 1)
        self.report("none-basic", run, problems)

    def case_negative(self, name, tpm_image, tpm_device, failing):
        _, run = self.boot(name, "basic", tpm_image, tpm_device)
        boots = split_boots(run.mvg_lines())
        problems = []
        if len(boots) != 1:
            problems.append(f"{len(boots)} boots, expected 1")
        else:
            problems += expect_status(boots[0], failing, "FAIL")
            problems += expect_status(boots[0], ["serial", "config", "disk-read", "disk-write", "rsdp",
                                                 "acpi-tables"], "PASS")
            done = done_counts(boots[0])
            if done is None or done[1] != len(failing):
                problems.append(f"DONE {done}, expected fail={len(failing)}")
        self.report(f"{name} (negative)", run, problems)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--program", required=True, help="test_guest.bin")
    parser.add_argument("--mkimage", default=os.path.join(here, "..", "guest", "mkimage.py"))
    parser.add_argument("--qemu", default="qemu-system-x86_64")
    parser.add_argument("--swtpm", default="swtpm")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per QEMU run")
    parser.add_argument("--keep", metavar="DIR", help="write images and TPM state to DIR and keep them")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every MVG line")
    args = parser.parse_args()

    for tool in ("qemu", "swtpm"):
        path = shutil.which(getattr(args, tool))
        if not path:
            print(f"SKIP: {getattr(args, tool)} not found")
            return 77
        setattr(args, tool, path)
    helptext = subprocess.run([args.swtpm, "socket", "--help"], capture_output=True, text=True).stdout
    if "--tpm2" not in helptext:
        print("SKIP: swtpm has no TPM 2.0 support (--tpm2)")
        return 77
    if not os.path.isfile(args.program):
        print(f"FAIL: program {args.program} not found")
        return 1

    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        workdir, cleanup = tempfile.mkdtemp(prefix="mvg-tpm-", dir=args.keep), None
    else:
        cleanup = tempfile.TemporaryDirectory(prefix="mvg-tpm-")
        workdir = cleanup.name
    try:
        suite = Suite(args, workdir)
        suite.case_basic("2.0")
        suite.case_basic("1.2")
        suite.case_reset("2.0")
        suite.case_reset("1.2")
        suite.case_reset("2.0-crb")
        suite.case_none()
        suite.case_negative("tpm2-image-no-tpm", "2.0", None, TPM_CHECKS)
        suite.case_negative("none-image-tpm2", "none", "2.0", NO_TPM_CHECKS)
    finally:
        if cleanup:
            cleanup.cleanup()
    print("QEMU TCG wall times: " + ", ".join(f"{n} {t:.2f} s" for n, t in suite.times))
    return suite.status()


if __name__ == "__main__":
    sys.exit(main())
