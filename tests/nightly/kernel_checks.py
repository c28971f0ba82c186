"""Checks of a -kernel boot's measurements (vmm/kernel_boot.hpp): minivmm logs and extends them as GRUB
does, the kernel and the initrd on PCR 9 and the command line on PCR 8, after the firmware's events."""
import hashlib
import os
import re
import subprocess

from tests.nightly.checks import Verdict, nightly_lines, pcr_values, segments, sha1_log_events

KERNEL_CHECK = "kernel-measured"
PARTITION = 2048 * 512  # scripts/build-guest-image: the FAT partition starts at sector 2048
KERNEL_EVENT = re.compile(r"NIGHTLY: kernel-event (\d+) (\S+) ([0-9a-f]+) ([^\r\n]*)")


def expected_kernel_events(version, kernel, cmdline, initrd=None, names=("vmlinuz", "initrd.gz")):
    """[(pcr, digest hex, text)] minivmm logs for these file contents (bytes) and command line (str),
    in the log's bank: SHA-256 for a TPM 2.0, SHA-1 for a 1.2 (vmm/kernel_boot.hpp)."""
    h = hashlib.sha256 if version == "2.0" else hashlib.sha1
    events = [(9, h(kernel).hexdigest(), names[0]), (8, h(cmdline.encode()).hexdigest(), "kernel_cmdline: " + cmdline)]
    if initrd is not None:
        events.append((9, h(initrd).hexdigest(), names[1]))
    return events


def kernel_measured(run, index, version, expected):
    """Verdict of boot `index` of a -kernel boot: the event log's events on PCRs 8 and 9 are exactly
    `expected` (expected_kernel_events), all EV_IPL, and the TPM's PCRs 8 and 9 equal the values
    computed on the host from the same files."""
    bounds = segments(run.text)
    if index >= len(bounds):
        return Verdict("failed", f"boot {index + 1} never started ({run.describe()})")
    start, end = bounds[index]
    lines = nightly_lines(run, start, end)
    if version == "2.0":
        events = [(int(m.group(1)), m.group(2), m.group(3), m.group(4)) for m in KERNEL_EVENT.finditer(run.text, start, end)]
        if any(kind != "EV_IPL" for _, kind, _, _ in events):
            return Verdict("failed", f"events on PCR 8/9 that are not EV_IPL: {events}")
        found = [(p, d, t) for p, _, d, t in events]
        tpm = pcr_values(lines, "pcrread")
        h, size = hashlib.sha256, 32
    else:
        try:
            events = [e for e in sha1_log_events(bytes.fromhex(lines.get("eventlog-hex", ("", 0))[0])) if e[0] in (8, 9)]
            if any(kind != 0x0D for _, kind, _, _ in events):
                return Verdict("failed", "events on PCR 8/9 that are not EV_IPL: " +
                               ", ".join(f"PCR {p} type {kind:#x}" for p, kind, _, _ in events))
            found = [(p, d.hex(), data.rstrip(b"\0").decode(errors="replace")) for p, _, d, data in events]
        except ValueError as e:
            return Verdict("failed", f"the SHA-1 event log is unreadable: {e}")
        tpm = pcr_values(lines, "pcr")
        h, size = hashlib.sha1, 20
    if found != expected:
        return Verdict("failed", f"events on PCR 8/9 in the log: {found}, want {expected}")
    want = {}
    for pcr in (8, 9):
        value = bytes(size)
        for p, digest, _ in expected:
            if p == pcr:
                value = h(value + bytes.fromhex(digest)).digest()
        want[pcr] = value.hex()
    wrong = [f"PCR {n} reads {tpm.get(n, 'nothing')[:16]}..., want {want[n][:16]}..." for n in (8, 9) if tpm.get(n) != want[n]]
    if wrong:
        return Verdict("failed", "; ".join(wrong))
    return Verdict("passed", f"{len(expected)} events on PCR 8/9 as computed on the host; PCR 8 = {want[8][:16]}..., "
                             f"PCR 9 = {want[9][:16]}...")


class BootFiles:
    """The kernel, initrd and command line of a nightly image (its syslinux.cfg APPEND line, plus
    `extra`), copied out of its FAT partition with mtools: what a -kernel case boots."""

    def __init__(self, image, directory, extra="minivmm.test=kernel-boot"):
        names = ["vmlinuz", "initrd.gz", "syslinux.cfg"]
        subprocess.run(["mcopy", "-n", "-o", "-i", f"{image}@@{PARTITION}"] + [f"::/{n}" for n in names] + [directory],
                       check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(directory, "syslinux.cfg")) as f:
            append = next(line.split("APPEND", 1)[1].strip() for line in f if line.strip().startswith("APPEND"))
        self.kernel, self.initrd = os.path.join(directory, "vmlinuz"), os.path.join(directory, "initrd.gz")
        self.cmdline = f"{append} {extra}".strip()
        self.args = ["-kernel", self.kernel, "-initrd", self.initrd, "-append", self.cmdline]

    def expected(self, version):
        with open(self.kernel, "rb") as k, open(self.initrd, "rb") as i:
            return expected_kernel_events(version, k.read(), self.cmdline, i.read())
