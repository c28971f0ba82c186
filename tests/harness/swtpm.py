"""swtpm for the tests and scripts: the one place that builds an `swtpm socket` command line, starts
it, waits until it listens and stops it. TPM 2.0 with --tpm2, else TPM 1.2; the control channel on a
unix socket (minivmm's -tpm-sock, QEMU's -tpmdev emulator), optionally a data socket (--server)."""
import os
import shutil
import socket
import subprocess
import time

from tests.harness.vmm import terminate


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


def command(state_dir, ctrl, tpm2, binary="swtpm", log=None, server=None, flags=None):
    """The swtpm command line: state in `state_dir`, control socket `ctrl`, --tpm2 for a TPM 2.0;
    `log`: swtpm's own log file (--log); `server`: a data socket; `flags`: swtpm's --flags."""
    cmd = ["swtpm", "socket", "--tpmstate", f"dir={state_dir}", "--ctrl", f"type=unixio,path={ctrl}"]
    cmd[0] = binary  # another swtpm (test_guest_tpm_on_qemu.py --swtpm PATH)
    if server:
        cmd += ["--server", f"type=unixio,path={server}"]
    if flags:
        cmd += ["--flags", flags]
    if log:
        cmd += ["--log", f"file={log}"]
    return cmd + (["--tpm2"] if tpm2 else [])


def start(state_dir, ctrl, tpm2, output=subprocess.DEVNULL, stdin=None, new_session=False, **options):
    """Starts swtpm (command() with `options`) and returns its process at once, without waiting."""
    return subprocess.Popen(command(state_dir, ctrl, tpm2, **options), stdin=stdin, stdout=output,
                            stderr=subprocess.STDOUT if output not in (None, subprocess.DEVNULL) else output,
                            start_new_session=new_session)


class SwtpmError(RuntimeError):
    pass


class Swtpm:
    """An swtpm with its state in `directory` (created if missing) and its control socket
    DIRECTORY/`sock_name` (a stale one removed first), listening when the constructor returns; else
    it is killed and SwtpmError("swtpm did not listen on SOCK[: its output]") raised (or "swtpm is not
    installed").

    tpm2: True/False or a version string ("2.0", "1.2"). output: "null" (default), "inherit", or
    "log" (stdout and stderr into DIRECTORY/swtpm.log, see output_tail()). log_option: swtpm writes
    its own log to DIRECTORY/swtpm.log (--log). new_session: its own process group (stop() then ends
    the group). Ending it: kill() at once; stop() SIGTERM then SIGKILL; close() first gives it
    `grace` seconds to exit by itself (it does when its VMM sends CMD_SHUTDOWN)."""

    def __init__(self, directory, tpm2, sock_name="swtpm-sock", binary="swtpm", output="null",
                 log_option=False, new_session=False, stdin=subprocess.DEVNULL):
        if not shutil.which(binary):
            raise SwtpmError("swtpm is not installed (apt-get install swtpm)")
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.sock = os.path.join(directory, sock_name)
        if os.path.exists(self.sock):  # left by a swtpm that was killed
            os.unlink(self.sock)
        if isinstance(tpm2, str):
            tpm2 = tpm2 == "2.0"
        self.log = None
        if output == "log":
            self.log = open(os.path.join(directory, "swtpm.log"), "wb")
        out = {"null": subprocess.DEVNULL, "inherit": None, "log": self.log}[output]
        self.cmd = command(directory, self.sock, tpm2, binary=binary,
                           log=os.path.join(directory, "swtpm.log") if log_option else None)
        self.new_session = new_session
        self.proc = subprocess.Popen(self.cmd, stdin=stdin, stdout=out,
                                     stderr=subprocess.STDOUT if self.log else out, start_new_session=new_session)
        if not wait_listening(self.sock, self.proc):
            self.kill()
            raise SwtpmError(f"swtpm did not listen on {self.sock}" + (f": {self.output_tail()}" if self.log else ""))

    def qemu_args(self, device="tpm-tis"):
        """QEMU's options for a TPM device backed by this swtpm."""
        return ["-chardev", f"socket,id=chrtpm,path={self.sock}", "-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
                "-device", f"{device},tpmdev=tpm0"]

    def output_tail(self):
        """The last 500 characters swtpm wrote (output="log")."""
        if not self.log.closed:
            self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read().decode("latin-1").strip()[-500:]

    def _closed(self):
        if self.log:
            self.log.close()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._closed()

    def stop(self):
        if self.proc.poll() is None:
            if self.new_session:
                terminate(self.proc)
            else:
                for end in (self.proc.terminate, self.proc.kill):
                    end()
                    try:
                        self.proc.wait(timeout=5)
                        break
                    except subprocess.TimeoutExpired:
                        continue
        self.proc.wait()
        self._closed()

    def close(self, grace=5):
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        self.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
