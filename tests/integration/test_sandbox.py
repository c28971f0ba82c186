#!/usr/bin/env python3
"""The sandbox on KVM (vmm/host/README.md "Sandbox"): a vCPU thread that makes a forbidden system call (the
test-only hook of minivmm-testhooks) is stopped with the documented line and status 7; boots that
exercise every allowlist (basic, reset, -smp, with swtpm and with the in-process TPM, -snapshot and
not, -debugcon file) run to the guest's power-off with the sandbox on; -sandbox off turns it off;
-runas nobody boots with the uid changed. Skips (77) without /dev/kvm.

usage: test_sandbox.py MINIVMM MINIVMM_TESTHOOKS TEST_GUEST_BIN MKIMAGE_PY"""
import fcntl
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time

from tests.harness import suite
from tests.harness.swtpm import Swtpm

BIOS = "/usr/share/seabios/bios-256k.bin"
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
VIOLATION = re.compile(r"^minivmm: error: sandbox: forbidden system call socket \(41\) in vCPU 0; "
                       r"run with -sandbox off to debug$")


def image(s, program, mkimage, name, mode, tpm="none"):
    out = os.path.join(s.tmp.name, f"{name}.img")
    subprocess.run([sys.executable, mkimage, "--program", program, "--out", out, "--mode", mode, "--tpm", tpm],
                   check=True)
    return out


def guest_ok(r, boots=1):
    done = re.findall(r"MVG: DONE pass=\d+ fail=(\d+)", r.stdout)
    return r.returncode == 0 and len(done) == 1 and done[0] == "0" and \
        r.stdout.count("SeaBIOS (version") == boots and "sandbox: seccomp filters active" in r.stderr


def run_watching_uid(cmd, timeout=180):
    """Runs cmd; returns (Run, set of real uids seen in /proc/PID/status while it ran)."""
    start = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    uids = set()
    while p.poll() is None and time.monotonic() - start < timeout:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    if line.startswith("Uid:"):
                        uids.add(int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.05)
    out, err = p.communicate(timeout=max(1, timeout - (time.monotonic() - start)))
    return suite.Run(p.returncode, out.decode(errors="replace"), err.decode(errors="replace"),
                       time.monotonic() - start), uids


def main():
    minivmm, hooks, program, mkimage = sys.argv[1:5]
    s = suite.Suite()

    # Command-line mistakes need no KVM.
    r = suite.run([minivmm, "-sandbox", "maybe", "x.img"])
    s.check("-sandbox maybe: usage error 2, one line", r.returncode == 2 and
            r.stderr.strip().splitlines() == ["minivmm: error: -sandbox: 'maybe' is not on or off (see minivmm --help)"], r)
    r = suite.run([minivmm, "-runas", "no-such-user-here", "x.img"])
    s.check("-runas unknown user: usage error 2 naming the user", r.returncode == 2 and
            len(r.stderr.strip().splitlines()) == 1 and "no such user 'no-such-user-here'" in r.stderr, r)

    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        nobody = None
    # Only root can switch users: as anyone else -runas is refused before anything is opened.
    def become_nobody():
        if os.geteuid() == 0:
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
    try:
        p = subprocess.run([minivmm, "-runas", "nobody", "x.img"], preexec_fn=become_nobody, capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=60) if nobody is not None else None
    except PermissionError:
        p = None  # nobody cannot execute the build tree
    if p is not None:
        err = p.stderr.decode(errors="replace")
        s.check("-runas as non-root: usage error 2 saying root is needed",
                p.returncode == 2 and len(err.strip().splitlines()) == 1 and "only root can switch users" in err,
                f"exit {p.returncode}\n{err}")
    else:
        print("SKIP -runas as non-root: no user nobody, or it cannot run minivmm here")

    if not suite.kvm_usable():
        print(f"{s.passed} passed, {s.failed} failed")
        s.tmp.cleanup()
        sys.exit(suite.SKIP)
    basic = image(s, program, mkimage, "basic", "basic")

    # 1. The test-only hook: vCPU 0 calls socket(AF_INET) right after loading its filter.
    env = dict(os.environ, MINIVMM_TEST_FORBIDDEN_SYSCALL="1")
    p = subprocess.run([hooks, "-bios", BIOS, "-snapshot", basic], env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=180)
    r = suite.Run(p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"), 0)
    lines = r.stderr.strip().splitlines()
    s.check("forbidden call on a vCPU: status 7 and the documented line naming socket",
            r.returncode == 7 and len(lines) == 1 and VIOLATION.match(lines[0]) is not None, r)
    s.check("forbidden call on a vCPU: stopped before the guest ran", "MVG: DONE" not in r.stdout, r)

    # 2. -sandbox off: the same hook's socket() succeeds and the guest runs to its power-off.
    p = subprocess.run([hooks, "-bios", BIOS, "-snapshot", "-sandbox", "off", basic], env=env,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=180)
    r = suite.Run(p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"), 0)
    s.check("-sandbox off: the hook's socket() is allowed and the guest powers off",
            r.returncode == 0 and re.search(r"test hook: socket\(AF_INET\) on vCPU 0 returned \d+", r.stderr)
            and "sandbox:" not in r.stderr and "MVG: DONE pass=" in r.stdout, r)

    # 3. The allowlists are complete: whole boots with the sandbox on (the default).
    r = suite.run([minivmm, "-bios", BIOS, "-d", "info", "-debugcon", f"file:{s.tmp.name}/debugcon.log", basic])
    s.check("sandbox on: basic boot, disk written, -debugcon file", guest_ok(r), r)
    reset = image(s, program, mkimage, "reset", "reset")
    r = suite.run([minivmm, "-bios", BIOS, "-d", "info", "-smp", "2", reset])
    s.check("sandbox on: guest reset rebuilds the machine (-smp 2)", guest_ok(r, boots=2), r)
    reset = image(s, program, mkimage, "reset-snap", "reset")
    r = suite.run([minivmm, "-bios", BIOS, "-d", "info", "-snapshot", reset])
    s.check("sandbox on: guest reset with -snapshot", guest_ok(r, boots=2), r)

    state = os.path.join(s.tmp.name, "tpmstate")
    r = suite.run([minivmm, "-bios", BIOS, "-d", "info", "-tpm-state", state,
                     image(s, program, mkimage, "reset-libtpms", "reset", "2.0")])
    s.check("sandbox on: in-process TPM 2.0 across a reset (state files written)",
            guest_ok(r, boots=2) and os.path.exists(os.path.join(state, "tpm2-00.permall")), r)

    if shutil.which("swtpm"):
        tpm = Swtpm(os.path.join(s.tmp.name, "swtpm"), True, sock_name="sock")
        try:
            r = suite.run([minivmm, "-bios", BIOS, "-d", "info", "-tpm-sock", tpm.sock,
                             image(s, program, mkimage, "reset-swtpm", "reset", "2.0")])
        finally:
            tpm.kill()
        s.check("sandbox on: swtpm TPM 2.0 across a reset", guest_ok(r, boots=2), r)
    else:
        print("SKIP swtpm boot: swtpm is not installed")

    # 4. -runas nobody: everything opened as root, then the uid changes; the state directory is
    # handed to the user so that libtpms can still replace its files.
    if os.geteuid() == 0 and nobody is not None:
        state = os.path.join(s.tmp.name, "runas-state")
        r, uids = run_watching_uid([minivmm, "-bios", BIOS, "-d", "info", "-runas", "nobody", "-tpm-state", state,
                                    image(s, program, mkimage, "runas", "reset", "2.0")])
        s.check("-runas nobody: boots (reset, in-process TPM) with the sandbox on", guest_ok(r, boots=2), r)
        s.check("-runas nobody: the process ran as nobody",
                nobody.pw_uid in uids and f"running as user nobody (uid {nobody.pw_uid}" in r.stderr,
                f"uids seen: {uids}\n{r}")
        owners = {os.stat(os.path.join(state, f)).st_uid for f in os.listdir(state)} | {os.stat(state).st_uid}
        mode = os.stat(state).st_mode & 0o777
        s.check("-runas nobody: the state directory (0700) and its files belong to nobody",
                owners == {nobody.pw_uid} and mode == 0o700, f"owners {owners}, mode {oct(mode)}")
    else:
        print("SKIP -runas: not root, or no user nobody")

    # 5. A stdout nobody reads (a full pipe) must not hang a vCPU in write() with the device lock
    # held: the guest keeps running (its output is dropped) and SIGTERM still ends minivmm with 143.
    loop = os.path.join(s.tmp.name, "reset-loop.img")
    subprocess.run([sys.executable, mkimage, "--program", program, "--out", loop, "--mode", "reset-loop",
                    "--resets", "1000"], check=True)
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, F_SETPIPE_SZ, 4096)
    with open(os.path.join(s.tmp.name, "blocked.err"), "w+b") as err:
        p = subprocess.Popen([minivmm, "-bios", BIOS, "-debugcon", "stdio", "-snapshot", loop],
                             stdin=subprocess.DEVNULL, stdout=write_end, stderr=err)
        os.close(write_end)
        time.sleep(5)
        alive = p.poll() is None
        p.send_signal(signal.SIGTERM)
        start = time.monotonic()
        try:
            code = p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            code = f"still running 10 s after SIGTERM (killed; exit {p.wait()})"
        seconds = time.monotonic() - start
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    os.close(read_end)
    s.check("stdout a full pipe nobody reads: still running after 5 s, SIGTERM ends it with 143 within 3 s",
            alive and code == 143 and seconds < 3, f"running at 5 s: {alive}, exit {code} after {seconds:.1f} s\n{stderr}")
    s.finish()


if __name__ == "__main__":
    main()
