#!/usr/bin/env python3
"""The sandbox and glibc's heap (issue 22: a Debian system guest's `systemctl poweroff` ended minivmm
with status 7): tests/tools/sandbox_heap_probe has a thread allocate a 64 MiB overlay in 4 KiB blocks
under the real filters and the main thread free it, as a -snapshot run does at exit. With one malloc
arena (what minivmm's main sets up) it exits 0; with glibc's per-thread arenas the free shrinks the
thread's heap, glibc opens /proc/sys/vm/overcommit_memory, and the sandbox ends it with status 7.

usage: test_sandbox_heap.py SANDBOX_HEAP_PROBE"""
import subprocess
import sys

from tests.harness import suite

LINE = ("minivmm: error: sandbox: forbidden system call openat (257) in the main thread; "
        "run with -sandbox off to debug\n")


def main():
    probe = sys.argv[1]
    s = suite.Suite()
    r = subprocess.run([probe], capture_output=True, text=True, timeout=60)
    s.check("one malloc arena (as minivmm runs): the overlay is freed under the sandbox, exit 0",
            r.returncode == 0 and r.stderr == "sandbox_heap_probe: overlay freed\n", (r.returncode, r.stderr))
    r = subprocess.run([probe, "--per-thread-arenas"], capture_output=True, text=True, timeout=60)
    s.check("per-thread arenas (glibc's default): freeing the overlay opens overcommit_memory, exit 7 and the "
            "sandbox's line", r.returncode == 7 and r.stderr.endswith(LINE), (r.returncode, r.stderr))
    s.finish()


if __name__ == "__main__":
    sys.exit(main())
