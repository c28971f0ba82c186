"""The integration tests' frame: run the VMM on a guest image, collect its serial output and exit
status (to the end: for waits on the output see tests.harness.vmm), skip where a tool is missing,
and report results in the form scripts/test counts."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

SKIP = 77  # meson's "skipped" exit status
BIOS = "/usr/share/seabios/bios-256k.bin"  # Debian's seabios package


class Run:
    def __init__(self, returncode, stdout, stderr, seconds):
        self.returncode, self.stdout, self.stderr, self.seconds = returncode, stdout, stderr, seconds

    def __repr__(self):
        return (f"exit {self.returncode} after {self.seconds:.1f}s\n--- stdout ---\n{self.stdout[-4000:]}"
                f"\n--- stderr ---\n{self.stderr[-4000:]}")


def run(cmd, timeout=180, stdin=subprocess.DEVNULL):
    start = time.monotonic()
    p = subprocess.run(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return Run(p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"),
               time.monotonic() - start)


def make_image(mkimage, program, mode, directory, size="8M"):
    out = os.path.join(directory, f"{mode}.img")
    subprocess.run([sys.executable, mkimage, "--program", program, "--out", out, "--mode", mode, "--size", size],
                   check=True)
    return out


def kvm_usable():
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
        os.close(fd)
        return True
    except OSError as e:
        print(f"SKIP: /dev/kvm is not usable here ({e.strerror})")
        return False


def require_kvm_and_bios():
    """Exits with SKIP (saying why) unless /dev/kvm is usable and Debian's SeaBIOS is installed."""
    if not kvm_usable():
        sys.exit(SKIP)
    if not os.path.exists(BIOS):
        print(f"SKIP: {BIOS} is missing (apt-get install seabios)")
        sys.exit(SKIP)


def require_kvm_and_swtpm():
    """Exits with SKIP (saying why) unless /dev/kvm is usable and swtpm is installed."""
    if not kvm_usable():
        sys.exit(SKIP)
    if not shutil.which("swtpm"):
        print("SKIP: swtpm is not installed (apt-get install swtpm)")
        sys.exit(SKIP)


class Suite:
    def __init__(self):
        self.passed, self.failed = 0, 0
        self.tmp = tempfile.TemporaryDirectory(prefix="minivmm-test-")

    def check(self, name, condition, detail=""):
        if condition:
            self.passed += 1
            print(f"PASS {name}")
        else:
            self.failed += 1
            print(f"FAIL {name}\n{detail}")
        sys.stdout.flush()
        return condition

    def finish(self):
        """Exit status 1 if a check failed or none ran (a test that checked nothing has not passed)."""
        print(f"{self.passed} passed, {self.failed} failed")
        if self.passed + self.failed == 0:
            print("FAIL no check ran")
        self.tmp.cleanup()
        sys.exit(1 if self.failed or self.passed == 0 else 0)
