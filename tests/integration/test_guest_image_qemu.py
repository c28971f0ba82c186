#!/usr/bin/env python3
"""Checks the nightly Linux guest image (scripts/build-guest-image) on QEMU TCG, the reference:

  qemu-system-x86_64 -accel tcg -M pc -m 512 -nographic -nodefaults -serial stdio
      -bios /usr/share/seabios/bios-256k.bin -drive if=virtio,format=raw,file=IMG
      [-chardev socket,id=chrtpm,path=SOCK -tpmdev emulator,id=tpm0,chardev=chrtpm -device tpm-tis,tpmdev=tpm0]

For each kernel (--kernels, default $MINIVMM_GUEST_KERNELS or debian; the minimal kernel, a 5-15 min
build from linux-source, with --kernels debian,minimal or MINIVMM_GUEST_KERNELS=debian,minimal) it builds the image into a scratch directory,
checks its layout (MBR with one bootable partition at sector 2048, flag sector "NIGHTLY-BOOT-FLAG=0"),
then boots it (without -no-reboot: the image reboots once by itself) with
  tpm2   swtpm --tpm2: both boots print every NIGHTLY line; "2.0 TPM", /dev/tpm0, tpm-version 2,
         PCRs 0-7 as 64 hex digits, PCR 0 not zero, an event log; boot 2's PCRs equal boot 1's
         (the TPM starts over at the reset); boot 1 reboots, boot 2 powers off and QEMU exits by
         itself; the flag sector is 0 again afterwards
  tpm12  swtpm (TPM 1.2): the same with "1.2 TPM", tpm-version 1, 40-digit PCRs
  tpm2-crb  swtpm --tpm2 behind QEMU's -device tpm-crb: as tpm2, with Linux's tpm_crb bound
         (the "tpm-driver" line) and no tpm_tis probe line
  none   no TPM: every TPM line says "none", the two boots still happen
Every TPM case also checks the "tpm-driver" line: tpm_tis, or tpm_crb for tpm2-crb.
Prints one line per case with its wall time, then "N passed, N failed".
Exit status: 0 all passed, 1 failures, 77 (meson "skip") without qemu-system-x86_64, swtpm,
SeaBIOS, or (not being root) the image build tools.
"""
import argparse
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time

from tests.harness.qemu import qemu_env
from tests.harness.swtpm import Swtpm

BIOS = "/usr/share/seabios/bios-256k.bin"
BOOT_TIMEOUT = 300  # both boots under TCG, on a loaded 2-core host
LINE_KEYS = ["init-start", "tpm_tis", "tpm-driver", "devtpm", "tpm-version", "eventlog-size", "boot", "action"]
TPM_CASES = {  # name: (swtpm --tpm2?, tpm_tis text, tpm-version, PCR hex digits, QEMU device)
    "tpm2": (True, "2.0 TPM", "2", 64, "tpm-tis"),
    "tpm12": (False, "1.2 TPM", "1", 40, "tpm-tis"),
    "tpm2-crb": (True, "", "2", 64, "tpm-crb"),  # tpm_crb prints no probe line: /init names the driver
    "none": (None, None, None, None, None),
}


def skip(reason):
    print(f"SKIP: {reason}")
    sys.exit(77)


def boots(output):
    """The NIGHTLY lines of each boot: [{"key": value, "pcr": {n: hex}}, ...]."""
    result = []
    for line in output.splitlines():
        m = re.match(r"NIGHTLY: (\S+) ?(.*?)\s*$", line)
        if not m:
            continue
        key, value = m.groups()
        if key == "init-start":
            result.append({"pcr": {}})
        if not result:
            continue
        if key == "pcr":
            n, _, hexval = value.partition(" ")
            result[-1]["pcr"][n] = hexval
        else:
            result[-1].setdefault(key, []).append(value)
    return result


def check_ppi(boot, number, tpm2, has_tpm):
    """/init's PPI lines under QEMU with SeaBIOS: QEMU offers the _DSM (Linux shows ppi/ 1.3) but its
    operation table stays empty (only OVMF fills it), so /init's request is refused and nothing
    runs at the reboot: no response, and the TPM 2.0's persistent key survives. This is the
    reference minivmm's nightly 'ppi' case differs from (there the request runs)."""
    value = lambda key: (boot.get(key) or ["missing"])[0]  # noqa: E731
    if not has_tpm:
        return [] if value("ppi-version") == "none" else [f"ppi-version {value('ppi-version')!r} without a TPM"]
    problems = []
    if value("ppi-version") != "1.3":
        problems.append(f"ppi-version {value('ppi-version')!r}, expected 1.3 (QEMU's _DSM)")
    persistent = value("ppi-persistent")
    if tpm2 and not (persistent.startswith("ok") and "0x81000001" in persistent):
        problems.append(f"ppi-persistent {persistent!r}: the persistent key is not listed")
    if number == 1:
        if tpm2 and "ppi-persist PASS" not in boot.get("check", []):
            problems.append(f"ppi-persist did not pass: {boot.get('check')}")
        if value("ppi-submit") != "FAIL" or value("ppi-operations") != "":
            problems.append(f"QEMU accepted a PPI request ({value('ppi-submit')!r}, operations "
                            f"{value('ppi-operations')!r}): its table is OVMF's to fill")
    elif value("ppi-response") != "0: No Recent Request":
        problems.append(f"ppi-response {value('ppi-response')!r}, expected '0: No Recent Request'")
    return problems


def check_boot(boot, number, case):
    tpm2, tis_text, version, digits, device = TPM_CASES[case]
    problems = [f"NIGHTLY {k}: expected one line, got {boot.get(k)}" for k in LINE_KEYS if len(boot.get(k, [])) != 1]
    if problems:
        return problems
    one = {k: boot[k][0] for k in LINE_KEYS}
    expect = {"boot": str(number), "action": "reboot" if number == 1 else "poweroff"}
    if tis_text is None:
        expect.update({"tpm_tis": "none", "tpm-driver": "none", "devtpm": "none", "tpm-version": "none",
                       "eventlog-size": "none"})
    else:
        expect["tpm-version"] = version
        expect["tpm-driver"] = device.replace("-", "_")  # tpm_tis or tpm_crb
        if not tis_text:
            expect["tpm_tis"] = "none"
        elif tis_text not in one["tpm_tis"] or not one["tpm_tis"].startswith("tpm_tis "):
            problems.append(f"tpm_tis line {one['tpm_tis']!r} does not say {tis_text!r}")
        if not re.search(r"/dev/tpm0(;|$)", one["devtpm"]):
            problems.append(f"devtpm {one['devtpm']!r} has no /dev/tpm0")
        if not one["eventlog-size"].isdigit() or int(one["eventlog-size"]) == 0:
            problems.append(f"eventlog-size {one['eventlog-size']!r} is not a positive number")
        pcrs = boot["pcr"]
        if sorted(pcrs, key=int) != [str(n) for n in range(10)]:
            problems.append(f"PCR lines for {sorted(pcrs, key=int)}, expected 0-9")
        # PCR 8 and 9 hold what a boot loader (or minivmm's -kernel) measures; syslinux measures nothing.
        if any(pcrs.get(n, "0") != "0" * digits for n in ("8", "9")):
            problems.append(f"PCR 8/9 of a syslinux boot are not zero: {pcrs.get('8')}, {pcrs.get('9')}")
        bad = {n: v for n, v in pcrs.items() if not re.fullmatch(f"[0-9a-f]{{{digits}}}", v)}
        if bad:
            problems.append(f"PCRs not {digits} lower-case hex digits: {bad}")
        if pcrs.get("0", "0") == "0" * digits:
            problems.append("PCR 0 is zero: the firmware measured nothing")
    problems += [f"{k} is {one[k]!r}, expected {v!r}" for k, v in expect.items() if one[k] != v]
    problems += check_ppi(boot, number, tpm2, tis_text is not None)
    if not re.fullmatch(r"uptime=\d+\.\d+", one["init-start"]):
        problems.append(f"init-start {one['init-start']!r} is not uptime=<seconds>")
    return problems


def check_layout(image):
    with open(image, "rb") as f:
        mbr = f.read(512)
        f.seek(-512, os.SEEK_END)
        flag = f.read(512)
        size = f.tell()
    problems = []
    if mbr[510:] != b"\x55\xaa":
        problems.append("no MBR signature")
    status, ptype, start, count = mbr[446], mbr[450], *struct.unpack_from("<II", mbr, 454)
    if (status, ptype, start) != (0x80, 0x0E, 2048) or start + count != size // 512 - 1:
        problems.append(f"partition 1: status {status:#x} type {ptype:#x} start {start} count {count}")
    if any(mbr[462:510]):
        problems.append("partitions 2-4 are not empty")
    if not flag.startswith(b"NIGHTLY-BOOT-FLAG=0\n"):
        problems.append(f"flag sector starts {flag[:24]!r}")
    if shutil.which("mdir"):
        listing = subprocess.run(["mdir", "-a", "-b", "-i", f"{image}@@{2048 * 512}", "::/"], capture_output=True,
                                 text=True, env=dict(os.environ, MTOOLS_SKIP_CHECK="1")).stdout.lower()
        missing = [n for n in ["syslinux.cfg", "ldlinux.sys", "ldlinux.c32", "vmlinuz", "initrd.gz"]
                   if f"::/{n}" not in listing.split()]
        if missing:
            problems.append(f"FAT partition lacks {missing}: {listing.split()}")
    return problems


def run_qemu(image, extra_args):
    cmd = ["qemu-system-x86_64", "-accel", "tcg", "-M", "pc", "-m", "512", "-nographic", "-nodefaults",
           "-serial", "stdio", "-bios", BIOS, *extra_args, "-drive", f"if=virtio,format=raw,file={image}"]
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env=qemu_env(), timeout=BOOT_TIMEOUT)
        return proc.stdout.decode("latin-1"), proc.returncode, time.monotonic() - start
    except subprocess.TimeoutExpired as e:
        return (e.stdout or b"").decode("latin-1"), None, time.monotonic() - start


def boot_case(image, case, workdir, name):
    """Problems found booting a copy of image with the case's TPM, and the QEMU wall time; the copy,
    the swtpm state and the serial log are named after name."""
    copy = os.path.join(workdir, f"{name}.img")
    shutil.copyfile(image, copy)
    tpm2 = TPM_CASES[case][0]
    swtpm = None
    if tpm2 is not None:
        tpmdir = os.path.join(workdir, f"{name}-swtpm")
        os.mkdir(tpmdir)
        swtpm = Swtpm(tpmdir, tpm2, sock_name="sock", output="log")
    try:
        output, rc, elapsed = run_qemu(copy, swtpm.qemu_args(TPM_CASES[case][4]) if swtpm else [])
    finally:
        if swtpm:
            swtpm.close()
    with open(os.path.join(workdir, f"{name}.log"), "w") as f:
        f.write(output)
    problems = []
    if rc is None:
        problems.append(f"QEMU still running after {BOOT_TIMEOUT} s (no power-off)")
    elif rc != 0:
        problems.append(f"QEMU exited with status {rc}")
    found = boots(output)
    if len(found) != 2:
        problems.append(f"{len(found)} boots reached /init, expected 2")
    for number, boot in enumerate(found[:2], 1):
        problems += [f"boot {number}: {p}" for p in check_boot(boot, number, case)]
    if len(found) == 2 and TPM_CASES[case][1] and found[0]["pcr"] != found[1]["pcr"]:
        problems.append("boot 2's PCRs differ from boot 1's: the TPM did not start over at the reset")
    with open(copy, "rb") as f:
        f.seek(-512, os.SEEK_END)
        if not f.read(20).startswith(b"NIGHTLY-BOOT-FLAG=0"):
            problems.append("the flag sector was not reset to 0 by boot 2")
    if problems:
        tail = "\n".join(output.splitlines()[-25:])
        problems.append(f"serial output (last lines; whole log in {workdir}/{name}.log):\n{tail}")
    return problems, elapsed


def report(name, problems, seconds):
    print(f"{'PASS' if not problems else 'FAIL'} {name} {seconds:.1f}s", flush=True)
    for p in problems:
        print(f"  {p}")
    return not problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build_script")
    ap.add_argument("--kernels", default=os.environ.get("MINIVMM_GUEST_KERNELS") or "debian")
    ap.add_argument("--keep", help="keep images and serial logs in this directory")
    args = ap.parse_args()
    for tool in ["qemu-system-x86_64", "swtpm"]:
        if not shutil.which(tool):
            skip(f"{tool} not installed")
    if not os.path.exists(BIOS):
        skip(f"{BIOS} missing (seabios)")
    if os.geteuid() != 0 and not all(shutil.which(t) for t in ["mformat", "mcopy", "syslinux"]):
        skip("mtools/syslinux missing and not root to install them")

    workdir = args.keep or tempfile.mkdtemp(prefix="guest-image-")
    os.makedirs(workdir, exist_ok=True)
    passed = failed = 0
    try:
        for kernel in args.kernels.split(","):
            image = os.path.join(workdir, f"guest-linux-{kernel}.img")
            start = time.monotonic()
            build = subprocess.run([sys.executable, args.build_script, "--kernel", kernel, "--out", image,
                                    "--work", os.path.join(workdir, "work")])
            problems = (check_layout(image) if build.returncode == 0
                        else [f"build-guest-image exited with status {build.returncode}"])
            ok = report(f"{kernel}-build", problems, time.monotonic() - start)
            passed, failed = passed + ok, failed + (not ok)
            if not ok:
                continue
            for case in TPM_CASES:
                problems, elapsed = boot_case(image, case, workdir, f"{kernel}-{case}")
                ok = report(f"{kernel}-{case}", problems, elapsed)
                passed, failed = passed + ok, failed + (not ok)
    finally:
        shutil.rmtree(os.path.join(workdir, "work"), ignore_errors=True)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    if passed + failed == 0:
        print("FAIL no case ran")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
