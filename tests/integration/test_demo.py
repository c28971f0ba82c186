#!/usr/bin/env python3
"""scripts/demo, the README's measured-boot demo, on KVM: for the in-process TPM 2.0 (twice on the
same state directory) and 1.2, and for TPM 2.0 in a swtpm (--swtpm, if swtpm is installed), the
report shows the TPM family and a manufacturer, 8 full PCRs of the right bank, a non-empty event
log that replays to the PCRs, one final MVG DONE line with no failures and no other MVG line, no
terminal control sequences, and scripts/demo exits 0. The PCRs are the same on every boot and
with either backend (the same machine measured into a TPM that starts from zero).

usage: test_demo.py SCRIPTS_DEMO MINIVMM TEST_GUEST_BIN"""
import os
import re
import shutil
import sys

from tests.harness import suite


def report(r, version):
    """What the demo printed: None if it is not a complete report, else (pcrs, details)."""
    out = r.stdout
    digits = 64 if version == "2.0" else 40
    pcrs = re.findall(rf"^  PCR ([0-7]): ([0-9A-F]{{{digits}}})$", out, re.M)
    family = re.search(r"^TPM family:\s+(\S+)", out, re.M)
    maker = re.search(r"^manufacturer:\s+(\S.*)$", out, re.M)
    events = re.search(r"^event log:\s+(\d+) entries, (\d+) bytes$", out, re.M)
    mvg = re.findall(r"MVG: .*", out)
    problems = []
    if r.returncode != 0:
        problems.append(f"exit {r.returncode}")
    if "SeaBIOS (version" not in out:
        problems.append("no SeaBIOS banner")
    if "\x1b" in out or "\r" in out:
        problems.append("terminal control characters in the output")
    if not family or family.group(1) != version:
        problems.append(f"family {family and family.group(1)!r}, want {version}")
    if not maker:
        problems.append("no manufacturer")
    if [int(i) for i, _ in pcrs] != list(range(8)):
        problems.append(f"PCR lines {[i for i, _ in pcrs]}, want 0-7 with {digits} hex digits")
    if not events or int(events.group(1)) == 0:
        problems.append("no event-log entries")
    if "\nevent log replays to PCRs 0-7: yes\n" not in out:
        problems.append("event log does not replay")
    if len(mvg) != 1 or not re.fullmatch(r"MVG: DONE pass=\d+ fail=0", mvg[0]):
        problems.append(f"MVG lines {mvg}, want one DONE with fail=0")
    if problems:
        return None, "; ".join(problems)
    return [v for _, v in pcrs], f"manufacturer {maker.group(1)!r}, {events.group(1)} entries"


def main():
    demo, minivmm, program = sys.argv[1:4]
    if not suite.kvm_usable():
        return suite.SKIP
    s = suite.Suite()

    def run(version, state, *extra):
        return suite.run([sys.executable, demo, "--minivmm", minivmm, "--program", program, "--tpm-version",
                            version, "--state", state, *extra], timeout=120)

    pcrs = {}
    for version in ("2.0", "1.2"):
        state = os.path.join(s.tmp.name, f"tpm-{version}")
        r = run(version, state)
        got, detail = report(r, version)
        s.check(f"in-process TPM {version}: complete report, replays, exit 0 ({detail})", got is not None, r)
        permall = "tpm2-00.permall" if version == "2.0" else "tpm-00.permall"
        s.check(f"in-process TPM {version}: state kept in --state", os.path.exists(os.path.join(state, permall)),
                sorted(os.listdir(state)) if os.path.isdir(state) else "no directory")
        pcrs[version] = got
    state = os.path.join(s.tmp.name, "tpm-2.0")
    r = run("2.0", state)
    got, detail = report(r, "2.0")
    s.check(f"in-process TPM 2.0, second run on the same state: complete report ({detail})", got is not None, r)
    s.check("in-process TPM 2.0: the same PCRs on the second boot", got is not None and got == pcrs["2.0"],
            f"first {pcrs['2.0']}\nsecond {got}")
    s.check("TPM 1.2 and 2.0 report different banks", pcrs["1.2"] != pcrs["2.0"])

    if shutil.which("swtpm"):
        r = run("2.0", os.path.join(s.tmp.name, "swtpm-2.0"), "--swtpm")
        got, detail = report(r, "2.0")
        s.check(f"swtpm TPM 2.0 (--swtpm): complete report ({detail})", got is not None, r)
        s.check("swtpm TPM 2.0: the same PCRs as the in-process TPM", got is not None and got == pcrs["2.0"],
                f"libtpms {pcrs['2.0']}\nswtpm {got}")
        sock = os.path.join(s.tmp.name, "swtpm-2.0", "swtpm-sock")
        s.check("swtpm exited with minivmm (it removed its socket)", not os.path.exists(sock))
    else:
        print("SKIP --swtpm: swtpm is not installed")

    r = suite.run([sys.executable, demo, "--minivmm", minivmm], timeout=30)
    s.check("--minivmm without --program: usage error (exit 2)", r.returncode == 2 and "go together" in r.stderr, r)
    s.finish()


if __name__ == "__main__":
    sys.exit(main())
