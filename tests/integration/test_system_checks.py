#!/usr/bin/env python3
"""The debian-system verdicts (tests/nightly/system_checks.py) on recorded reports, no VM: a good boot
pair passes every check, and each way a user's disk can go wrong fails the check that owns it (the
LUKS2 volume that did not open, or opened with PCR 4 changed; the credential; systemd degraded; no
TPM in has-tpm2; minivmm's exit 7 from the sandbox at power-off; a warning on minivmm's stderr)."""
import sys

from tests.nightly import system_checks
from tests.harness import suite
from tests.harness import vmm

BANNER = "SeaBIOS (version 1.16.2)\r\nGNU GRUB  version 2.06\r\n"
GOOD = {
    1: {"luks-enroll": "PASS", "cred-encrypt": "PASS"},
    2: {"luks-unlock": "PASS", "cred-decrypt": "PASS", "luks-pcr-mismatch": "PASS refused: headless",
        "cred-pcr-mismatch": "PASS refused: policy digest"},
}


def boot(n, state="running", has="partial -firmware +driver +system +subsystem", results=None):
    lines = [f"NIGHTLY: init-start uptime=30.{n}", f"NIGHTLY: system-state {state}",
             "NIGHTLY: systemd-analyze Startup finished in 20.1s (kernel) + 25.2s (userspace) = 45.3s",
             f"NIGHTLY: has-tpm2 {has}"]
    lines += [f"NIGHTLY: check {k} {v}" for k, v in (results or GOOD[n]).items()]
    return BANNER + "\r\n".join(lines) + "\r\n"


def run(first=None, second=None, returncode=0, stderr=""):
    text = (first or boot(1)) + (second or boot(2))
    stamps = [(i + 1, i * 0.01) for i in range(len(text))]
    return vmm.Run(["minivmm"], returncode, text, stamps, stderr, len(text) * 0.01, None)


def statuses(r, version="2.0"):
    return {f"{b}/{c}": (v.status, v.message) for b, c, v in system_checks.verdicts(r, version)}


def main():
    s = suite.Suite()
    good = statuses(run())
    s.check("a good boot pair: systemd, luks, credential (both boots) and clean-exit pass",
            len(good) == 7 and all(v[0] == "passed" for v in good.values()), good)
    s.check("clean-exit says systemctl poweroff ended with status 0",
            "exit status 0" in good["after-reboot/clean-exit"][1], good)

    no_unlock = dict(GOOD[2], **{"luks-unlock": "FAIL systemd-cryptsetup@nightly.service inactive"})
    v = statuses(run(second=boot(2, results=no_unlock)))
    s.check("the volume did not open after the reboot: luks fails, credential still passes",
            v["after-reboot/luks"][0] == "failed" and "luks-unlock" in v["after-reboot/luks"][1]
            and v["after-reboot/credential"][0] == "passed", v)
    opened = dict(GOOD[2], **{"luks-pcr-mismatch": "FAIL the volume opened with PCR 4 changed"})
    v = statuses(run(second=boot(2, results=opened)))
    s.check("the volume opened with PCR 4 changed: luks fails", v["after-reboot/luks"][0] == "failed", v)
    missing = {k: r for k, r in GOOD[2].items() if k != "cred-pcr-mismatch"}
    v = statuses(run(second=boot(2, results=missing)))
    s.check("a check the report never printed: credential fails as missing",
            v["after-reboot/credential"][0] == "failed" and "missing" in v["after-reboot/credential"][1], v)
    no_enroll = {"luks-enroll": "FAIL no TPM2 device", "cred-encrypt": "PASS"}
    v = statuses(run(first=boot(1, results=no_enroll)))
    s.check("enrolment failed in boot 1: first-boot luks fails", v["first-boot/luks"][0] == "failed", v)

    v = statuses(run(second=boot(2, state="degraded")))
    s.check("systemd degraded: systemd fails after the reboot", v["after-reboot/systemd"][0] == "failed"
            and "degraded" in v["after-reboot/systemd"][1], v)
    v = statuses(run(first=boot(1, has="no -firmware -driver -system -subsystem")))
    s.check("has-tpm2 without the driver on a TPM 2.0: systemd fails", v["first-boot/systemd"][0] == "failed", v)
    v = statuses(run(first=boot(1, has="no -firmware -driver -system -subsystem")), "1.2")
    s.check("TPM 1.2: has-tpm2 is only reported, and there is no luks or credential check",
            v["first-boot/systemd"][0] == "passed" and not any("luks" in k or "credential" in k for k in v), v)

    sandbox = ("minivmm: error: sandbox: forbidden system call openat (257) in the main thread; "
               "run with -sandbox off to debug\n")
    v = statuses(run(returncode=7, stderr=sandbox))
    s.check("issue 22's power-off (exit 7, the sandbox's line): clean-exit fails and quotes it",
            v["after-reboot/clean-exit"][0] == "failed" and "exit 7" in v["after-reboot/clean-exit"][1]
            and "forbidden system call" in v["after-reboot/clean-exit"][1], v)
    v = statuses(run(stderr="minivmm: warning: boot 2: measurements may be incomplete\n"))
    s.check("exit 0 but a warning from minivmm: clean-exit fails", v["after-reboot/clean-exit"][0] == "failed", v)
    v = statuses(run(stderr="minivmm: TPM 2.0 via swtpm at /tmp/s\n"))
    s.check("info lines on stderr are not complaints", v["after-reboot/clean-exit"][0] == "passed", v)
    v = statuses(run(first=boot(1), second="SeaBIOS (version 1.16.2)\r\n"))
    s.check("boot 2 never reached the report: its systemd, luks and credential fail",
            all(v[f"after-reboot/{c}"][0] == "failed" for c in ("systemd", "luks", "credential")), v)
    s.finish()


if __name__ == "__main__":
    sys.exit(main())
