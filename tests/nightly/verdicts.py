"""Verdicts of the nightly matrix's runs (scripts/nightly-boot) over the checks of checks.py: both boots
of a Linux run, QEMU's PCRs against minivmm's, and the stop rule for hosts that cannot run a kernel."""
import re

from tests.nightly import checks

BOOTS = ("first-boot", "after-reboot")
BANNER_GRACE = 15.0  # incapable host: seconds after the bootloader's banner before the run is stopped


# PCRs that measure what differs between the two VMMs by design: PCR 1 the platform configuration
# (SMBIOS: minivmm's type 1 names minivmm), PCR 2 option ROMs (QEMU adds kvmvapic.bin under KVM).
# The others (0 firmware separator, 3, 4 boot loader/MBR, 5 partition table, 6, 7) must be equal.
PCRS_COMPARED = (0, 3, 4, 5, 6, 7)


def boot_pcrs(run):
    """[{n: hex}] of PCR 0-7 per boot as /init reported them."""
    return [checks.pcr_values(checks.nightly_lines(run, *b)) for b in checks.segments(run.text)[:len(BOOTS)]]


def compare_pcrs(qemu, minivmm, index):
    """Verdict: QEMU's PCRs of boot `index` against minivmm's (same image, TPM version and boot)."""
    if index >= len(qemu) or index >= len(minivmm):
        return checks.Verdict("failed", f"boot {index + 1} is missing a PCR report (QEMU has {len(qemu)}, "
                                        f"minivmm {len(minivmm)})")
    q, m = qemu[index], minivmm[index]
    diff = [n for n in PCRS_COMPARED if not q.get(n) or q.get(n) != m.get(n)]
    other = [n for n in range(8) if n not in PCRS_COMPARED and q.get(n) != m.get(n)]
    note = f"PCR {', '.join(map(str, other))} differ by design (1: SMBIOS, 2: QEMU's option ROMs)" if other else ""
    if diff:
        return checks.Verdict("failed", f"PCR {', '.join(map(str, diff))} differ from minivmm's"
                                        + (f"; {note}" if note else ""))
    return checks.Verdict("passed", f"PCR {', '.join(map(str, PCRS_COMPARED))} equal minivmm's"
                                    + (f"; {note}" if note else ""))


def linux_verdicts(run, version, interface="tis", ppi=False, boot_mark=False):
    """[(boot, check, Verdict)] of the Linux checks of both boots: /init's basic report ("linux"),
    the deeper TPM checks (tpm2-tools / TPM 1.2 event log, PCRs unchanged after the reboot) and,
    with `ppi` (minivmm), the Physical Presence request made in boot 1 and carried out at the reboot;
    with `boot_mark` (minivmm), the boot-time line for /init's boot-complete mark."""
    out, first = [], None
    for index, boot in enumerate(BOOTS):
        out.append((boot, "linux", checks.linux(run, index, version, interface, boot_mark)))
        for name, v in checks.tpm_checks(run, index, version, first).items():
            out.append((boot, name, v))
        if ppi:
            out.append((boot, checks.PPI, checks.ppi(run, index, version)))
        if index == 0:
            bounds = checks.segments(run.text)
            first = checks.pcr_values(checks.nightly_lines(run, *bounds[0])) if bounds else {}
    return out


def banner_stop(banner):
    """Stop rule for a host that cannot run the kernel: BANNER_GRACE seconds after the bootloader's banner."""
    seen = {}

    def stop(text, elapsed):
        if "at" not in seen and re.search(banner, text):
            seen["at"] = elapsed
        if "at" in seen and elapsed - seen["at"] > BANNER_GRACE:
            return f"{BANNER_GRACE:g}s after the bootloader's banner (the kernel cannot run on this host)"
        return None
    return stop
