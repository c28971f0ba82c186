#!/usr/bin/env python3
"""KVM integration test: -smp 2 with both vCPUs hammering the TPM TIS and COM1 at once
(tests/guest --mode smp-hammer --tpm 2.0, the in-process TPM from -tpm-state). The guest's BSP
starts the AP with INIT/SIPI/SIPI; the AP writes 2000 '~' bytes to COM1 and reads TIS ACCESS,
DID_VID and STS 2000 times while the BSP runs TPM2_GetRandom round trips and prints lines. The
device models must stay consistent: every AP read sane, every round trip good, tpm-tis-regs
passes again afterwards, COM1 carries exactly the AP's 2000 bytes, and the VM powers off (exit
0). With -smp 1 the same image must report smp-hammer FAIL (no AP), so the check can fail.

usage: test_smp_hammer.py MINIVMM TEST_GUEST_BIN MKIMAGE_PY"""
import os
import re
import subprocess
import sys

from tests.harness import suite

BIOS = suite.BIOS
AP_ITERS = 2000  # tests/guest/ap_trampoline.S AP_ITERS
PASS_LINE = re.compile(r"MVG: smp-hammer PASS ap_iters=(\d+) bsp_cmds=(\d+)")


def main():
    minivmm, program, mkimage = sys.argv[1:4]
    suite.require_kvm_and_bios()
    s = suite.Suite()
    img = os.path.join(s.tmp.name, "smp-hammer.img")
    bad = subprocess.run([sys.executable, mkimage, "--program", program, "--out", img, "--mode", "smp-hammer"],
                         capture_output=True, text=True)
    s.check("mkimage: smp-hammer without --tpm 2.0 refused", bad.returncode != 0 and "2.0" in bad.stderr, bad.stderr)
    subprocess.run([sys.executable, mkimage, "--program", program, "--out", img, "--mode", "smp-hammer",
                    "--tpm", "2.0"], check=True)

    state = os.path.join(s.tmp.name, "tpm-state")
    os.mkdir(state)
    r = suite.run([minivmm, "-bios", BIOS, "-smp", "2", "-tpm-state", state, "-snapshot", img], timeout=240)
    print(f"smp 2: {r.seconds:.1f}s")
    s.check("smp 2: exit status 0 after ACPI power-off", r.returncode == 0, r)
    m = PASS_LINE.search(r.stdout)
    s.check("smp 2: smp-hammer PASS", m is not None, r)
    if m:
        print(f"smp 2: ap_iters={m.group(1)} bsp_cmds={m.group(2)}")
        s.check(f"smp 2: the AP did all {AP_ITERS} iterations", int(m.group(1)) == AP_ITERS, r)
        s.check("smp 2: the BSP ran TPM round trips meanwhile", int(m.group(2)) >= 3, r)
    s.check("smp 2: no FAIL line, DONE fail=0",
            not re.search(r"MVG: \S+ FAIL", r.stdout) and re.search(r"MVG: DONE pass=\d+ fail=0", r.stdout), r)
    tail = r.stdout[m.end():] if m else ""
    s.check("smp 2: tpm-tis-regs passes again after the hammer", "MVG: tpm-tis-regs PASS" in tail, r)
    # The AP's '~' bytes interleave with the BSP's characters on the one UART: drop them first.
    s.check("smp 2: the BSP's lines while the AP ran", r.stdout.replace("~", "").count("hammer cmd=") >= 3, r)
    tildes = r.stdout.count("~")
    print(f"smp 2: {tildes} AP bytes on COM1")
    s.check(f"smp 2: COM1 carried exactly the AP's {AP_ITERS} bytes", tildes == AP_ITERS, r)

    # One vCPU: nobody answers the SIPI, so the check must fail (and the guest still powers off).
    state1 = os.path.join(s.tmp.name, "tpm-state-1")
    os.mkdir(state1)
    r = suite.run([minivmm, "-bios", BIOS, "-smp", "1", "-tpm-state", state1, "-snapshot", img], timeout=240)
    print(f"smp 1: {r.seconds:.1f}s")
    s.check("smp 1: smp-hammer FAIL ap_iters=0", re.search(r"MVG: smp-hammer FAIL ap_iters=0 ", r.stdout) is not None
            and "~" not in r.stdout and r.returncode == 0, r)

    s.finish()


if __name__ == "__main__":
    main()
