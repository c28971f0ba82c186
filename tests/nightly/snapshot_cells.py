"""Snapshots of a Linux guest with its TPM, run for tests/integration/test_snapshot_linux.py (the test
command's case) and scripts/nightly-boot's snapshot cells (every case, more restores): Debian's kernel
and the nightly initramfs (kernel_checks.BootFiles) booted with -bios none, the image as the disk under
-snapshot, nightly.snapshot on the command line: /init extends PCR 16, makes a TPM 2.0 key through
/dev/tpm0 (it stays loaded in the TPM's volatile memory; its saved context loads only into that same TPM
run), says "snapshot-ready" and waits for a line on the console (tests/linux/init).

run_case saves the machine through the control socket there, SIGKILLs minivmm and restores the snapshot
in new processes (from the second on with -restore-clone), each time sending a word: the guest goes on
where it was (its line carries the word; its uptime continues from the save), PCR 16 (TPM 1.2: every
PCR) is what it was, the key still signs, the disk reads as before, and the clones' TPM2_GetRandom all
differ (every restore stirs the TPM with host entropy). The last restore reboots the guest: the
restored minivmm builds a new machine, decompresses the kernel then, and Linux runs /init again."""
import json
import os
import re
import signal
import socket
import subprocess
import time

from tests.nightly import vm

PREFIX = "snapshot"
CASES = {"swtpm-2.0": ("2.0", "swtpm"), "inproc-2.0": ("2.0", "in-process"), "inproc-1.2": ("1.2", "in-process")}
NIGHTLY_RESTORES = 4


def log(text):
    print(text, flush=True)


BOOT_TIMEOUT = 400  # a Linux boot nested on a loaded host
RESTORE_TIMEOUT = 180


def lines(text, key):
    return re.findall(rf"NIGHTLY: {key}(?: (.*?))?\r?$", text, re.M)


def run_until(cmd, pattern, timeout, stdin=None, merge=False):
    """Starts cmd; returns (process, output so far) once `pattern` is in its output (with `merge`, its
    stderr too) or it ended."""
    p = subprocess.Popen(cmd, stdin=stdin or subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT if merge else subprocess.PIPE, start_new_session=True)
    os.set_blocking(p.stdout.fileno(), False)
    out, deadline = b"", time.monotonic() + timeout
    while not re.search(pattern, out) and p.poll() is None and time.monotonic() < deadline:
        try:
            data = os.read(p.stdout.fileno(), 65536)
            out += data
        except BlockingIOError:
            time.sleep(0.05)
    return p, out


def continue_until(p, out, pattern, timeout):
    """Reads on from a process run_until started until `pattern` is in all its output, or it ended."""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, out) and p.poll() is None and time.monotonic() < deadline:
        try:
            out += os.read(p.stdout.fileno(), 65536)
        except BlockingIOError:
            time.sleep(0.05)
    return p, out


def kill(p):
    """SIGKILL to the process group (minivmm and anything it started), if it is still there."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()


def finish(p, out, timeout):
    deadline = time.monotonic() + timeout
    while p.poll() is None and time.monotonic() < deadline:
        try:
            out += os.read(p.stdout.fileno(), 65536)
        except BlockingIOError:
            time.sleep(0.05)
    if p.poll() is None:
        kill(p)
    try:
        out += os.read(p.stdout.fileno(), 1 << 20)
    except (BlockingIOError, OSError):
        pass
    return p.returncode, out.decode("latin-1"), p.stderr.read().decode(errors="replace") if p.stderr else ""


def run_case(minivmm, image, files, directory, name, version, backend, restores=2):
    """Boots, saves at snapshot-ready, SIGKILLs, restores `restores` times (from the second on with
    -restore-clone). Returns [(check name, passed, detail)]; never raises on the guest's behaviour."""
    results = []

    def check(what, ok, detail=""):
        results.append((what, bool(ok), detail))
        return ok

    tmp = os.path.join(directory, name)
    os.makedirs(tmp)
    swtpm = vm.swtpm(os.path.join(tmp, "swtpm"), version) if backend == "swtpm" else None
    tpm = ["-tpm-sock", swtpm.sock] if swtpm else ["-tpm-state", os.path.join(tmp, "state"), "-tpm-version", version]
    ctl, snap = os.path.join(tmp, "ctl"), os.path.join(tmp, "linux.snap")
    try:
        # No -kernel-cache: a restored -bios none machine decompresses its kernel only when it reboots.
        machine = ["-bios", "none", "-m", "512M", "-snapshot"] + files.args
        p, out = run_until([minivmm, "-control", ctl, "-d", "info"] + machine + tpm + [image],
                           rb"NIGHTLY: snapshot-ready", BOOT_TIMEOUT)
        ready = out.decode("latin-1")
        answer = {}
        if "snapshot-ready" in ready:
            c = socket.socket(socket.AF_UNIX)
            c.connect(ctl)
            c.sendall(b'{"cmd":"save","path":"%s"}\n' % snap.encode())
            answer = json.loads(c.makefile().readline())
            c.close()
        kill(p)
        if not check(f"{name}: Linux booted to /init's snapshot-ready and was saved ({answer})",
                       answer.get("ok") and os.path.isfile(snap), ready[-3000:] + p.stderr.read().decode()[-2000:]):
            return results
        # The guest's checks before the save (the key, PCR 16): a failure there shows up here, not
        # as a puzzling failure after the restore (the nightly groups this with the save: "saved").
        check(f"{name}: no check failed in the guest before it was saved", "FAIL" not in ready, ready[-3000:])
        st = os.stat(snap)
        log(f"{name}: snapshot {st.st_blocks * 512 >> 20} MiB on disk (RAM 512 MiB), saved in {answer.get('ms')} ms")
        before = {k: lines(ready, k) for k in ("snapshot-pcr16", "snapshot-ready", "snapshot-pcrs")}
        randoms = []
        # The last restore reboots the guest (/init's word "reboot"): the restored minivmm builds a
        # new machine, loads the kernel again and Linux comes back to snapshot-ready; "end" ends it.
        words = ("one", "two", "three", "four", "five", "six", "seven", "eight")[:restores - 1] + ("reboot",)
        for word, extra in ((words[i], ["-restore-clone"] if i else []) for i in range(restores)):
            start = time.monotonic()
            # minivmm's lines (stderr) with the guest's: the word goes in once minivmm says it restored.
            if swtpm:  # minivmm's exit (CMD_SHUTDOWN) ended it, as it ends QEMU's: one swtpm per run
                swtpm.stop()
                swtpm = vm.swtpm(os.path.join(tmp, "swtpm"), version)
            p, out = run_until([minivmm, "-restore", snap, "-d", "info"] + extra + tpm + [image],
                               rb"minivmm: (restored|error)", RESTORE_TIMEOUT, stdin=subprocess.PIPE, merge=True)
            time.sleep(0.5)
            try:
                p.stdin.write(word.encode() + b"\n")
                p.stdin.flush()
                if word == "reboot":
                    # This run's output starts after the save: its snapshot-ready is the rebooted /init's.
                    p, out = continue_until(p, out, rb"NIGHTLY: snapshot-ready", BOOT_TIMEOUT)
                    p.stdin.write(b"end\n")
                    p.stdin.flush()
            except BrokenPipeError:
                pass  # it exited: finish() collects why
            status, text, err = finish(p, out, RESTORE_TIMEOUT)
            restored_ms = re.search(r"restored .*?, ([\d.]+) ms after start", text)
            log(f"{name} restore {word}: exit {status} after {time.monotonic() - start:.1f} s; "
                  f"{restored_ms.group(0) if restored_ms else 'no restore line'}")
            resumed = lines(text, "snapshot-resumed")
            first_part = text.split("NIGHTLY: snapshot-end", 1)[0]
            check(f"{name} restore {word}: the guest goes on where it was (its line carries '{word}'), powers "
                  f"off, exit 0", status == 0 and resumed and resumed[0].startswith(word) and
                  "snapshot-end" in text and "Linux version" not in first_part, text[-3000:] + err[-2000:])
            if word == "reboot":
                check(f"{name} restore {word}: the restored machine rebooted into Linux (its kernel loaded again) "
                      f"and its checks passed", text.count("NIGHTLY: snapshot-end") == 2 and "Linux version" in text and
                      "snapshot-resumed end" in text, text[-3000:] + err[-2000:])
            up = [float(x) for x in re.findall(r"uptime=([\d.]+)", (before["snapshot-ready"] or [""])[0] +
                                                 " " + (resumed[0] if resumed else ""))]
            check(f"{name} restore {word}: the guest's clock goes on from the save ({up})",
                    len(up) == 2 and 0 <= up[1] - up[0] < 60, text[-1000:])
            check(f"{name} restore {word}: no check failed in the guest", "FAIL" not in text, text[-3000:])
            if version == "2.0":
                check(f"{name} restore {word}: PCR 16 is the saved machine's",
                        lines(first_part, "snapshot-pcr16") == before["snapshot-pcr16"] and before["snapshot-pcr16"][0],
                        f"{before['snapshot-pcr16']} / {lines(first_part, 'snapshot-pcr16')}")
                check(f"{name} restore {word}: the key made before the save still signs (its context loads)",
                        "NIGHTLY: check snapshot-sign PASS" in first_part, text[-2000:])
                randoms.append((lines(first_part, "snapshot-random") or [""])[0])
            else:
                check(f"{name} restore {word}: the TPM 1.2's PCRs are the saved machine's",
                        lines(first_part, "snapshot-pcrs") == before["snapshot-pcrs"] and before["snapshot-pcrs"][0],
                        f"{before['snapshot-pcrs']} / {lines(first_part, 'snapshot-pcrs')}")
            check(f"{name} restore {word}: the disk reads as before", "NIGHTLY: check snapshot-disk PASS" in first_part,
                    text[-2000:])
        if version == "2.0" and restores > 1:
            check(f"{name}: the {restores} clones' TPM2_GetRandom all differ ({randoms})",
                  len(randoms) == restores and all(re.fullmatch("[0-9a-f]{32}", r) for r in randoms) and
                  len(set(randoms)) == restores)
    finally:
        if swtpm:
            swtpm.stop()
    return results




# -- scripts/nightly-boot's cells: snapshot/<case>/{save, restore-1..N, clones-differ} -----------------
def case_ids():
    return [f"{PREFIX}/{name}/{check}" for name, (version, _) in CASES.items()
            for check in ["save"] + [f"restore-{i + 1}" for i in range(NIGHTLY_RESTORES)] +
            (["clones-differ"] if version == "2.0" else [])]


def run_cells(n, image):
    """Runs the selected snapshot cells through `n` (scripts/nightly-boot's Nightly); each case's checks
    are grouped: the boot and save, each restore, the clones' random numbers."""
    import tempfile
    from tests.nightly import kernel_checks
    for name, (version, backend) in CASES.items():
        ids = [i for i in n.selected if i.startswith(f"{PREFIX}/{name}/")]
        if not ids:
            continue
        reason = ("/dev/kvm is not usable on this host" if not n.kvm else
                  "swtpm is not installed (apt-get install swtpm)" if backend == "swtpm" and not n.swtpm else
                  (n.calibration.reason if n.calibration else "") if not n.kernel_runs() else
                  "no guest image" if image is None else None)
        if reason:
            for i in ids:
                n.add("minivmm", i, "skipped", reason)
            continue
        start = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="minivmm-snapshot-") as tmp:
            files = kernel_checks.BootFiles(image, tmp, extra="nightly.snapshot")
            results = run_case(n.args.minivmm, image, files, tmp, name, version, backend, NIGHTLY_RESTORES)
        seconds = time.monotonic() - start
        groups = {f"{PREFIX}/{name}/save": [r for r in results if "saved" in r[0] and "restore" not in r[0]]}
        for i, word in enumerate(("one", "two", "three", "four", "five", "six", "seven")[:NIGHTLY_RESTORES - 1] + ("reboot",)):
            groups[f"{PREFIX}/{name}/restore-{i + 1}"] = [r for r in results if f" restore {word}:" in r[0]]
        groups[f"{PREFIX}/{name}/clones-differ"] = [r for r in results if "clones'" in r[0]]
        for case_id in ids:
            group = groups.get(case_id, [])
            failed = [r for r in group if not r[1]]
            status = "passed" if group and not failed else "failed"
            message = (f"{len(group)} checks passed" if status == "passed" else
                       "; ".join(r[0] for r in failed) if failed else "not reached (an earlier step failed)")
            n.add("minivmm", case_id, status, message, [r[2][-2000:] for r in failed], seconds / max(len(ids), 1))
