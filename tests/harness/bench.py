"""What the benchmark scripts (bench-tpm, bench-linux) share: a fresh swtpm per run, and a run
whose serial lines are stamped with the time they arrived."""
import os
import subprocess
import sys

from tests.harness import vmm
from tests.harness.swtpm import Swtpm, SwtpmError


def swtpm(directory, tpm2):
    """A fresh swtpm (state and control socket in a new directory); it exits with its VMM (close())."""
    os.makedirs(directory)
    try:
        return Swtpm(directory, tpm2, sock_name="sock", output="log")
    except SwtpmError:
        sys.exit(f"swtpm did not listen on {os.path.join(directory, 'sock')} "
                 f"(log: {os.path.join(directory, 'swtpm.log')})")


def quiet_for(seconds):
    """A vmm.run stop: the reason once the output has not grown for `seconds`."""
    last = {"size": -1, "at": 0.0}

    def stop(text, elapsed):
        if len(text) != last["size"]:
            last.update(size=len(text), at=elapsed)
        elif elapsed - last["at"] > seconds:
            return f"no output for {seconds:g} s"
        return None
    return stop


def timed_lines(cmd, env, timeout, marker, stderr=subprocess.DEVNULL, quiet=None, until=None):
    """Runs cmd; returns its exit status (None if stopped at the timeout, after `quiet` seconds
    without output, or once a whole line with `marker` + `until` arrived), [(seconds since start,
    text after `marker`)] for every serial line holding it, stamped when its line end arrived, and
    the seconds from start until the process had exited."""
    quiet_stop = quiet_for(quiet) if quiet else None

    def stop(text, elapsed):
        if until:
            at = text.find(marker + until)
            if at >= 0 and text.find("\n", at) >= 0:
                return f"{until} arrived"
        return quiet_stop(text, elapsed) if quiet_stop else None
    r = vmm.run(cmd, timeout, stop=stop if quiet or until else None, env=env, stderr=stderr)
    lines, begin = [], 0
    while (end := r.text.find("\n", begin)) >= 0:
        text = r.text[begin:end]
        if marker in text:
            lines.append((r.at(end), text[text.find(marker) + len(marker):].strip()))
        begin = end + 1
    return (None if r.stopped else r.returncode), lines, r.seconds
