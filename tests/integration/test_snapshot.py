#!/usr/bin/env python3
"""Snapshots on KVM with the test guest under SeaBIOS (README "Snapshots"; vmm/machine_snapshot.cpp):
minivmm runs with -control, the test saves the machine through the control socket at a moment of the
guest's run, SIGKILLs minivmm and restores the snapshot in a new minivmm; the guest must go on where
it was and finish every one of its checks, as an uninterrupted run does.

  basic-2.0   in-process TPM 2.0 (-tpm-state), saved while SeaBIOS boots the disk: the guest's TPM
              checks (TIS registers, a command, its event log replayed against the PCRs) pass after
              the restore: the PCRs SeaBIOS extended travelled in the snapshot
  basic-1.2   the same with the in-process TPM 1.2 (with MINIVMM_NIGHTLY_FULL=1 only)
  swtpm-2.0   an external swtpm (-tpm-sock) that outlives the killed minivmm: its state is replaced
              by the snapshot's (CMD_SET_STATEBLOB)
  bench       TPM 2.0, the guest hammering the TPM with commands (bench-tpm mode): saved while
              commands are in flight; every command after the restore succeeds
  smp         two vCPUs (smp-hammer mode: both vCPUs issue TPM commands), saved mid-run

And the rules around it: pause/resume/status; a save to a path that exists is refused and the
file is unchanged; bad requests get an error answer and the machine runs on; a second restore is
refused without -restore-clone (exit 8) and works with it; a snapshot cut short, with a flipped
byte in its state, of another disk (the image touched since) or without its TPM is refused (exit 8,
one line, nothing changed); machine options beside -restore are refused (exit 2).

usage: test_snapshot.py MINIVMM TEST_GUEST_BIN MKIMAGE_PY"""
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

from tests.harness import suite
from tests.harness import swtpm

BIOS = suite.BIOS
TIMEOUT = 120


def all_pass(out):
    return not re.search(r"MVG: \S+ FAIL", out) and re.search(r"MVG: DONE pass=\d+ fail=0", out) is not None


def one_error_line(err):
    lines = [l for l in err.splitlines() if l.strip()]
    return len(lines) == 1 and lines[0].startswith("minivmm: error: ")


class Control:
    """A client of minivmm's control socket: one JSON request per line, one answer per line."""

    def __init__(self, path, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        self.sock.settimeout(timeout)
        self.buffer = b""

    def raw(self, line):
        self.sock.sendall(line + b"\n")
        while b"\n" not in self.buffer:
            data = self.sock.recv(4096)
            if not data:
                raise OSError("the control socket closed")
            self.buffer += data
        answer, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(answer)

    def __call__(self, **request):
        return self.raw(json.dumps(request).encode())

    def close(self):
        self.sock.close()


class Vmm:
    """minivmm in the background; its stdout collected by a thread-free reader (read_until)."""

    def __init__(self, cmd):
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self.out = b""
        os.set_blocking(self.proc.stdout.fileno(), False)

    def read_until(self, pattern, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.out):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.pump()
                return re.search(pattern, self.out) is not None
            self.pump()
            time.sleep(0.005)
        return True

    def pump(self):
        try:
            while True:
                data = os.read(self.proc.stdout.fileno(), 65536)
                if not data:
                    return
                self.out += data
        except BlockingIOError:
            return

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.pump()

    def finish(self, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.pump()
            time.sleep(0.01)
        if self.proc.poll() is None:
            self.kill()
        self.pump()
        err = self.proc.stderr.read()
        return self.proc.returncode, self.out.decode("latin-1"), err.decode(errors="replace")

def image(s, mkimage, program, name, mode, tpm, **extra):
    out = os.path.join(s.tmp.name, f"{name}.img")
    cmd = [sys.executable, mkimage, "--program", program, "--out", out, "--mode", mode, "--size", "8M", "--tpm", tpm]
    for k, v in extra.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    subprocess.run(cmd, check=True)
    return out


def save_kill_restore(s, name, minivmm, disk, tpm, marker, machine=(), restore=()):
    """Runs the guest, saves it once `marker` is on its serial output, SIGKILLs minivmm, restores.
    Returns (snapshot path, the first run's output, the restore's Run) or None if the save failed."""
    ctl = os.path.join(s.tmp.name, f"{name}.ctl")
    snap = os.path.join(s.tmp.name, f"{name}.snap")
    v = Vmm([minivmm, "-bios", BIOS, "-control", ctl, *machine, *tpm, disk])
    reached = v.read_until(marker.encode())
    answer = None
    try:
        c = Control(ctl)
        answer = c(cmd="save", path=snap)
        c.close()
    except OSError as e:
        answer = {"ok": False, "error": str(e)}
    v.kill()
    first = v.out.decode("latin-1")
    if not s.check(f"{name}: saved after '{marker}'", reached and answer.get("ok") and os.path.isfile(snap),
                   f"answer {answer}\n--- output ---\n{first[-3000:]}\n--- stderr ---\n{v.proc.stderr.read().decode()[-3000:]}"):
        return None
    st = os.stat(snap)
    print(f"{name}: snapshot {st.st_size >> 20} MiB long, {st.st_blocks * 512 >> 10} KiB on disk, saved in {answer.get('ms')} ms")
    r = suite.run([minivmm, "-restore", snap, *tpm, *restore, disk], timeout=TIMEOUT)
    s.check(f"{name}: the restored guest goes on and finishes every check (exit 0)",
            r.returncode == 0 and all_pass(first + r.stdout), f"--- before the save ---\n{first[-2000:]}\n{r}")
    s.check(f"{name}: the restored guest did not start again (no second SeaBIOS banner)",
            "SeaBIOS (version" not in r.stdout, r)
    return snap, first, r


def main():
    minivmm, program, mkimage = sys.argv[1:4]
    suite.require_kvm_and_bios()
    s = suite.Suite()
    tmp = s.tmp.name

    # In-process TPMs, saved while SeaBIOS boots the disk. TPM 1.2 only nightly (tests/nightly snapshot
    # cells, inproc-1.2) and in unit tests: this test runs nested in the test command's slowest L1.
    for version in ("2.0", "1.2") if os.environ.get("MINIVMM_NIGHTLY_FULL") == "1" else ("2.0",):
        state = os.path.join(tmp, f"state-{version}")
        disk = image(s, mkimage, program, f"basic-{version}", "basic", version)
        tpm = ["-tpm-state", state] + (["-tpm-version", "1.2"] if version == "1.2" else [])
        save_kill_restore(s, f"basic-{version}", minivmm, disk, tpm, "Booting from Hard Disk")

    # The guest hammering the TPM: saved with commands in flight.
    state = os.path.join(tmp, "state-bench")
    disk = image(s, mkimage, program, "bench", "bench-tpm", "2.0", bench_count=3000)
    result = save_kill_restore(s, "bench", minivmm, disk, ["-tpm-state", state], "MVG: bench-start")
    if result:
        m = re.search(r"bench-end n=(\d+) ok=(\d+)", result[2].stdout)
        s.check("bench: every TPM command after the restore succeeded", m and m.group(1) == m.group(2), result[2])

    # Two vCPUs, both using the TPM and COM1.
    state = os.path.join(tmp, "state-smp")
    disk = image(s, mkimage, program, "smp", "smp-hammer", "2.0")
    save_kill_restore(s, "smp", minivmm, disk, ["-tpm-state", state], "hammer cmd=", machine=["-smp", "2"])

    # An external swtpm outliving the killed minivmm: its state replaced by the snapshot's.
    if shutil.which("swtpm"):
        d = os.path.join(tmp, "swtpm")
        os.makedirs(d)
        ctrl = os.path.join(d, "sock")
        p = swtpm.start(d, ctrl, True)
        try:
            if s.check("swtpm-2.0: swtpm started", swtpm.wait_listening(ctrl, p)):
                disk = image(s, mkimage, program, "swtpm", "basic", "2.0")
                save_kill_restore(s, "swtpm-2.0", minivmm, disk, ["-tpm-sock", ctrl], "Booting from Hard Disk")
        finally:
            p.kill()
            p.wait()

    rules(s, minivmm, mkimage, program)
    s.finish()


def rules(s, minivmm, mkimage, program):
    """The control socket's answers and every refusal around -restore."""
    tmp = s.tmp.name
    state = os.path.join(tmp, "state-rules")
    disk = image(s, mkimage, program, "rules", "bench-tpm", "2.0", bench_count=100000)
    ctl = os.path.join(tmp, "rules.ctl")
    snap = os.path.join(tmp, "rules.snap")
    v = Vmm([minivmm, "-bios", BIOS, "-control", ctl, "-tpm-state", state, "-snapshot", disk])
    v.read_until(b"MVG: bench-start")
    c = Control(ctl)
    s.check("status: running", c(cmd="status") == {"ok": True, "state": "running"})
    s.check("pause", c(cmd="pause").get("ok") and c(cmd="status").get("state") == "paused")
    v.pump()
    before = len(v.out)
    time.sleep(0.3)
    v.pump()
    s.check("paused: the guest writes nothing", len(v.out) == before, v.out[before:])
    s.check("resume", c(cmd="resume").get("ok") and c(cmd="status").get("state") == "running")
    bad = c.raw(b"{not json")
    s.check("bad JSON: an error answer", bad.get("ok") is False and bad.get("error"), bad)
    bad = c(cmd="fly")
    s.check("unknown command: an error answer", bad.get("ok") is False and "fly" in bad.get("error", ""), bad)
    existing = os.path.join(tmp, "existing")
    with open(existing, "wb") as f:
        f.write(b"user data")
    bad = c(cmd="save", path=existing)
    s.check("save over an existing file: refused, the file unchanged",
            bad.get("ok") is False and open(existing, "rb").read() == b"user data", bad)
    bad = c(cmd="save", path=os.path.join(tmp, "no-such-dir", "x.snap"))
    s.check("save into a missing directory: refused", bad.get("ok") is False, bad)
    saved = c(cmd="save", path=snap, resume=True)
    s.check("save with resume: ok, the guest runs on", saved.get("ok") and c(cmd="status").get("state") == "running",
            saved)
    s.check("save: the snapshot is private (0600)", os.stat(snap).st_mode & 0o777 == 0o600, oct(os.stat(snap).st_mode))
    s.check("quit: exit status 0", c(cmd="quit").get("ok") and v.finish()[0] == 0)
    c.close()

    def refused(name, args, status=8, setup=None):
        r = suite.run([minivmm, *args], timeout=TIMEOUT)
        s.check(f"{name}: exit {status}, one line", r.returncode == status and one_error_line(r.stderr), r)
        return r

    tpm = ["-tpm-state", state]

    def restored_runs(name, args, start=("-restore", snap)):
        # The guest's bench runs for minutes: running is checked through the control socket, then quit.
        ctl2 = os.path.join(tmp, "restored.ctl")
        r = Vmm([minivmm, *start, "-control", ctl2, *args])
        try:
            c2 = Control(ctl2)
            state_ok = c2(cmd="status").get("state") == "running" and c2(cmd="quit").get("ok")
            c2.close()
        except OSError as e:
            state_ok = False
            print(f"{name}: {e}")
        status, _, err = r.finish()
        s.check(f"{name}: runs (status: running), quit: exit 0", state_ok and status == 0, err)
        return err

    restored_runs("restore 1 of a -snapshot machine", [*tpm, disk])
    s.check("restore recorded beside the snapshot", os.path.exists(snap + ".restored"))
    refused("restore 2 without -restore-clone", ["-restore", snap, *tpm, disk])
    restored_runs("restore 2 with -restore-clone", ["-restore-clone", *tpm, disk])
    # A clone into a -tpm-state directory of its own takes the snapshot's TPM (EK certificates by
    # the saving directory's CA); its clean exit leaves the TPM's volatile state (the firmware's
    # platform authorization in it); that directory's next plain start gives it its own certificates.
    clone = os.path.join(tmp, "state-clone")
    restored_runs("restore 3 with -restore-clone into a new -tpm-state directory", ["-restore-clone", "-tpm-state", clone, disk])
    s.check("... the restore made no CA there", not os.path.exists(os.path.join(clone, "ek-ca.pem")), os.listdir(clone))
    err = restored_runs("... then a plain start of that directory", ["-d", "info", "-tpm-state", clone, "-snapshot", disk],
                        start=("-bios", BIOS))
    s.check("... which made its EK certificates with its own CA", "TPM EK certificates: 2 made" in err and
            os.path.exists(os.path.join(clone, "ek-ca.pem")), err)
    refused("-m beside -restore", ["-restore", snap, "-m", "1G", *tpm, disk], status=2)
    refused("restore without the TPM", ["-restore", snap, "-restore-clone", disk])
    os.utime(disk)
    refused("restore after the disk changed", ["-restore", snap, "-restore-clone", *tpm, disk])
    blob = open(snap, "rb").read()
    # The header (vmm/snapshot_file.cpp): magic, u32 format, u32 length + version, u64 state offset, u64 size.
    (length,) = struct.unpack_from("<I", blob, 20)
    offset, size = struct.unpack_from("<QQ", blob, 24 + length)
    mid = offset + size // 2
    for name, data in (("cut short", blob[:len(blob) // 2]), ("a flipped byte in the state", blob[:mid] + bytes([blob[mid] ^ 1]) + blob[mid + 1:]),
                       ("a flipped byte in the header", blob[:40] + bytes([blob[40] ^ 1]) + blob[41:]),
                       ("not a snapshot", b"\0" * 8192)):
        bad = os.path.join(tmp, "bad.snap")
        with open(bad, "wb") as f:
            f.write(data)
        refused(f"a snapshot {name}", ["-restore", bad, "-restore-clone", *tpm, disk])
        os.unlink(bad)
    refused("a missing snapshot", ["-restore", os.path.join(tmp, "missing.snap"), *tpm, disk])
    # Whole and digested, but its options are not only machine options: refused, nothing written.
    crafted = os.path.join(tmp, "crafted.snap")
    with open(crafted, "wb") as f:
        f.write(with_extra_arguments(blob, ["-serial", "file:" + os.path.join(tmp, "victim")]))
    r = refused("a snapshot whose options hold -serial file:", ["-restore", crafted, "-restore-clone", *tpm, disk])
    s.check("... says which option, and wrote no file", "'-serial'" in r.stderr and
            not os.path.exists(os.path.join(tmp, "victim")), r.stderr)


def with_extra_arguments(blob, extra):
    """`blob` (a snapshot) with `extra` appended to its machine options, the digests made anew
    (vmm/snapshot_file.cpp's header, vmm/snapshot_preamble.cpp's encoding)."""
    (length,) = struct.unpack_from("<I", blob, 20)
    at = 24 + length
    offset, size = struct.unpack_from("<QQ", blob, at)
    (count,) = struct.unpack_from("<I", blob, at + 16 + 4 + 32)
    fields_end = at + 16 + 4 + 32 + 4 + 24 * count
    state = blob[offset:offset + size]
    (nargs,) = struct.unpack_from("<I", state, 1)
    pos = 5
    for _ in range(nargs):
        (n,) = struct.unpack_from("<I", state, pos)
        pos += 4 + n
    added = b"".join(struct.pack("<I", len(a)) + a.encode() for a in extra)
    state = state[:1] + struct.pack("<I", nargs + len(extra)) + state[5:pos] + added + state[pos:]
    header = bytearray(blob[:fields_end])
    struct.pack_into("<Q", header, at + 8, len(state))
    header[at + 20:at + 52] = hashlib.sha256(state).digest()
    header += hashlib.sha256(bytes(header)).digest()
    header += bytes(4096 - len(header))
    return bytes(header) + blob[4096:offset] + state


if __name__ == "__main__":
    main()
