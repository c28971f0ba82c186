#!/usr/bin/env python3
"""Soak test on KVM: the guest resets itself N times in a row (tests/guest --mode reset-loop) with
a TPM 2.0, from a real swtpm (-tpm-sock) and from the in-process libtpms (-tpm-state). Every
SeaBIOS run must start the TPM cleanly: each boot passes all its guest checks, the TPM ones
included (tpm-eventlog replays only that boot's log, so the TPM really was power-cycled). At each
boot minivmm's open file descriptors (/proc/PID/fd) must be exactly as many as at the first boot,
its threads too, and its resident memory (VmRSS) must stay within 2 MiB of the second boot's.

swtpm exits when minivmm exits (minivmm sends CMD_SHUTDOWN), so the swtpm soak runs several
times, each with a fresh swtpm process on the same state directory; between runs another swtpm
on that directory answers TPM2_ReadClock, whose resetCount (kept in the TPM's NV, one more per
TPM2_Startup(CLEAR)) must have grown by exactly the number of boots: the state persisted.

usage: test_soak.py MINIVMM TEST_GUEST_BIN MKIMAGE_PY [--resets N] [--runs R]
       (or MINIVMM_SOAK_RESETS / MINIVMM_SOAK_RUNS; defaults 5 resets, 2 swtpm runs)"""
import argparse
import os
import re
import shutil
import socket
import struct
import subprocess
import sys

from tests.harness import suite, swtpm, vmm
from tests.harness.swtpm import Swtpm, SwtpmError

BIOS = suite.BIOS
TPM_CHECKS = ("tpm-acpi", "tpm-tis-regs", "tpm-cmd", "tpm-eventlog")
RSS_SLACK_KIB = 2048
BOOT_LINE = re.compile(rb"MVG: config PASS mode=reset-loop boot=(\d+)")


def proc_sample(pid):
    """(open fds, VmRSS KiB, threads) of a running process."""
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    status = open(f"/proc/{pid}/status").read()
    rss = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))
    threads = int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1))
    return fds, rss, threads


def run_sampled(cmd, timeout):
    """Runs minivmm and samples it whenever a boot's config line appears (the machine is fully
    built then, and the guest has seconds of checks ahead). Returns (exit status, stdout, stderr,
    {boot: (fds, rss, threads)})."""
    samples = {}
    seen = [0]

    def sample(out, proc):
        boots = BOOT_LINE.findall(out)
        for b in boots[seen[0]:]:
            try:
                samples[int(b)] = proc_sample(proc.pid)
            except (OSError, AttributeError):
                pass  # exited meanwhile: the missing sample fails the check
        seen[0] = len(boots)

    r = vmm.run(cmd, timeout, on_output=sample)
    return r.returncode, r.text, r.stderr, samples


def split_boots(out):
    """The guest's output of each boot, cut at SeaBIOS's banner."""
    parts = out.split("SeaBIOS (version")
    return parts[1:]


def read_reset_count(state_dir, sock_dir):
    """Starts an swtpm on state_dir that sends TPM2_Startup(CLEAR) itself, asks TPM2_ReadClock
    (TPM 2.0 Part 3 §29.1: TPMS_TIME_INFO = time u64, clock u64, resetCount u32, restartCount u32,
    safe u8) and stops it. Returns resetCount, or raises."""
    data = os.path.join(sock_dir, "clock-data")
    ctrl = os.path.join(sock_dir, "clock-ctrl")
    for path in (data, ctrl):
        if os.path.exists(path):
            os.unlink(path)
    p = swtpm.start(state_dir, ctrl, True, server=data, flags="not-need-init,startup-clear")
    try:
        swtpm.wait_listening(data, p)  # the connect below reports a failure
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(data)
            s.sendall(struct.pack(">HII", 0x8001, 10, 0x00000181))  # TPM_ST_NO_SESSIONS, TPM_CC_ReadClock
            rsp = b""
            while len(rsp) < 10 or len(rsp) < struct.unpack_from(">I", rsp, 2)[0]:
                chunk = s.recv(4096)
                if not chunk:
                    break
                rsp += chunk
        tag, size, rc = struct.unpack_from(">HII", rsp)
        if tag != 0x8001 or rc != 0 or size < 35:
            raise RuntimeError(f"TPM2_ReadClock answered {rsp.hex()}")
        return struct.unpack_from(">I", rsp, 26)[0]
    finally:
        p.terminate()
        p.wait()


class Soak:
    def __init__(self, s, minivmm, program, mkimage, resets):
        self.s, self.minivmm, self.program, self.mkimage, self.resets = s, minivmm, program, mkimage, resets

    def image(self, name):
        out = os.path.join(self.s.tmp.name, f"{name}.img")
        subprocess.run([sys.executable, self.mkimage, "--program", self.program, "--out", out, "--mode", "reset-loop",
                        "--resets", str(self.resets), "--tpm", "2.0"], check=True)
        return out

    def run(self, label, tpm_args, image):
        s, n = self.s, self.resets
        boots = n + 1
        status, out, err, samples = run_sampled([self.minivmm, "-bios", BIOS] + tpm_args + [image],
                                                timeout=60 + 30 * boots)
        detail = f"exit {status}\n--- stdout ---\n{out[-3000:]}\n--- stderr ---\n{err[-2000:]}"
        s.check(f"{label}: {n} resets then power-off, exit 0", status == 0, detail)
        parts = split_boots(out)
        s.check(f"{label}: SeaBIOS ran {boots} times", len(parts) == boots, detail)
        bad = []
        for i, part in enumerate(parts, 1):
            fails = re.findall(r"MVG: \S+ FAIL.*", part)
            missing = [c for c in TPM_CHECKS if f"MVG: {c} PASS" not in part]
            ends = f"MVG: reset-request boot={i}" in part if i < boots else \
                re.search(r"MVG: DONE pass=\d+ fail=0", part) is not None
            if fails or missing or f"mode=reset-loop boot={i}" not in part or not ends:
                bad.append(f"boot {i}: fails={fails} missing={missing} ends={ends}")
        s.check(f"{label}: every boot passes every check, the TPM ones included (TPM started cleanly each time)",
                len(parts) == boots and not bad, "\n".join(bad) + "\n" + detail)
        s.check(f"{label}: nothing on stderr", err.strip() == "", err[-2000:])

        got = [samples.get(b) for b in range(1, boots + 1)]
        fds = [g[0] if g else None for g in got]
        rss = [g[1] if g else None for g in got]
        threads = [g[2] if g else None for g in got]
        print(f"    {label}: fds per boot {fds}")
        print(f"    {label}: threads per boot {threads}")
        print(f"    {label}: VmRSS KiB per boot {rss}")
        s.check(f"{label}: sampled at every boot", None not in got, samples)
        if None in got:
            return
        s.check(f"{label}: open fds identical at every boot", len(set(fds)) == 1, fds)
        s.check(f"{label}: threads identical at every boot", len(set(threads)) == 1, threads)
        if boots >= 2:
            base = rss[1]
            s.check(f"{label}: VmRSS within {RSS_SLACK_KIB} KiB of boot 2's at every later boot",
                    max(rss[1:]) - base <= RSS_SLACK_KIB, rss)


def start_swtpm(directory):
    """A real swtpm (TPM 2.0) on `directory`, control socket inside it; a stale socket from the
    previous swtpm is removed first so that the wait below sees the new one."""
    try:
        return Swtpm(directory, True)
    except SwtpmError:
        raise RuntimeError("swtpm did not create its socket") from None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("minivmm")
    parser.add_argument("program")
    parser.add_argument("mkimage")
    parser.add_argument("--resets", type=int, default=int(os.environ.get("MINIVMM_SOAK_RESETS", "5")))
    parser.add_argument("--runs", type=int, default=int(os.environ.get("MINIVMM_SOAK_RUNS", "2")))
    args = parser.parse_args()
    if not 1 <= args.resets <= 1000 or args.runs < 1:
        parser.error("--resets must be 1..1000 and --runs at least 1")
    suite.require_kvm_and_bios()
    if not shutil.which("swtpm"):
        print("SKIP: swtpm is not installed (apt-get install swtpm)")
        sys.exit(suite.SKIP)
    s = suite.Suite()
    soak = Soak(s, args.minivmm, args.program, args.mkimage, args.resets)
    boots = args.resets + 1

    # swtpm: R runs, each with a fresh swtpm on one state directory.
    state = os.path.join(s.tmp.name, "swtpm-state")
    os.mkdir(state)
    previous = None
    for run in range(1, args.runs + 1):
        label = f"swtpm run {run}/{args.runs}"
        tpm = start_swtpm(state)
        try:
            soak.run(label, ["-tpm-sock", tpm.sock], soak.image(f"swtpm-{run}"))
            try:
                tpm.proc.wait(timeout=10)
                exited = True
            except subprocess.TimeoutExpired:
                exited = False
            s.check(f"{label}: swtpm exited by itself when minivmm did (CMD_SHUTDOWN)", exited)
        finally:
            tpm.kill()
        try:
            count = read_reset_count(state, s.tmp.name)
        except (OSError, RuntimeError, struct.error) as e:
            s.check(f"{label}: TPM2_ReadClock on the state directory afterwards", False, str(e))
            previous = None
            continue
        print(f"    {label}: TPM resetCount {count}")
        if previous is None:
            s.check(f"{label}: TPM resetCount counts this run's {boots} boots", count >= boots, count)
        else:
            # This run's boots, plus the ReadClock swtpm's own TPM2_Startup(CLEAR) before.
            s.check(f"{label}: TPM state persisted across swtpm processes (resetCount {previous} -> {count}, "
                    f"+{boots} boots +1 ReadClock start-up)", count == previous + boots + 1, (previous, count))
        previous = count

    # The in-process TPM: the same soak on a -tpm-state directory.
    soak.run("libtpms", ["-tpm-state", os.path.join(s.tmp.name, "libtpms-state")], soak.image("libtpms"))
    s.finish()


if __name__ == "__main__":
    main()
