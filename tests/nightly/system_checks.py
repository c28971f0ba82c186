"""The nightly matrix's debian-system cells (scripts/nightly-boot): a Debian 12 system disk as users bring
one (scripts/build-guest-image --distro debian: GRUB, ext4, initramfs-tools, systemd), booted twice
through minivmm with 1 GiB of RAM. The report of tests/linux/system-report is the /init protocol plus
what users do with a TPM through systemd; these are the verdicts on it, per boot:

  pre-kernel, linux and the TPM checks   as for the nightly image (checks.py), GRUB as the bootloader
  systemd       systemd reached multi-user ("running", no failed unit), systemd-analyze's startup time,
                systemd-creds has-tpm2 (TPM 2.0: driver, system and subsystem present; "partial" because
                no EFI firmware measured through the EFI TPM protocol)
  luks          (TPM 2.0) boot 1: a LUKS2 volume enrolled with systemd-cryptenroll on PCRs 0+2+4+7 and
                put in /etc/crypttab; boot 2: systemd-cryptsetup opened it at boot with the TPM alone,
                and refused it once PCR 4 was extended
  credential    (TPM 2.0) boot 1: systemd-creds encrypt --with-key=tpm2; boot 2: it decrypts, and not
                once PCR 7 was extended
  clean-exit    (after the reboot) `systemctl poweroff` ended minivmm with status 0 and minivmm wrote no
                warning or error on stderr"""
import os
import re
import subprocess

from tests.nightly import checks
from tests.nightly.verdicts import linux_verdicts

PREFIX = "debian-system"
IMAGE_NAME = "guest-debian-system.img"
RAM = ["-m", "1G"]
# (TPM version, backend): swtpm and in-process for TPM 2.0; swtpm for 1.2, where systemd has no TPM use.
CELLS = (("2.0", "swtpm"), ("2.0", "in-process"), ("1.2", "swtpm"))
SYSTEMD, LUKS, CREDENTIAL, CLEAN_EXIT = "systemd", "luks", "credential", "clean-exit"
# The checks of tests/linux/system-report, per boot index, for each verdict (TPM 2.0 only).
GUEST_CHECKS = {LUKS: (("luks-enroll",), ("luks-unlock", "luks-pcr-mismatch")),
                CREDENTIAL: (("cred-encrypt",), ("cred-decrypt", "cred-pcr-mismatch"))}
MINIVMM_COMPLAINT = re.compile(r"^minivmm: (warning|error): .*$", re.M)


def prefix(version, backend):
    return f"{PREFIX}/tpm{version}/{backend}"


def check_names(version, boot_index):
    """The checks of one boot beyond pre-kernel and linux."""
    names = checks.tpm_check_names(version, boot_index) + (SYSTEMD,)
    if version == "2.0":
        names += (LUKS, CREDENTIAL)
    return names + ((CLEAN_EXIT,) if boot_index == 1 else ())


def boot_lines(run, index):
    bounds = checks.segments(run.text)
    return checks.nightly_lines(run, *bounds[index]) if index < len(bounds) else None


def systemd(run, index, version):
    lines = boot_lines(run, index)
    if lines is None or "init-start" not in lines:
        return checks.Verdict("failed", f"the report never ran in boot {index + 1} ({run.describe()})")
    value = lambda key: lines.get(key, ("none", None))[0]  # noqa: E731
    problems, details = [], []
    state = value("system-state")
    if state != "running":
        problems.append(f"systemd says {state!r}, want 'running' (failed units: {value('failed-units')})")
    else:
        details.append("systemd: running")
    startup = value("systemd-analyze")
    if not startup.startswith("Startup finished in"):
        problems.append(f"systemd-analyze time: {startup!r}")
    else:
        details.append(startup)
    has = value("has-tpm2")
    if version == "2.0" and not all(f"+{part}" in has for part in ("driver", "system", "subsystem")):
        problems.append(f"systemd-creds has-tpm2: {has!r}, want +driver +system +subsystem")
    details.append(f"has-tpm2: {has}")
    details.append(f"kernel errors: {value('kernel-errors') or 'none'}")
    return checks.Verdict("failed" if problems else "passed", "; ".join(problems or details), details)


def guest_checks(run, index, verdict):
    lines = boot_lines(run, index)
    if lines is None or "init-start" not in lines:
        return checks.Verdict("failed", f"the report never ran in boot {index + 1} ({run.describe()})")
    problems, details = [], []
    for name in GUEST_CHECKS[verdict][index]:
        result = lines["check"].get(name, ("missing", None))[0]
        (details if result.startswith("PASS") else problems).append(f"{name}: {result}")
    return checks.Verdict("failed" if problems else "passed", "; ".join(problems or details), details)


def clean_exit(run):
    lines = [m.group() for m in MINIVMM_COMPLAINT.finditer(run.stderr)]
    if run.returncode != 0 or run.stopped or lines:
        why = [f"minivmm: {run.describe()}"] + lines[:3]
        return checks.Verdict("failed", "; ".join(why))
    return checks.Verdict("passed", "exit status 0 after systemctl poweroff, no warning from minivmm")


def verdicts(run, version):
    """[(boot, check, Verdict)] of one run's system checks (pre-kernel, linux and the TPM checks are
    the nightly image's, made by the caller)."""
    out = []
    for index, boot in enumerate(("first-boot", "after-reboot")):
        out.append((boot, SYSTEMD, systemd(run, index, version)))
        if version == "2.0":
            out += [(boot, name, guest_checks(run, index, name)) for name in (LUKS, CREDENTIAL)]
    out.append(("after-reboot", CLEAN_EXIT, clean_exit(run)))
    return out


def case_ids():
    return [f"{prefix(v, b)}/{boot}/{check}" for v, b in CELLS for i, boot in enumerate(("first-boot", "after-reboot"))
            for check in ("pre-kernel", "linux") + check_names(v, i)]


def run_cells(n, image, image_problem):
    """Runs the selected debian-system cells through `n` (scripts/nightly-boot's Nightly)."""
    for version, backend in CELLS:
        ids = [i for i in n.selected if i.startswith(prefix(version, backend) + "/")]
        reason = ("/dev/kvm is not usable on this host" if not n.kvm else
                  "swtpm is not installed (apt-get install swtpm)" if backend == "swtpm" and not n.swtpm else
                  (n.calibration.reason if n.calibration else "") if not n.kernel_runs() else None)
        for i in ids if reason or image is None else []:
            n.add("minivmm", i, "skipped" if reason else "error", reason or image_problem)
        if ids and not reason and image is not None:
            n.guarded("minivmm", ids, run_cell, n, version, backend, image)


def run_cell(n, version, backend, image):
    name = prefix(version, backend).replace("/", "_")
    r, debug, logs = n.run_minivmm(name, backend, version, image, n.args.system_timeout, extra=RAM)
    out = [(boot, "pre-kernel", checks.prekernel(r, debug, i, version, n.args.bootloader_banner, True))
           for i, boot in enumerate(("first-boot", "after-reboot"))]
    out += linux_verdicts(r, version) + verdicts(r, version)
    for boot, check, v in out:
        v.details.append(logs)
        n.add_verdict("minivmm", f"{prefix(version, backend)}/{boot}/{check}", v)


def find_image(path, build, root):
    """(path or None, why not) of the debian-system disk, built when asked (needs root)."""
    image = os.path.abspath(path)
    if not os.path.exists(image) and build:
        cmd = [os.path.join(root, "scripts", "build-guest-image"), "--distro", "debian", "--out", image]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode:
            return None, f"{' '.join(cmd[1:])} failed (exit {p.returncode}): {p.stdout[-300:]}"
    if not os.path.isfile(image):
        return None, f"image {image} not found (make it with scripts/build-guest-image --distro debian, or pass --build)"
    return image, ""
