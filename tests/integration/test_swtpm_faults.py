#!/usr/bin/env python3
"""SwtpmBackend against broken swtpm peers, through tests/tools/swtpm_probe: a fake that answers
garbage, closes, hangs or is no TPM (clear one-line connect errors, exit status 3, no crash), a
fake whose TPM answers are malformed or missing, and a real swtpm killed in the middle of a run
(failure responses, one log line, fast afterwards). No KVM needed. The real-swtpm cases are
skipped, with a message, only if no swtpm binary is installed.

usage: test_swtpm_faults.py SWTPM_PROBE FAKE_SWTPM_PY"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from tests.harness.swtpm import Swtpm

PROBE = None
FAKE = None
failures = []


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else ": " + detail), flush=True)
    if not cond:
        failures.append(name)


def run_probe(sock, *args, timeout=60):
    start = time.monotonic()
    p = subprocess.run([PROBE, sock, *args], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr, time.monotonic() - start


def field(text, key):
    m = re.search(r"\b" + key + r"=([-0-9.a-fx]+)", text)
    return m.group(1) if m else None


def start_fake(tmp, mode):
    sock = os.path.join(tmp, mode + ".sock")
    fake = subprocess.Popen([sys.executable, FAKE, "--socket", sock, "--mode", mode, "--max-seconds", "30"],
                            stdout=subprocess.PIPE, text=True)
    assert fake.stdout.readline().strip() == "ready"
    return fake, sock


def stop(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def connect_error_cases(tmp):
    cases = [
        ("garbage", [], "CMD_GET_CAPABILITY failed: 0x"),
        ("close", [], "connection closed by peer"),
        ("hang", ["--timeout-ms", "500"], "no answer to CMD_GET_CAPABILITY within 500 ms"),
        ("not-tpm", [], "does not answer like a TPM 1.2 or TPM 2.0"),
    ]
    for mode, args, expected in cases:
        fake, sock = start_fake(tmp, mode)
        try:
            rc, out, err, secs = run_probe(sock, *args)
        finally:
            stop(fake)
        lines = err.strip().splitlines()
        check(f"{mode}: exit status 3", rc == 3, f"rc={rc} stderr={err!r}")
        check(f"{mode}: one clear line", len(lines) == 1 and expected in lines[0] and sock in lines[0]
              and "start it with: swtpm socket" in lines[0], repr(err))
        check(f"{mode}: bounded", secs < 5, f"{secs:.1f}s")

    missing = os.path.join(tmp, "nothing-here.sock")
    rc, out, err, _ = run_probe(missing)
    check("missing socket: exit status 3 and the message", rc == 3 and
          f"cannot connect to swtpm control socket {missing}: No such file or directory; start it with: "
          f"swtpm socket --tpmstate dir=DIR --ctrl type=unixio,path={missing} --tpm2" in err, repr(err))


def data_fault_cases(tmp):
    fake, sock = start_fake(tmp, "data-garbage")
    try:
        rc, out, err, secs = run_probe(sock, "--loop", "50")
    finally:
        stop(fake)
    check("data-garbage: runs to the end", rc == 0, f"rc={rc} {err!r}")
    check("data-garbage: failure response", "startup rc=0x101 len=10" in out, out)
    check("data-garbage: every later command fails", field(out, "failed") == "50", out)
    check("data-garbage: one log line", err.count("stopped responding") == 1 and "malformed TPM response" in err,
          repr(err))

    fake, sock = start_fake(tmp, "data-hang")
    try:
        rc, out, err, secs = run_probe(sock, "--timeout-ms", "500", "--loop", "200")
    finally:
        stop(fake)
    startup_ms = float(field(out.split("startup", 1)[1], "ms") or -1) if "startup" in out else -1
    check("data-hang: runs to the end", rc == 0, f"rc={rc} {err!r}")
    check("data-hang: the first command waits one timeout", 450 <= startup_ms < 2000, out)
    check("data-hang: later commands fail at once", float(field(out, "max_fail_ms") or 99) < 5 and
          field(out, "failed") == "200", out)
    check("data-hang: one clear log line", err.count("\n") == 1 and
          "stopped responding: no TPM response within 500 ms; the guest's TPM commands now fail" in err, repr(err))


def real_swtpm_cases(tmp):
    if shutil.which("swtpm") is None:
        print("SKIP real-swtpm cases: swtpm is not installed", flush=True)
        return
    state = os.path.join(tmp, "state")
    os.mkdir(state)
    sock = os.path.join(state, "sock")

    def start_swtpm():
        return Swtpm(state, True, sock_name="sock", output="inherit", stdin=None).proc

    swtpm = start_swtpm()
    try:
        rc, out, err, _ = run_probe(sock, "--loop", "1000")
        check("real swtpm: 1000 GetRandom round trips", rc == 0 and field(out, "ok") == "1000", out + err)
        print(f"     TPM2_GetRandom round trip: {field(out, 'avg_ok_us')} us average", flush=True)
        swtpm.wait(timeout=5)  # swtpm_probe sent CMD_SHUTDOWN
        check("real swtpm: CMD_SHUTDOWN ends swtpm", swtpm.returncode == 0, str(swtpm.returncode))
    finally:
        stop(swtpm)

    os.unlink(sock) if os.path.exists(sock) else None
    swtpm = start_swtpm()
    try:
        probe = subprocess.Popen([PROBE, sock, "--loop", "3000", "--interval-ms", "1", "--timeout-ms", "2000"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        swtpm.send_signal(signal.SIGKILL)
        swtpm.wait()
        out, err = probe.communicate(timeout=60)
    finally:
        stop(swtpm)
    ok = int(field(out, "ok") or 0)
    failed = int(field(out, "failed") or 0)
    check("killed swtpm: probe finishes normally", probe.returncode == 0, f"rc={probe.returncode} {err!r}")
    check("killed swtpm: commands succeeded, then failed", ok > 0 and failed > 0 and ok + failed == 3000, out)
    check("killed swtpm: TPM_RC_FAILURE responses", re.search(r"getrandom i=\d+ rc=0x101 len=10", out) is not None,
          out)
    check("killed swtpm: no waiting after the failure", float(field(out, "max_fail_ms") or 99) < 100 and
          float(field(out, "max_later_fail_ms") or 99) < 5, out)
    check("killed swtpm: one log line", err.count("stopped responding") == 1 and err.count("\n") == 1, repr(err))


def main():
    global PROBE, FAKE
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    PROBE, FAKE = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="minivmm-swtpm-faults-") as tmp:
        connect_error_cases(tmp)
        data_fault_cases(tmp)
        real_swtpm_cases(tmp)
    print(f"{len(failures)} failed" if failures else "all passed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
