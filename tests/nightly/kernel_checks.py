"""Checks of a -kernel boot's measurements (vmm/kernel_boot.hpp): minivmm logs and extends them as GRUB
does, the kernel and the initrd on PCR 9 and the command line on PCR 8, after the firmware's events."""
import hashlib
import os
import re
import subprocess

from tests.nightly.checks import Verdict, nightly_lines, pcr_values, segments, sha1_log_events, tpm_check_names

KERNEL_CHECK = "kernel-measured"
FIRMWARE_CHECK = "firmware-measured"  # -bios none: minivmm's own firmware events (firmware/firmware_events.hpp)
PARTITION = 2048 * 512  # scripts/build-guest-image: the FAT partition starts at sector 2048
# scripts/nightly-boot's -kernel cells: the image's own kernel, initrd and command line booted directly,
# the image still the disk (so /init reboots once). Through SeaBIOS, TPM 2.0 from swtpm; and without
# firmware (-bios none, vmm/direct_boot.hpp; through PVH, and one cell through the bzImage's 64-bit entry)
# on both backends, 1.2 and the CRB: (prefix, TPM version, backend, interface, extra minivmm options).
NOFW = ("-bios", "none")
CELLS = (("tpm2.0-kernel/swtpm", "2.0", "swtpm", "tis", ()),
         ("tpm2.0-nofw/swtpm", "2.0", "swtpm", "tis", NOFW),
         ("tpm2.0-nofw-bzimage/in-process", "2.0", "in-process", "tis", NOFW + ("-kernel-entry", "bzimage")),
         ("tpm1.2-nofw/in-process", "1.2", "in-process", "tis", NOFW),
         ("tpm2.0-crb-nofw/swtpm", "2.0", "swtpm", "crb", NOFW))
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


def check_names(version, index, extra):
    """The checks of boot `index` of a -kernel cell."""
    return (("linux",) + tpm_check_names(version, index) + (KERNEL_CHECK,) +
            ((FIRMWARE_CHECK,) if tuple(extra[:2]) == NOFW else ()))


def minivmm_version(minivmm):
    """"0.1.0" from `minivmm -version` ("minivmm 0.1.0")."""
    out = subprocess.run([minivmm, "-version"], capture_output=True, text=True, check=True).stdout.split()
    return out[1] if len(out) == 2 and out[0] == "minivmm" else out[-1]


def expected_pcr0(version, minivmm_version):
    """PCR 0 after a -bios none boot, computed here: EV_S_CRTM_VERSION ("minivmm VERSION" as NUL-terminated
    UCS-2, hashed) then EV_SEPARATOR (4 zero bytes, hashed), in the SHA-256 bank (TPM 2.0) or SHA-1 (1.2)."""
    h = hashlib.sha256 if version == "2.0" else hashlib.sha1
    value = bytes(h().digest_size)
    for data in (f"minivmm {minivmm_version}\0".encode("utf-16-le"), bytes(4)):
        value = h(value + h(data).digest()).digest()
    return value.hex()


def firmware_measured(run, index, version, minivmm_version):
    """Verdict of boot `index` of a -bios none boot: PCR 0 holds exactly minivmm's CRTM version and separator
    (as computed here), and the firmware logged no SeaBIOS banner (none ran)."""
    bounds = segments(run.text)
    if index >= len(bounds):
        return Verdict("failed", f"boot {index + 1} never started ({run.describe()})")
    start, end = bounds[index]
    if "SeaBIOS (version" in run.text[start:end]:
        return Verdict("failed", "SeaBIOS ran in a -bios none boot")
    lines = nightly_lines(run, start, end)
    tpm = pcr_values(lines, "pcrread" if version == "2.0" else "pcr")
    want = expected_pcr0(version, minivmm_version)
    if tpm.get(0) != want:
        return Verdict("failed", f"PCR 0 reads {tpm.get(0, 'nothing')[:16]}..., want {want[:16]}... (CRTM "
                                 f"'minivmm {minivmm_version}' + separator)")
    return Verdict("passed", f"PCR 0 = CRTM 'minivmm {minivmm_version}' + separator as computed here ({want[:16]}...)")
