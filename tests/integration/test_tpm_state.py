#!/usr/bin/env python3
"""The in-process TPM's state directory (-tpm-state) at process level, on KVM: the directory is
created 0700 with 0600 files in the documented format (and the EK CA's PEM files), a second
minivmm on the same directory is
refused while the first runs, minivmm SIGKILLed at random moments never leaves a torn or
unloadable state, and a corrupt, truncated or other-version state is refused with exit 6 and one
line naming the file. Without -tpm-sock/-tpm-state the guest sees no TPM and no TPM ACPI table.

usage: test_tpm_state.py MINIVMM TEST_GUEST_BIN MKIMAGE_PY"""
import os
import random
import re
import shutil
import signal
import stat
import struct
import subprocess
import sys
import time
import zlib

from tests.harness import suite

BIOS = "/usr/share/seabios/bios-256k.bin"
TPM_CHECKS = ("tpm-acpi", "tpm-tis-regs", "tpm-cmd", "tpm-eventlog")


def image(s, program, mkimage, tpm):
    out = os.path.join(s.tmp.name, f"basic-{tpm}.img")
    if not os.path.exists(out):
        subprocess.run([sys.executable, mkimage, "--program", program, "--out", out, "--mode", "basic", "--tpm", tpm],
                       check=True)
    return out


def all_pass(out):
    return not re.search(r"MVG: \S+ FAIL", out) and re.search(r"MVG: DONE pass=\d+ fail=0", out) is not None


def check_state_file(path, version):
    """The header documented in vmm/tpm/tpm_state_dir.hpp; returns None or what is wrong."""
    data = open(path, "rb").read()
    if len(data) < 24 or data[:8] != b"MVMTPMST":
        return f"{path}: no header ({len(data)} bytes)"
    fmt, ver, length, crc = struct.unpack_from("<IIII", data, 8)
    if fmt != 1 or ver != (20 if version == "2.0" else 12):
        return f"{path}: format {fmt}, version {ver}"
    if len(data) != 24 + length:
        return f"{path}: {len(data)} bytes, header says {24 + length}"
    if zlib.crc32(data[24:], zlib.crc32(data[:20])) != crc:
        return f"{path}: checksum mismatch"
    return None


def state_files(directory):
    """The TPM's state files (the EK CA's ek-ca.* beside them are PEM: check_ca_file)."""
    return sorted(n for n in os.listdir(directory) if not n.startswith(".") and not n.startswith("ek-ca."))


CA_FILES = {"ek-ca.key": (0o600, "PRIVATE KEY"), "ek-ca.pem": (0o600, "CERTIFICATE")}


def check_ca_file(path):
    """A whole PEM block of the kind and mode vmm/tpm/README.md "EK certificates" gives (0600 both:
    minivmm's umask is 077 whatever the caller's); returns None or what is wrong."""
    mode, kind = CA_FILES[os.path.basename(path)]
    text = open(path, encoding="ascii", errors="replace").read()
    if stat.S_IMODE(os.stat(path).st_mode) != mode:
        return f"{path}: mode {oct(stat.S_IMODE(os.stat(path).st_mode))}, want {oct(mode)}"
    if not re.fullmatch(f"-----BEGIN {kind}-----\n[A-Za-z0-9+/=\n]+-----END {kind}-----\n", text):
        return f"{path}: not one whole PEM {kind} ({len(text)} bytes)"
    return None


def one_error_line(r):
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    return lines[0] if len(lines) == 1 and lines[0].startswith("minivmm: error: ") else None


def main():
    minivmm, program, mkimage = sys.argv[1:4]
    s = suite.Suite()

    # Usage errors need no KVM.
    disk = image(s, program, mkimage, "none")
    r = suite.run([minivmm, "-tpm-sock", "/x", "-tpm-state", os.path.join(s.tmp.name, "d"), disk], 30)
    line = one_error_line(r)
    s.check("-tpm-sock with -tpm-state: exit 2, one line", r.returncode == 2 and line and "mutually exclusive" in line, r)
    r = suite.run([minivmm, "-tpm-version", "1.2", disk], 30)
    line = one_error_line(r)
    s.check("-tpm-version without -tpm-state: exit 2", r.returncode == 2 and line and "only valid with -tpm-state" in line, r)
    r = suite.run([minivmm, "-tpm-state", "d", "-tpm-version", "3", disk], 30)
    s.check("-tpm-version 3: exit 2", r.returncode == 2 and "is not 1.2 or 2.0" in r.stderr, r)
    s.check("no TPM state directory was created by the refused runs", not os.path.exists(os.path.join(s.tmp.name, "d")))

    if not suite.kvm_usable():
        s.finish()

    # No TPM option: no TPM, no TPM2/TCPA table, no TPM device in the DSDT.
    r = suite.run([minivmm, "-bios", BIOS, disk])
    s.check("no TPM option: boots, tpm-acpi sees no TPM table", r.returncode == 0 and all_pass(r.stdout) and
            re.search(r"MVG: tpm-acpi PASS no TPM2/TCPA table", r.stdout) is not None, r)

    for version in ("2.0", "1.2"):
        img = image(s, program, mkimage, version)
        parent = os.path.join(s.tmp.name, f"parent-{version}")
        os.mkdir(parent)
        directory = os.path.join(parent, "mytpm")
        base = [minivmm, "-bios", BIOS, "-tpm-state", directory, "-tpm-version", version]
        prefix = "tpm2-00" if version == "2.0" else "tpm-00"

        # First run: the directory is created, the guest's TPM checks pass.
        os.umask(0o022)
        r = suite.run(base + [img])
        s.check(f"TPM {version}: first boot with a fresh directory passes every check",
                r.returncode == 0 and all_pass(r.stdout) and all(f"MVG: {c} PASS" in r.stdout for c in TPM_CHECKS), r)
        s.check(f"TPM {version}: nothing on stderr", r.stderr.strip() == "", r.stderr)
        mode = stat.S_IMODE(os.stat(directory).st_mode)
        s.check(f"TPM {version}: directory mode 0700", mode == 0o700, oct(mode))
        files = state_files(directory)
        s.check(f"TPM {version}: permanent and (clean exit) volatile state written",
                files == [f"{prefix}.permall", f"{prefix}.volatilestate"], files)
        for name in files:
            path = os.path.join(directory, name)
            s.check(f"TPM {version}: {name} is 0600 with a valid header and checksum",
                    stat.S_IMODE(os.stat(path).st_mode) == 0o600 and check_state_file(path, version) is None,
                    check_state_file(path, version))
        # The EK certificates' CA beside the state (made at the first start; TPM 1.2 too).
        ca = sorted(n for n in os.listdir(directory) if n.startswith("ek-ca."))
        s.check(f"TPM {version}: the EK CA's files: {ca}", ca == sorted(CA_FILES), ca)
        for name in ca:
            problem = check_ca_file(os.path.join(directory, name))
            s.check(f"TPM {version}: {name} is one whole PEM block, mode {oct(CA_FILES[name][0])}", problem is None, problem)

        # A second minivmm on the same directory while the first runs.
        p = subprocess.Popen(base + [img], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out = b""
        while b"SeaBIOS (version" not in out:
            chunk = os.read(p.stdout.fileno(), 4096)
            if not chunk:
                break
            out += chunk
        r = suite.run(base + [img], 60)
        line = one_error_line(r)
        s.check(f"TPM {version}: a second minivmm on the directory: exit 6, one line naming it and the first's pid",
                r.returncode == 6 and line == f"minivmm: error: TPM state directory {directory} is in use by another "
                                              f"minivmm (pid {p.pid})", r)
        rest, err = p.communicate(timeout=120)
        s.check(f"TPM {version}: the first one is unaffected", p.returncode == 0 and all_pass((out + rest).decode()),
                f"exit {p.returncode}\n{err.decode()}")

        # SIGKILL at random moments (start-up, SeaBIOS's TPM commands, the guest, the exit's volatile
        # save): afterwards every file is complete, and the next run loads it and passes.
        rng = random.Random(7 if version == "2.0" else 12)
        torn = []
        for i in range(8):
            p = subprocess.Popen(base + [img], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
            time.sleep(rng.uniform(0.0, 4.0))
            p.send_signal(signal.SIGKILL)
            _, err = p.communicate()
            if err.strip():
                torn.append(f"kill {i}: the run complained: {err.decode()}")
            for name in os.listdir(directory):
                if name.endswith(".tmp") or name.startswith("."):
                    continue  # an interrupted write (removed by the next open), the lock file
                path = os.path.join(directory, name)
                problem = check_ca_file(path) if name in CA_FILES else check_state_file(path, version)
                if problem:
                    torn.append(f"kill {i}: {problem}")
        s.check(f"TPM {version}: 8 SIGKILLs left only complete state files", not torn, "\n".join(torn))
        r = suite.run(base + [img])
        s.check(f"TPM {version}: after the kills the state loads and the guest passes",
                r.returncode == 0 and all_pass(r.stdout) and r.stderr.strip() == "", r)
        s.check(f"TPM {version}: no temporary file left", not any(n.endswith(".tmp") for n in os.listdir(directory)),
                os.listdir(directory))

        # Corrupt, truncated, other version: exit 6 and one line naming the file.
        permall = os.path.join(directory, f"{prefix}.permall")
        good = open(permall, "rb").read()
        bad = bytearray(good)
        bad[len(bad) // 2] ^= 0xFF
        open(permall, "wb").write(bad)
        r = suite.run(base + [img], 60)
        s.check(f"TPM {version}: flipped byte: exit 6, one line",
                r.returncode == 6 and one_error_line(r) == f"minivmm: error: TPM state file {permall} is corrupt "
                                                           f"(checksum mismatch); move it away to start a fresh TPM", r)
        open(permall, "wb").write(good[:len(good) - 10])
        r = suite.run(base + [img], 60)
        s.check(f"TPM {version}: truncated: exit 6, one line",
                r.returncode == 6 and one_error_line(r) and f"{permall} is corrupt (truncated" in one_error_line(r), r)
        open(permall, "wb").write(good)
        other = "1.2" if version == "2.0" else "2.0"
        r = suite.run([minivmm, "-bios", BIOS, "-tpm-state", directory, "-tpm-version", other, img], 60)
        s.check(f"TPM {version} state used as TPM {other}: exit 6, one line saying which version it holds",
                r.returncode == 6 and one_error_line(r) == f"minivmm: error: TPM state directory {directory} holds TPM "
                f"{version} state ({prefix}.permall), not TPM {other}; use -tpm-version {version} or another "
                f"-tpm-state directory", r)
        s.check(f"TPM {version}: the refused runs left the state alone", open(permall, "rb").read() == good)
        shutil.rmtree(parent)

    s.finish()


if __name__ == "__main__":
    main()
