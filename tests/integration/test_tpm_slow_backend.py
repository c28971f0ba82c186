#!/usr/bin/env python3
"""A slow or stalled swtpm never silently loses the TPM or the measurements (issue 10):

- swtpm stopped (SIGSTOP) before minivmm starts and continued 15 s later: minivmm says every 5 s
  that it waits, starts no vCPU before the TPM is up, and the boot then has the TPM working
  (SeaBIOS's event log present and replaying to the PCRs, every in-guest TPM check passing);
- an swtpm that stays stopped past -tpm-start-timeout: exit 6 with the waiting lines and one
  error line, the guest never started;
- swtpm killed while SeaBIOS measures, a new swtpm started on the same socket before the guest
  reboots: the end-of-boot check says loudly that the measurements are missing or incomplete, and
  the new swtpm is never used, not even at the reboot.

usage: test_tpm_slow_backend.py MINIVMM TEST_GUEST_BIN MKIMAGE_PY"""
import os
import re
import signal
import sys
import threading

from tests.harness import suite, swtpm, vmm
from tests.harness.swtpm import Swtpm
from tests.integration.test_minivmm_tpm import BIOS, all_pass, image


def main():
    minivmm, program, mkimage = sys.argv[1:4]
    suite.require_kvm_and_swtpm()
    s = suite.Suite()
    img = image(s, program, mkimage, "basic", "2.0")

    # Stopped for 15 s before minivmm starts: it waits, then boots with a working TPM.
    tpm = Swtpm(os.path.join(s.tmp.name, "stopped"), "2.0")
    tpm.proc.send_signal(signal.SIGSTOP)
    timer = threading.Timer(15, lambda: tpm.proc.send_signal(signal.SIGCONT))
    timer.start()
    try:
        r = suite.run([minivmm, "-bios", BIOS, "-tpm-sock", tpm.sock, img], 300)
    finally:
        timer.cancel()
        tpm.proc.send_signal(signal.SIGCONT)
    waits = [l for l in r.stderr.splitlines() if "waiting for swtpm at" in l]
    s.check("swtpm stopped 15 s: minivmm says it waits (a line every 5 s)", len(waits) >= 2, r)
    s.check("swtpm stopped 15 s: the boot completes (exit 0), every guest check passes",
            r.returncode == 0 and all_pass(r.stdout), r)
    s.check("swtpm stopped 15 s: SeaBIOS's event log replays to the PCRs",
            re.search(r"MVG: tpm-eventlog PASS", r.stdout) is not None, r)
    s.check("swtpm stopped 15 s: the TPM was never given up and no boot warning",
            "stopped responding" not in r.stderr and "boot 1:" not in r.stderr, r)
    tpm.kill()

    # Stopped for good, with a short limit: exit 6, the guest never ran.
    tpm = Swtpm(os.path.join(s.tmp.name, "dead"), "2.0")
    tpm.proc.send_signal(signal.SIGSTOP)
    r = suite.run([minivmm, "-bios", BIOS, "-tpm-sock", tpm.sock, "-tpm-start-timeout", "7", img], 120)
    errors = [l for l in r.stderr.splitlines() if ": error:" in l]
    s.check("swtpm never answers: exit 6, one error line naming the socket and the limit",
            r.returncode == 6 and len(errors) == 1 and tpm.sock in errors[0] and "7000 ms" in errors[0], r)
    s.check("swtpm never answers: the waiting line came first, the guest never started",
            "waiting for swtpm at" in r.stderr and "SeaBIOS" not in r.stdout, r)
    tpm.proc.send_signal(signal.SIGCONT)
    tpm.kill()

    # Killed while SeaBIOS measures, and a new swtpm started on the same socket before the guest
    # reboots: the boot's missing measurements are reported, and the new swtpm is never used (a
    # fresh TPM under a running OS would have PCRs restarted from zero).
    tpm = Swtpm(os.path.join(s.tmp.name, "killed"), "2.0")
    fresh_dir = os.path.join(s.tmp.name, "fresh")
    os.makedirs(fresh_dir)
    fresh = []

    def replace_swtpm(out, _minivmm):
        if not fresh and b"SeaBIOS (version" in out:
            tpm.proc.send_signal(signal.SIGKILL)
            tpm.proc.wait()
            os.unlink(tpm.sock)
            fresh.append(swtpm.start(fresh_dir, tpm.sock, True))

    try:
        r = vmm.run([minivmm, "-bios", BIOS, "-tpm-sock", tpm.sock, image(s, program, mkimage, "reset", "2.0")], 300,
                    on_output=replace_swtpm)
    finally:
        for proc in fresh:
            proc.kill()
            proc.wait()
    err, text = r.stderr, r.text
    s.check("swtpm killed: VM survives both boots (exit 0) with one line for the dead swtpm",
            r.returncode == 0 and text.count("SeaBIOS (version") == 2 and err.count("stopped responding") == 1,
            f"exit {r.returncode}\n{text[-2000:]}\n{err}")
    s.check("swtpm killed: the end of the boot says its measurements are missing or incomplete",
            re.search(r"boot 1: (no PCR was extended|measurements may be incomplete)", err) is not None, err)
    s.check("swtpm killed: the reboot says the TPM could not be restarted, and its boot has no measurements",
            "boot 2: the TPM could not be restarted" in err and "boot 2: no PCR was extended" in err, err)
    s.check("swtpm killed: the swtpm started on the same socket was never used (no TPM state created)",
            bool(fresh) and not any(n.startswith("tpm2-") for n in os.listdir(fresh_dir)),
            f"{os.listdir(fresh_dir)}")
    tpm.kill()
    s.finish()


if __name__ == "__main__":
    main()
