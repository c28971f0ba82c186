#!/usr/bin/env python3
"""-tpm-swtpm DIR on KVM with the real swtpm and swtpm_setup: the first run manufactures the TPM
(its EK certificate, read on the host with tpm2_getekcertificate, verifies with openssl against
the local CA, this test's own under $XDG_CONFIG_HOME), the second reuses it (no manufacturing, the
same EK certificate), and swtpm is gone after minivmm exits by power-off, SIGTERM, SIGKILL and a
guest crash (exit 5); with -runas nobody swtpm runs as nobody. Bad input: swtpm not in PATH, a DIR
of the other TPM version, a DIR in use: exit 6, one line, nothing left running, nothing created.
(TPM 1.2 manufacturing: tests/unit/test_managed_swtpm.cpp.)

usage: test_tpm_swtpm.py MINIVMM TEST_GUEST_BIN MKIMAGE_PY"""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

from tests.harness import suite
from tests.harness import swtpm

BIOS = suite.BIOS
# A boot sector that enters 32-bit protected mode and jumps to 0xFED40000 (GNU as, .code16 at 0x7c00):
#   cli; lgdtl %cs:0x7c30; mov %cr0,%eax; or $1,%al; mov %eax,%cr0; ljmpl $8,$0x7c18
#   0x7c18: mov $0xfed40000,%eax; jmp *%eax
#   0x7c20: GDT (null, flat 4 GiB code segment); 0x7c30: its descriptor (limit 15, base 0x7c20)
CRASH = bytes.fromhex("fa2e660f0116307c0f20c00c010f22c066ea187c00000800b80000d4feffe090"
                      "0000000000000000ffff0000009acf000f00207c0000")
TPM_CHECKS = ("tpm-acpi", "tpm-tis-regs", "tpm-cmd", "tpm-eventlog")


def all_pass(out):
    return not re.search(r"MVG: \S+ FAIL", out) and re.search(r"MVG: DONE pass=\d+ fail=0", out) is not None


def one_error_line(r):
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    return lines[0] if len(lines) == 1 and lines[0].startswith("minivmm: error: ") else None


def swtpm_pids(directory):
    """Every process on the host whose command line names swtpm and `directory`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if cmd and os.path.basename(cmd[0]) in (b"swtpm", b"swtpm_setup") and any(directory.encode() in a for a in cmd):
            pids.append(int(entry))
    return pids


def gone_within(directory, seconds):
    deadline = time.monotonic() + seconds
    while swtpm_pids(directory) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not swtpm_pids(directory)


def boot_sector_image(path, code):
    """A disk whose boot sector is `code`: SeaBIOS runs it after its TPM measurements."""
    sector = bytearray(512)
    sector[:len(code)] = code
    sector[510:512] = b"\x55\xaa"
    with open(path, "wb") as f:
        f.write(sector)
        f.truncate(1 << 20)
    return path


def start_and_wait_for_swtpm(cmd, directory):
    """Starts minivmm; returns it once its swtpm runs and the guest got past SeaBIOS's banner."""
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = b""
    while b"Booting from Hard Disk" not in out:
        chunk = os.read(p.stdout.fileno(), 4096)
        if not chunk:
            break
        out += chunk
    return p, out


def ek_certificate(directory, s):
    """The RSA EK certificate (NV 0x01c00002) in `directory`'s TPM, read on the host with swtpm and
    tpm2_getekcertificate (DER); a str (its error) if it cannot be read."""
    if not shutil.which("tpm2_getekcertificate"):
        print("tpm2_getekcertificate missing: the EK certificate is not read on the host")
        return None
    sock = os.path.join(s.tmp.name, "ek.sock")
    ctrl = sock + ".ctrl"  # where tss2's swtpm TCTI looks for it
    for path in (sock, ctrl):
        if os.path.exists(path):
            os.unlink(path)
    # The sockets outside DIR: a file of ours there would make minivmm refuse the directory.
    p = swtpm.start(directory, ctrl, True, output=subprocess.PIPE, server=sock, flags="not-need-init,startup-clear")
    try:
        if not swtpm.wait_listening(ctrl, p):
            return f"swtpm did not start on {directory}"
        out = os.path.join(s.tmp.name, "ek.der")
        r = subprocess.run(["tpm2_getekcertificate", "-T", f"swtpm:path={sock}", "-o", out],
                           capture_output=True, timeout=30)
        return open(out, "rb").read() if r.returncode == 0 else r.stderr.decode()
    finally:
        subprocess.run(["swtpm_ioctl", "--unix", ctrl, "-s"], capture_output=True, timeout=10)
        p.communicate(timeout=10)


def main():
    minivmm, program, mkimage = sys.argv[1:4]
    s = suite.Suite()
    for tool in ("swtpm", "swtpm_setup"):
        if not shutil.which(tool):
            print(f"SKIP: {tool} is not installed (apt-get install swtpm swtpm-tools)")
            sys.exit(suite.SKIP)
    directory = os.path.join(s.tmp.name, "tpm")
    # swtpm_setup's configuration, and so the local CA, from $XDG_CONFIG_HOME (swtpm_setup(8)): this
    # test's own CA, in a writable place (the nested VM sees the host's /var/lib read-only).
    os.environ["XDG_CONFIG_HOME"] = os.path.join(s.tmp.name, "xdg")
    os.mkdir(os.environ["XDG_CONFIG_HOME"])
    subprocess.run(["swtpm_setup", "--create-config-files", "root,skip-if-exist"], check=True, capture_output=True)
    localca = os.path.join(os.environ["XDG_CONFIG_HOME"], "var/lib/swtpm-localca")

    # swtpm not in PATH: exit 6, one line, the directory not created.
    basic = os.path.join(s.tmp.name, "basic-2.0.img")
    subprocess.run([sys.executable, mkimage, "--program", program, "--out", basic, "--mode", "basic", "--tpm", "2.0"],
                   check=True)
    env = dict(os.environ, PATH="/nonexistent")
    p = subprocess.run([minivmm, "-bios", BIOS, "-tpm-swtpm", directory, basic], env=env, capture_output=True, text=True)
    s.check("swtpm not in PATH: exit 6, one line naming it, no directory",
            p.returncode == 6 and one_error_line(p) is not None and "swtpm is not in PATH" in p.stderr
            and not os.path.exists(directory), p.stderr)
    if not suite.kvm_usable():
        s.finish()

    # Run 1: manufactured, every TPM check passes, swtpm gone after the power-off.
    base = [minivmm, "-bios", BIOS, "-tpm-swtpm", directory]
    r = suite.run(base + ["-d", "info", basic])
    s.check(f"run 1 ({r.seconds:.1f} s): manufactures the TPM, the guest's TPM checks pass, exit 0",
            r.returncode == 0 and all_pass(r.stdout) and all(f"MVG: {c} PASS" in r.stdout for c in TPM_CHECKS)
            and "manufacturing a TPM 2.0" in r.stderr, r)
    s.check("run 1: swtpm gone after the power-off", gone_within(directory, 1), swtpm_pids(directory))
    s.check("run 1: DIR holds the TPM, no work directory left", os.path.isfile(os.path.join(directory, "tpm2-00.permall"))
            and not os.path.exists(os.path.join(directory, ".minivmm-manufacturing")), os.listdir(directory))
    cert1 = ek_certificate(directory, s)
    if cert1 is not None:
        s.check("the EK certificate is in NV index 0x01c00002", isinstance(cert1, bytes) and len(cert1) > 500, cert1)
        if isinstance(cert1, bytes):
            der = os.path.join(s.tmp.name, "ek.der")
            pem = os.path.join(s.tmp.name, "ek.pem")
            subprocess.run(["openssl", "x509", "-inform", "DER", "-in", der, "-out", pem], check=True)
            v = subprocess.run(["openssl", "verify", "-CAfile",
                                os.path.join(localca, "swtpm-localca-rootca-cert.pem"), "-untrusted",
                                os.path.join(localca, "issuercert.pem"), pem], capture_output=True, text=True)
            s.check("the EK certificate verifies against swtpm's local CA", v.returncode == 0, v.stdout + v.stderr)

    # Run 2: the same TPM, not manufactured again.
    r = suite.run(base + ["-d", "info", basic])
    s.check(f"run 2 ({r.seconds:.1f} s): reuses the TPM (no manufacturing), checks pass",
            r.returncode == 0 and all_pass(r.stdout) and "manufacturing" not in r.stderr, r)
    if isinstance(cert1, bytes):
        s.check("run 2: the same EK certificate", ek_certificate(directory, s) == cert1)

    # A guest that spins: SIGTERM, a second minivmm on the DIR, SIGKILL.
    spin = boot_sector_image(os.path.join(s.tmp.name, "spin.img"), b"\xeb\xfe")  # jmp $
    p, _ = start_and_wait_for_swtpm(base + [spin], directory)
    s.check("while minivmm runs, its swtpm runs", len(swtpm_pids(directory)) == 1, swtpm_pids(directory))
    r = suite.run(base + [basic], 60)
    s.check("a second minivmm on the DIR: exit 6, one line naming the first's pid, nothing started",
            r.returncode == 6 and one_error_line(r) == f"minivmm: error: swtpm state directory {directory} is in use "
                                                       f"by another minivmm (pid {p.pid})"
            and len(swtpm_pids(directory)) == 1, r)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    s.check("SIGTERM: exit 143, swtpm gone", p.returncode == 143 and gone_within(directory, 1),
            f"exit {p.returncode}, {swtpm_pids(directory)}\n{err.decode()}")
    p, _ = start_and_wait_for_swtpm(base + [spin], directory)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    s.check("SIGKILL: swtpm gone within 2 s", gone_within(directory, 2), swtpm_pids(directory))

    # -runas nobody (as root): swtpm runs as nobody, DIR and its files are nobody's.
    if os.geteuid() == 0:
        import pwd
        nobody = pwd.getpwnam("nobody").pw_uid
        dir_nobody = os.path.join(s.tmp.name, "tpm-nobody")
        r = suite.run([minivmm, "-bios", BIOS, "-runas", "nobody", "-tpm-swtpm", dir_nobody, basic], 60)
        s.check("-runas nobody, DIR under a directory nobody cannot enter: exit 6, one line naming it",
                r.returncode == 6 and one_error_line(r) is not None and "cannot reach swtpm state directory" in r.stderr
                and f"{s.tmp.name} (mode 0700)" in r.stderr and not swtpm_pids(dir_nobody), r)
        os.chmod(s.tmp.name, 0o711)  # now nobody can reach DIR
        p, _ = start_and_wait_for_swtpm([minivmm, "-bios", BIOS, "-runas", "nobody", "-tpm-swtpm", dir_nobody, spin],
                                        dir_nobody)
        uids = []
        for pid in swtpm_pids(dir_nobody):
            with open(f"/proc/{pid}/status") as f:
                uids += [int(l.split()[1]) for l in f if l.startswith("Uid:")]
        owners = {os.stat(os.path.join(dir_nobody, n)).st_uid for n in os.listdir(dir_nobody) + ["."]}
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=30)
        s.check("-runas nobody: swtpm runs as nobody, DIR and its files are nobody's, gone after SIGTERM",
                uids == [nobody] and owners == {nobody} and p.returncode == 143 and gone_within(dir_nobody, 1),
                f"uids {uids}, owners {owners}, exit {p.returncode}\n{err.decode()}")

    # A guest crash: code fetched from MMIO (the TPM's registers), which KVM cannot execute: exit 5, swtpm gone.
    crash = boot_sector_image(os.path.join(s.tmp.name, "crash.img"), CRASH)
    r = suite.run(base + [crash], 60)
    s.check("guest crash: exit 5, swtpm gone", r.returncode == 5 and gone_within(directory, 1), r)

    # The other version: refused before anything starts.
    r = suite.run(base + ["-tpm-version", "1.2", basic], 60)
    s.check("the 2.0 DIR as -tpm-version 1.2: exit 6, one line, nothing started",
            r.returncode == 6 and one_error_line(r) == f"minivmm: error: swtpm state directory {directory} holds a "
            f"TPM 2.0 (tpm2-00.permall), not the TPM 1.2 asked for; use -tpm-version 2.0, or give another directory"
            and not swtpm_pids(directory), r)

    s.finish()


if __name__ == "__main__":
    main()
