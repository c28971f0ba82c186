#!/usr/bin/env python3
"""KVM integration tests of the TPM: minivmm with a real swtpm or the in-process libtpms TPM (each as
TPM 2.0 and 1.2, and TPM 2.0 through the CRB interface) boots SeaBIOS,
which finds the TPM through our TPM2/TCPA table, starts it and measures the boot; the project's
boot-sector program then checks, inside the guest, the ACPI table and DSDT device, TIS register
behaviour, a command round trip, and replays SeaBIOS's event log against the PCRs it reads from
the TPM. Plus: a reboot (the TPM is power-cycled, the PCRs start over), no swtpm at start-up, an
swtpm that answers garbage, and an swtpm killed while the guest uses the TPM.

usage: test_minivmm_tpm.py MINIVMM TEST_GUEST_BIN MKIMAGE_PY FAKE_SWTPM_PY"""
import os
import re
import signal
import subprocess
import sys

from tests.harness import suite, vmm
from tests.harness.swtpm import Swtpm

BIOS = "/usr/share/seabios/bios-256k.bin"
TPM_CHECKS = ("tpm-acpi", "tpm-tis-regs", "tpm-cmd", "tpm-eventlog")


def tpm_args(s, backend, version, name):
    """Starts the TPM for one run: an swtpm process, or a state directory for the in-process TPM."""
    directory = os.path.join(s.tmp.name, name)
    if backend == "swtpm":
        tpm = Swtpm(directory, version)
        return tpm, ["-tpm-sock", tpm.sock]
    return None, ["-tpm-state", directory, "-tpm-version", version]


def image(s, program, mkimage, mode, tpm):
    out = os.path.join(s.tmp.name, f"{mode}-{tpm}.img")
    subprocess.run([sys.executable, mkimage, "--program", program, "--out", out, "--mode", mode, "--tpm", tpm],
                   check=True)
    return out


def all_pass(out):
    return not re.search(r"MVG: \S+ FAIL", out) and re.search(r"MVG: DONE pass=\d+ fail=0", out) is not None


def main():
    minivmm, program, mkimage, fake = sys.argv[1:5]
    suite.require_kvm_and_swtpm()
    s = suite.Suite()

    # The matrix: {swtpm, in-process libtpms} x {TPM 2.0, 1.2}, the same guest checks for each.
    for backend in ("swtpm", "libtpms"):
        for version in ("2.0", "1.2"):
            name = f"{backend} TPM {version}"
            tpm, args = tpm_args(s, backend, version, f"{backend}-{version}")
            img = image(s, program, mkimage, "basic", version)
            log = os.path.join(s.tmp.name, f"seabios-{backend}-{version}.log")
            r = suite.run([minivmm, "-bios", BIOS] + args + ["-debugcon", f"file:{log}", img])
            s.check(f"{name}: boots and powers off (exit 0)", r.returncode == 0, r)
            s.check(f"{name}: every guest check passes", all_pass(r.stdout), r)
            for check in TPM_CHECKS:
                m = re.search(rf"MVG: {check} PASS(.*)", r.stdout)
                s.check(f"{name}: guest check {check}", m is not None, r)
                if m and check == "tpm-eventlog":
                    print(f"    {m.group(1).strip()}")
            seabios = open(log, errors="replace").read()
            table = "TPM2" if version == "2.0" else "TCPA"
            s.check(f"{name}: SeaBIOS found the {table} table",
                    f"table({(table.encode()[::-1]).hex()})" in seabios, seabios[-1500:])
            if tpm:
                tpm.kill()

            # Reboot: SeaBIOS starts the TPM again (it fails if the TPM was not power-cycled) and
            # the second boot's event log replays to the PCRs from scratch.
            tpm, args = tpm_args(s, backend, version, f"{backend}-{version}-reset")
            r = suite.run([minivmm, "-bios", BIOS] + args + [image(s, program, mkimage, "reset", version)])
            s.check(f"{name} reboot: two boots, exit 0",
                    r.returncode == 0 and r.stdout.count("SeaBIOS (version") == 2 and "MVG: second-boot PASS" in r.stdout, r)
            s.check(f"{name} reboot: all checks pass on both boots, event log replays after the reset",
                    all_pass(r.stdout) and r.stdout.count("MVG: tpm-eventlog PASS") == 2, r)
            if tpm:
                tpm.kill()

    # The CRB interface (-tpm-interface crb, TPM 2.0): SeaBIOS drives it itself (its crb driver),
    # the program checks the TPM2 table (start method 7, control area 0xFED40040), the CRB
    # registers, a command round trip through the CRB buffer and the event-log replay; on a
    # reboot too. A TPM 1.2 with CRB: one clear line, exit 6.
    crb_checks = ("tpm-acpi", "tpm-crb-regs", "tpm-cmd", "tpm-eventlog")
    for backend in ("swtpm", "libtpms"):
        name = f"{backend} TPM 2.0 CRB"
        tpm, args = tpm_args(s, backend, "2.0", f"{backend}-crb")
        log = os.path.join(s.tmp.name, f"seabios-{backend}-crb.log")
        r = suite.run([minivmm, "-bios", BIOS] + args + ["-tpm-interface", "crb", "-debugcon", f"file:{log}",
                                                           image(s, program, mkimage, "reset", "2.0-crb")])
        s.check(f"{name}: two boots, exit 0", r.returncode == 0 and "MVG: second-boot PASS" in r.stdout, r)
        s.check(f"{name}: every guest check passes on both boots", all_pass(r.stdout), r)
        for check in crb_checks:
            s.check(f"{name}: guest check {check} on both boots", r.stdout.count(f"MVG: {check} PASS") == 2, r)
        m = re.search(r"MVG: tpm-eventlog PASS(.*)", r.stdout)
        if m:
            print(f"    {m.group(1).strip()}")
        s.check(f"{name}: no TIS check ran", "tpm-tis-regs" not in r.stdout, r)
        seabios = open(log, errors="replace").read()
        s.check(f"{name}: SeaBIOS found the TPM2 table", f"table({b'TPM2'[::-1].hex()})" in seabios, seabios[-1500:])
        if tpm:
            tpm.kill()
    tpm = Swtpm(os.path.join(s.tmp.name, "crb-12"), "1.2")
    r = suite.run([minivmm, "-bios", BIOS, "-tpm-sock", tpm.sock, "-tpm-interface", "crb",
                     image(s, program, mkimage, "basic", "none")], 60)
    tpm.kill()
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    s.check("swtpm TPM 1.2 with -tpm-interface crb: exit 6, one line saying CRB needs a TPM 2.0",
            r.returncode == 6 and len(lines) == 1 and "needs a TPM 2.0" in lines[0] and tpm.sock in lines[0], r)

    # No swtpm at the given path: one clear line naming the socket and how to start swtpm.
    missing = os.path.join(s.tmp.name, "nope", "swtpm-sock")
    r = suite.run([minivmm, "-bios", BIOS, "-tpm-sock", missing, image(s, program, mkimage, "basic", "none")], 60)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    s.check("no swtpm: exit 6 with one line naming the socket and how to start swtpm",
            r.returncode == 6 and len(lines) == 1 and missing in lines[0] and "swtpm socket" in lines[0], r)

    # An swtpm that answers garbage on its control channel: refused at start-up, no crash.
    gsock = os.path.join(s.tmp.name, "garbage-sock")
    g = subprocess.Popen([sys.executable, fake, "--socket", gsock, "--mode", "garbage", "--max-seconds", "30"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    g.stdout.readline()  # "ready"
    r = suite.run([minivmm, "-bios", BIOS, "-tpm-sock", gsock, image(s, program, mkimage, "basic", "none")], 60)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    s.check("garbage swtpm: exit 6 with one clear line, no crash",
            r.returncode == 6 and len(lines) == 1 and gsock in lines[0], r)
    g.kill()
    g.wait()

    # swtpm killed while the firmware and guest use the TPM: the VM keeps running, the guest's TPM
    # commands fail, minivmm logs one line and still powers off cleanly.
    tpm = Swtpm(os.path.join(s.tmp.name, "tpm-kill"), "2.0")
    killed = []

    def kill_swtpm(out, _minivmm):
        if not killed and b"SeaBIOS (version" in out:  # SeaBIOS is still measuring the boot
            tpm.proc.send_signal(signal.SIGKILL)
            killed.append(True)

    r = vmm.run([minivmm, "-bios", BIOS, "-tpm-sock", tpm.sock, image(s, program, mkimage, "basic", "2.0")], 180,
                on_output=kill_swtpm)
    err, text = r.stderr, r.text
    s.check("swtpm killed: VM survives and powers off (exit 0)", r.returncode == 0 and "MVG: DONE" in text,
            f"exit {r.returncode}\n{text[-3000:]}\n{err}")
    s.check("swtpm killed: the guest sees TPM failures", re.search(r"MVG: tpm-cmd FAIL", text) is not None, text[-3000:])
    s.check("swtpm killed: one clear log line", err.count("stopped responding") == 1, err)
    tpm.kill()
    s.finish()


if __name__ == "__main__":
    main()
