"""Running a VMM for the nightly boot tests: a process whose COM1 output (stdout) is timestamped
as it arrives, with a deadline and an optional early stop; and an swtpm per run."""
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

BIOS = "/usr/share/seabios/bios-256k.bin"
KVM_FAILED = 5  # minivmm: KVM could not run the guest (emulation failure, failed entry)


def wait_listening(sock, proc, timeout=10):
    """Waits until a freshly started swtpm (`proc`) accepts connections on the Unix socket `sock`.
    The socket file appears at bind(), before swtpm calls listen(), so a client that only waits for
    the file can be refused; a probe connection, closed at once, proves the listen. swtpm treats the
    probe as a client that left. Returns False if proc exited or `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(sock)
                return True
            except (FileNotFoundError, ConnectionRefusedError):
                pass
        time.sleep(0.01)
    return False


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


def run(cmd, timeout, stop=None, env=None):
    """Runs cmd with stdin closed until it exits, `timeout` seconds pass, or stop(text, seconds)
    returns a reason string; then SIGTERM (SIGKILL 5 s later). Never raises on the child's behaviour."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, start_new_session=True)
    chunks, stamps, err = [], [], []
    lock = threading.Lock()

    def pump_out():
        total = 0
        while True:
            data = os.read(proc.stdout.fileno(), 65536)
            if not data:
                return
            with lock:
                total += len(data)
                chunks.append(data)
                stamps.append((total, time.monotonic() - start))

    def pump_err():
        err.append(proc.stderr.read())

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
        time.sleep(0.05)
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


class Swtpm:
    """swtpm on DIR/swtpm-sock (TPM 2.0 with --tpm2, else 1.2), stopped by stop()."""

    def __init__(self, directory, version):
        if not shutil.which("swtpm"):
            raise RuntimeError("swtpm is not installed (apt-get install swtpm)")
        os.makedirs(directory, exist_ok=True)
        self.sock = os.path.join(directory, "swtpm-sock")
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        cmd = ["swtpm", "socket", "--tpmstate", f"dir={directory}", "--ctrl", f"type=unixio,path={self.sock}",
               "--log", f"file={os.path.join(directory, 'swtpm.log')}"] + (["--tpm2"] if version == "2.0" else [])
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        if not wait_listening(self.sock, self.proc):
            self.stop()
            raise RuntimeError(f"swtpm did not listen on {self.sock}")

    def stop(self):
        if self.proc.poll() is None:
            terminate(self.proc)
        self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def minivmm_cmd(minivmm, image, tpm_args, debugcon=None):
    """minivmm on a throw-away copy of the image's writes (-snapshot), COM1 on stdout."""
    cmd = [minivmm, "-bios", BIOS, "-snapshot"] + list(tpm_args)
    if debugcon:
        cmd += ["-debugcon", f"file:{debugcon}"]
    return cmd + [image]


def qemu_cmd(qemu, image, sock, accel):
    """The reference: QEMU pc with a tpm-tis backed by the swtpm on `sock`, virtio disk (-snapshot),
    COM1 on stdout, guest reboots kept (not -no-reboot), powering off ends QEMU."""
    return [qemu, "-accel", accel, "-M", "pc", "-m", "512", "-nographic", "-nodefaults", "-serial", "stdio",
            "-monitor", "none", "-snapshot", "-chardev", f"socket,id=chrtpm,path={sock}",
            "-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", "tpm-tis,tpmdev=tpm0",
            "-drive", f"if=virtio,format=raw,file={image}"]
