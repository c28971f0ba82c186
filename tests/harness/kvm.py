"""The one place that decides how this host reaches a KVM that can run a Linux guest:

  direct  /dev/kvm is here and runs a 64-bit kernel (the nightly harness's calibration probe,
          tests/nightly/probe.py, boots through minivmm and says so; cached per boot of the host)
  nested  otherwise: scripts/kvm-vm's L1 VM (Debian's kernel under QEMU TCG, kvm-amd on emulated SVM)
  none    neither: no usable /dev/kvm and no QEMU (or no L1 image can be had); `reason` says why

MINIVMM_KVM=direct|nested overrides the decision (=auto, or unset, decides). Inside the nested VM
scripts/kvm-vm sets MINIVMM_KVM=direct."""
import json
import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Mode:
    def __init__(self, how, reason):
        self.how, self.reason = how, reason

    def __repr__(self):
        return f"{self.how} ({self.reason})"


def _boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _probe(minivmm, cache):
    """(capable, why) from the calibration probe, cached in `cache` for this boot and this minivmm."""
    st = os.stat(minivmm)
    key = f"{_boot_id()} {minivmm} {st.st_mtime_ns} {st.st_size}"
    try:
        with open(cache) as f:
            saved = json.load(f)
        if saved.get("key") == key:
            return saved["capable"], saved["why"]
    except (OSError, ValueError, KeyError):
        pass
    from tests.nightly import probe
    with tempfile.TemporaryDirectory(prefix="minivmm-kvm-probe-") as work:
        c = probe.calibrate(minivmm, work, 60.0)
    capable = c.capable is not False  # a probe that did not boot is minivmm's fault, not the host's
    why = c.reason if c.capable is False else f"calibration: {c.detail}"
    try:
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        with open(cache + ".tmp", "w") as f:
            json.dump({"key": key, "capable": capable, "why": why}, f)
        os.replace(cache + ".tmp", cache)
    except OSError:
        pass
    return capable, why


def decide(minivmm=None):
    forced = os.environ.get("MINIVMM_KVM", "auto")
    if forced not in ("direct", "nested", "auto", ""):
        raise SystemExit(f"MINIVMM_KVM={forced!r}: want direct, nested or auto")
    if forced == "direct":
        return Mode("direct", "MINIVMM_KVM=direct")
    nested_ok = shutil.which("qemu-system-x86_64") is not None
    nested = Mode("nested", "") if nested_ok else Mode("none", "qemu-system-x86_64 is not installed "
                                                              "(apt-get install qemu-system-x86)")
    if forced == "nested":
        nested.reason = nested.reason or "MINIVMM_KVM=nested"
        return nested
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC))
    except OSError as e:
        nested.reason = nested.reason or f"/dev/kvm is not usable here ({e.strerror})"
        return nested
    minivmm = minivmm or os.path.join(ROOT, "build", "minivmm")
    if not os.path.exists(minivmm):
        return Mode("direct", "/dev/kvm opens (no minivmm built to probe it further)")
    capable, why = _probe(minivmm, os.path.join(os.path.dirname(os.path.abspath(minivmm)), "kvm-mode.json"))
    if capable:
        return Mode("direct", f"/dev/kvm runs a Linux kernel ({why})")
    nested.reason = nested.reason or why
    return nested


def run_here_or_nested(name, argv, rw, minivmm=None, mem_mib=4096, icount=False, clock=None):
    """For scripts that boot guests (demo, nightly-boot, benchmarks): returns when this host's KVM can
    run them (or none exists: the script then reports that itself); otherwise says so in one line
    on stderr, runs the same command line inside the nested VM (rw: directories it writes; clock:
    the L1's, nested_kvm.CLOCKS) and exits with its status."""
    mode = decide(minivmm)
    if mode.how != "nested" and not icount:
        return mode
    if os.environ.get("MINIVMM_NESTED") == "1":
        return mode  # already inside the nested VM
    from tests.harness import nested_kvm
    why = "deterministic virtual time (--icount)" if icount else mode.reason
    print(f"{name}: running inside the nested KVM VM (scripts/kvm-vm): {why}", file=sys.stderr, flush=True)
    env = dict(os.environ, MINIVMM_KVM="direct")
    try:
        status = nested_kvm.run([sys.executable] + argv, env=env, rw=rw, mem_mib=mem_mib, icount=icount,
                                clock=clock)
    except nested_kvm.NestedError as e:
        print(f"{name}: error: the nested KVM cannot start here: {e}", file=sys.stderr)
        status = 1
    sys.exit(status)
