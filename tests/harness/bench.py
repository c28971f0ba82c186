"""What the benchmark scripts (bench-tpm, bench-linux) share: a fresh swtpm per run, and a run
whose serial lines are stamped with the time they arrived."""
import os
import selectors
import subprocess
import sys
import time

from tests.harness.swtpm import Swtpm, SwtpmError


def swtpm(directory, tpm2):
    """A fresh swtpm (state and control socket in a new directory); it exits with its VMM (close())."""
    os.makedirs(directory)
    try:
        return Swtpm(directory, tpm2, sock_name="sock", output="log")
    except SwtpmError:
        sys.exit(f"swtpm did not listen on {os.path.join(directory, 'sock')} "
                 f"(log: {os.path.join(directory, 'swtpm.log')})")


def timed_lines(cmd, env, timeout, marker, stderr=subprocess.DEVNULL):
    """Runs cmd; returns its exit status (None if killed at the timeout), [(seconds since start,
    text after `marker`)] for every serial line holding it, stamped when its line end arrived, and
    the seconds from start until the process had exited."""
    start = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, env=env)
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    pending, lines = b"", []
    try:
        while time.monotonic() < start + timeout:
            if not sel.select(timeout=0.5):
                continue
            chunk = os.read(p.stdout.fileno(), 65536)
            now = time.monotonic() - start
            if not chunk:
                break
            *complete, pending = (pending + chunk).split(b"\n")
            for raw in complete:
                text = raw.decode("latin-1")
                if marker in text:
                    lines.append((now, text[text.find(marker) + len(marker):].strip()))
    finally:
        sel.close()
        try:
            status = p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            status = None
        ended = time.monotonic() - start
        p.stdout.close()
    return status, lines, ended
