"""Running a VMM (minivmm or QEMU) and waiting on its serial output: the one wait loop. COM1 (the
process's stdout) is timestamped as it arrives; the run ends when the process exits, a deadline
passes or an early stop says so; then SIGTERM (SIGKILL 5 s later) to its process group."""
import os
import re
import signal
import subprocess
import threading
import time


class Run:
    """One finished VMM run. `text` is COM1 decoded as latin-1 (one character per byte, so offsets
    are byte offsets); `at(offset)` is the time in seconds after the start at which that byte arrived."""

    def __init__(self, cmd, returncode, text, stamps, stderr, seconds, stopped):
        self.cmd, self.returncode, self.text, self.stderr = cmd, returncode, text, stderr
        self.seconds, self.stopped, self._stamps = seconds, stopped, stamps

    def at(self, offset):
        """Arrival time of byte `offset` (None if it never arrived)."""
        for end, when in self._stamps:
            if offset < end:
                return when
        return None

    def error_line(self):
        """minivmm's one-line error message, or the last non-empty stderr line."""
        lines = [l.strip() for l in self.stderr.splitlines() if l.strip()]
        for line in lines:
            if line.startswith("minivmm: error:"):
                return line
        return lines[-1] if lines else ""

    def describe(self):
        """How the run ended, in one short line (minivmm's exit-5 message condensed)."""
        how = f"stopped after {self.seconds:.1f}s ({self.stopped})" if self.stopped else \
            f"exit {self.returncode} after {self.seconds:.1f}s"
        return how + (f": {short_error(self.error_line())}" if self.error_line() else "")


OPCODES = {"cf": "IRET", "cc": "INT3", "cd": "INT n", "f4": "HLT", "0f 01": "LGDT/LIDT", "0f 22": "MOV to CR",
           "ea": "far JMP", "66 ea": "far JMP"}


def short_error(line):
    """minivmm's exit-5 line condensed to the exit reason, RIP, mode and first instruction bytes
    (with the instruction's name when known); other lines unchanged up to 200 characters."""
    line = line.removeprefix("minivmm: error: ").removeprefix("guest stopped: ")
    m = re.search(r"^(\S+).*?(RIP 0x[0-9a-f]+).*?([a-z0-9-]+ mode).*?instruction bytes at 0x[0-9a-f]+: "
                  r"((?:[0-9a-f]{2} ?)+)", line)
    if not m:
        return line[:200]
    code = m.group(4).split()
    name = next((n for op, n in OPCODES.items() if code[:len(op.split())] == op.split()), None)
    return f"{m.group(1)} at {m.group(2)} in {m.group(3)} on {' '.join(code[:4])}" + (f" ({name})" if name else "")


def run(cmd, timeout, stop=None, env=None, on_output=None, stderr=subprocess.PIPE):
    """Runs cmd with stdin closed until it exits, `timeout` seconds pass, or stop(text, seconds)
    returns a reason string; then SIGTERM (SIGKILL 5 s later). on_output(raw bytes so far, process)
    is called as each piece of output arrives (to act at once on a marker: kill a process, sample
    it). stderr=subprocess.STDOUT merges it into `text`. Never raises on the child's behaviour."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
                            env=env, start_new_session=True)
    chunks, stamps, err = [], [], []
    lock = threading.Lock()

    def pump_out():
        total, seen = 0, b""
        while True:
            data = os.read(proc.stdout.fileno(), 65536)
            if not data:
                return
            with lock:
                total += len(data)
                chunks.append(data)
                stamps.append((total, time.monotonic() - start))
            if on_output:
                seen += data
                on_output(seen, proc)

    def pump_err():
        err.append(proc.stderr.read() if proc.stderr else b"")

    threads = [threading.Thread(target=pump_out, daemon=True), threading.Thread(target=pump_err, daemon=True)]
    for t in threads:
        t.start()
    stopped = None
    while proc.poll() is None:
        elapsed = time.monotonic() - start
        if elapsed > timeout:
            stopped = f"timeout {timeout:g}s"
        elif stop:
            with lock:
                text = b"".join(chunks).decode("latin-1")
            stopped = stop(text, elapsed)
        if stopped:
            terminate(proc)
            break
        if threads[0].is_alive():
            threads[0].join(timeout=0.05)  # returns at once when the output ends
        else:  # the output ended: the process is exiting (a short timed wait sees it at once)
            try:
                proc.wait(timeout=min(1.0, max(0.01, timeout - elapsed)))
            except subprocess.TimeoutExpired:
                pass
    proc.wait()
    seconds = time.monotonic() - start
    for t in threads:
        t.join(timeout=5)
    text = b"".join(chunks).decode("latin-1")
    stderr = b"".join(err).decode(errors="replace")
    return Run(cmd, proc.returncode, text, list(stamps), stderr, seconds, stopped)


def terminate(proc):
    """SIGTERM, then SIGKILL after 5 s, to the child's process group (a VMM and anything it started)."""
    for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue
