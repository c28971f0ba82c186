#!/usr/bin/env python3
"""The nested-KVM runner (scripts/kvm-vm) and the scripts around it, on the host:

- kvm-vm runs a command in the L1 VM with a real /dev/kvm (char 10,232), in the same cwd, with the
  environment and --env passed, the cwd (on /tmp) shared writable, a fresh /tmp of its own, a clock
  that is not the host's raw TSC; stdout and stderr arrive; a soft lockup longer than the VM's life
  (a clock step) is a warning, not a hang; the command's exit status comes back; --timeout stops it with 125 and one line;
  a bad --env is a usage error (2);
- scripts/with-kvm --mode names the mode; MINIVMM_KVM=bogus is refused;
- scripts/bench-boot exits 1 with the VMM's own error when a run fails (a fake VMM that fails).

Skips (77) only without qemu-system-x86_64. usage: test_nested_kvm.py"""
import os
import shutil
import subprocess
import sys
import tempfile

from tests.harness import suite

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KVM_VM = os.path.join(ROOT, "scripts", "kvm-vm")
WITH_KVM = os.path.join(ROOT, "scripts", "with-kvm")
BENCH_BOOT = os.path.join(ROOT, "scripts", "bench-boot")


def run(cmd, timeout, cwd=None, env=None):
    p = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout)
    return suite.Run(p.returncode, p.stdout, p.stderr, 0)


def main():
    if not shutil.which("qemu-system-x86_64"):
        print("SKIP: qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")
        return suite.SKIP
    s = suite.Suite()
    work = tempfile.mkdtemp(prefix="nested-test-", dir="/tmp")
    hidden = tempfile.NamedTemporaryFile(prefix="host-only-", dir="/tmp", delete=False).name
    script = ("ls -l /dev/kvm; echo clock=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource); echo cwd=$(pwd); echo foo=$FOO home=$HOME; echo inside >written.txt; "
              f"test -e {hidden} && echo host-tmp-visible; echo to-stderr >&2; exit 3")
    env = dict(os.environ, HOME="/root-test-home")
    r = run([KVM_VM, "--env", "FOO=bar baz", "--", "sh", "-c", script], 300, cwd=work, env=env)
    s.check("kvm-vm: the command's exit status (3) comes back", r.returncode == 3, r)
    kvm = [l for l in r.stdout.splitlines() if "/dev/kvm" in l]
    s.check("kvm-vm: /dev/kvm inside is KVM's character device (10, 232)",
            bool(kvm) and kvm[0].startswith("c") and "10, 232" in kvm[0], r)
    s.check("kvm-vm: the L1 on the host's clock does not keep time with the host's raw TSC (it can step)",
            "clock=" in r.stdout and "clock=tsc" not in r.stdout, r)
    s.check("kvm-vm: same cwd inside", f"cwd={work}" in r.stdout, r)
    s.check("kvm-vm: --env and the caller's environment arrive", "foo=bar baz home=/root-test-home" in r.stdout, r)
    s.check("kvm-vm: the cwd on /tmp is shared writable",
            open(os.path.join(work, "written.txt")).read() == "inside\n" if os.path.exists(
                os.path.join(work, "written.txt")) else False, r)
    s.check("kvm-vm: /tmp inside is fresh (the host's other /tmp files are not there)",
            "host-tmp-visible" not in r.stdout, r)
    s.check("kvm-vm: stderr arrives", "to-stderr" in r.stdout + r.stderr, r)

    r = run([KVM_VM, "--timeout", "25", "--", "sleep", "600"], 200, cwd=work)
    s.check("kvm-vm --timeout: status 125 and one line saying so",
            r.returncode == 125 and "did not finish within 25 s" in r.stderr, r)
    # A hung L1 (its kernel stops running: simulated by stopping its heartbeat loop) is stopped with
    # one line once the heartbeat is older than the limit, instead of waiting forever.
    freeze = "kill -STOP $(cat /run/nested-kvm/heartbeat.pid) && sleep 600"
    r = run([KVM_VM, "--", "sh", "-c", freeze], 300, cwd=work,
            env=dict(os.environ, MINIVMM_NESTED_HEARTBEAT_LIMIT="20"))
    s.check("kvm-vm: a VM whose heartbeat stops is stopped: status 125 and one line saying it hung",
            r.returncode == 125 and "the nested VM hung (no heartbeat for 20 s" in r.stderr, r)
    # Before that, a VM without a heartbeat gets a byte on its serial line (an interrupt that wakes an L1
    # whose timer interrupt QEMU lost): here the command itself reads it.
    nudge = freeze.replace("sleep 600", "echo nudged=$(head -c1 /dev/ttyS0 | od -An -tx1 | tr -d ' ')")
    r = run([KVM_VM, "--", "sh", "-c", nudge], 300, cwd=work,
            env=dict(os.environ, MINIVMM_NESTED_HEARTBEAT_LIMIT="200", MINIVMM_NESTED_NUDGE_AFTER="10"))
    s.check("kvm-vm: a VM without a heartbeat gets a byte on its serial line, with one line saying so",
            r.returncode == 0 and "nudged=00" in r.stdout and "sending it serial interrupts" in r.stderr, r)
    # A soft lockup longer than the L1 has lived is its clock stepping (the host's TSC jumped), not a
    # hang: one warning, and the command goes on.
    step = "echo 'watchdog: BUG: soft lockup - CPU#0 stuck for 24276s! [sh:1]'; sleep 2; echo after-step"
    r = run([KVM_VM, "--", "sh", "-c", step], 300, cwd=work)
    s.check("kvm-vm: a soft lockup longer than the VM's life is a clock step: a warning, the command goes on",
            r.returncode == 0 and "after-step" in r.stdout and "clock stepped" in r.stderr
            and "hung" not in r.stderr, r)
    r = run([KVM_VM, "--env", "NOEQUALS", "--", "true"], 30)
    s.check("kvm-vm: a bad --env is a usage error (2)", r.returncode == 2 and "NAME=VALUE" in r.stderr, r)

    r = run([WITH_KVM, "--mode"], 120)
    s.check("with-kvm --mode: direct or nested with a reason",
            r.returncode == 0 and r.stdout.split(":")[0] in ("direct", "nested") and len(r.stdout) > 10, r)
    r = run([WITH_KVM, "--mode"], 30, env=dict(os.environ, MINIVMM_KVM="bogus"))
    s.check("with-kvm: MINIVMM_KVM=bogus is refused", r.returncode != 0 and "MINIVMM_KVM" in r.stderr, r)

    fake = os.path.join(work, "fake-vmm")
    with open(fake, "w") as f:
        f.write("#!/bin/sh\necho 'minivmm: error: fake failure for the test' >&2\nexit 5\n")
    os.chmod(fake, 0o755)
    r = run([BENCH_BOOT, "-n", "1", "--no-qemu", "--minivmm", fake], 120, env=dict(os.environ, MINIVMM_KVM="direct"))
    s.check("bench-boot: a failing run exits 1 and shows the VMM's error",
            r.returncode == 1 and "fake failure for the test" in r.stderr, r)
    shutil.rmtree(work, ignore_errors=True)
    os.unlink(hidden)
    s.finish()


if __name__ == "__main__":
    sys.exit(main())
