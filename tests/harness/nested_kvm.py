"""A real KVM on any x86-64 Linux host: Debian's stock kernel booted under QEMU TCG with `-cpu max`
(emulated AMD SVM with nested paging) loads kvm-amd, and a command runs inside that L1 VM with
/dev/kvm, in a chroot of the host's own root file system shared read-only over 9p. The host's build
tree, swtpm, SeaBIOS, QEMU and Python are used as they are; directories named with `rw` (and the
current directory when it is only on a tmpfs) are shared writable; /tmp, /run, /var/tmp and /dev/shm
are fresh tmpfs inside. The command's stdout and stderr arrive on the L1's COM1 (our stdout), its exit
status through a writable exchange directory.

The L1's kernel and initramfs are built once from Debian packages (linux-image-amd64's kernel,
busybox-static) and cached in ~/.cache/minivmm/nested-<hash>/. With icount=True QEMU runs under
`-icount shift=0,sleep=off`: the L1's clock counts executed instructions, so times taken inside are
deterministic (benchmarks); that forces one TCG thread (smp=1)."""
import hashlib
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.harness import debs, initramfs

# kvm-amd (with its dependencies kvm, irqbypass, ccp) and 9p over virtio-pci.
MODULES = ["kvm_amd", "virtio_pci", "9pnet_virtio", "9p"]
RECIPE = "nested-kvm L1 v3"  # part of the cache key: bump when INIT or MODULES change meaning
# kvm-amd without virtual GIF and virtual VMLOAD/VMSAVE: QEMU 7.2's TCG emulation of them hung the
# L1 now and then (vCPU spinning with a timer interrupt pending in its LAPIC, never delivered).
KVM_AMD_ARGS = "vgif=0 vls=0"
TMPFS = ["/tmp", "/run", "/var/tmp", "/dev/shm"]
START, END = "@@nested-kvm:start@@", "@@nested-kvm:end@@"
LOCKUP = re.compile(rb"soft lockup - CPU#\d+ stuck for (\d+)s")
LOCKUP_LIMIT = 120  # seconds: a hung L1 (it prints this every ~30 s) is stopped instead of waited for
# Host seconds without the L1's heartbeat (every second of its clock: under -icount that can be
# tens of host seconds) after which the L1 counts as hung (the test of
# this path sets MINIVMM_NESTED_HEARTBEAT_LIMIT lower).
HEARTBEAT_LIMIT = int(os.environ.get("MINIVMM_NESTED_HEARTBEAT_LIMIT", "300"))
NOT_RUN = 125  # status when the command never ran or its status was lost
# Host seconds without a heartbeat after which the host sends the L1 a byte on its serial line (again
# each period while it stays silent; four times as long under -icount): QEMU 7.2's TCG can lose the
# update of a vCPU's pending interrupts (a plain |= on interrupt_request from the vCPU thread in
# helper_vmrun races with the main loop's timer callback; made atomic upstream in QEMU 10.2), leaving
# the L1's timer interrupt stuck in its LAPIC's IRR until some other interrupt arrives: the UART's
# receive interrupt is one. (The test of this path sets MINIVMM_NESTED_NUDGE_AFTER lower.)
NUDGE_AFTER = int(os.environ.get("MINIVMM_NESTED_NUDGE_AFTER", "15"))
# The L1's clock (-icount). "real" (the default) is the host's. "instructions" counts each executed
# instruction as 1 ns while the L1 is busy and follows the host's clock while it is idle, so the L2
# guests' time-outs do not depend on how fast or loaded the host is: SeaBIOS gives a TPM2_SelfTest 2 s;
# libtpms needs 0.44 s of that clock here, but 1.0-2.5 s of host time in an L1 on our 2-core host, so
# on a loaded host SeaBIOS gave up on the TPM. It does not suit Linux L2 guests: their boot polls the
# PIT and ports with costly exits that count few instructions, so their waits crawl (minutes of host
# time for a second of the L1's). "virtual" skips idle time too (fully deterministic: benchmarks,
# --icount).
CLOCKS = {"instructions": ["-icount", "shift=0,sleep=on"],
          "virtual": ["-icount", "shift=0,sleep=off"],
          "real": []}
# Under the real clock TCG hands the L1 the host's raw TSC (QEMU 7.2 cpu_get_ticks: host rdtsc plus an
# offset that only undoes backward steps). A host that is itself a VM can see that TSC step forward by
# hours (a snapshot restored, a vCPU moved; such hosts boot with tsc=unstable and use kvm-clock). An
# L1 clocked by its TSC then jumps with it: its soft-lockup watchdog reported "CPU#0 stuck for 24276s"
# ten minutes into a CI run, and every time-out inside would have expired at once. So that L1 keeps
# time with the HPET (QEMU's virtual clock, the host's CLOCK_MONOTONIC) and sched_clock is clamped to
# it. Under -icount the TSC counts instructions and cannot step.
KERNEL_ARGS = {"instructions": "", "virtual": "", "real": " tsc=unstable"}

# /init of the L1 (busybox sh). /etc/shares lists "tag path" for the writable shares.
INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() { echo "nested-kvm: $*"; poweroff -f; }
while read -r m; do
  args=; [ "$m" = kvm_amd ] && args="KVM_AMD_ARGS"
  insmod "/lib/modules/$m.ko" $args || fail "insmod $m $args failed"
done </etc/modules
[ -c /dev/kvm ] || fail "/dev/kvm did not appear (kvm_amd: $(dmesg | grep -m1 -i 'kvm\|svm'))"
opts=trans=virtio,version=9p2000.L,msize=512000
mkdir -p /host /xchg
mount -t 9p -o $opts,ro,cache=loose host /host || fail "cannot mount the host's root over 9p"
mount -t 9p -o $opts,cache=mmap xchg /xchg || fail "cannot mount the exchange directory"
mount -t proc proc /host/proc
mount -t sysfs sysfs /host/sys
mount -t devtmpfs devtmpfs /host/dev
mkdir -p /host/dev/pts
mount -t devpts -o newinstance,ptmxmode=0666 devpts /host/dev/pts
mount --bind /host/dev/pts/ptmx /host/dev/ptmx
for d in TMPFS_DIRS; do [ -d "/host$d" ] && mount -t tmpfs -o mode=1777 tmpfs "/host$d"; done
mount -t securityfs securityfs /host/sys/kernel/security 2>/dev/null
while read -r tag path; do
  mkdir -p "/host$path" 2>/dev/null
  mount -t 9p -o $opts,cache=mmap "$tag" "/host$path" || fail "cannot mount $path"
done </xchg/shares
mkdir -p /host/run/nested-kvm && mount --bind /xchg /host/run/nested-kvm
ip link set lo up 2>/dev/null
hostname "$(cat /xchg/hostname)"
stty -F /dev/ttyS0 raw -echo
# a root shell on COM2 for debugging (connected only with MINIVMM_NESTED_DEBUG)
[ -f /xchg/debug ] && setsid sh -c 'exec sh -i </dev/ttyS1 >/dev/ttyS1 2>&1' &
# a heartbeat for the host: a hung L1 stops it (nested_kvm.HEARTBEAT_LIMIT)
( while :; do date +%s >/xchg/heartbeat; sleep 1; done ) &
echo $! >/xchg/heartbeat.pid  # for the test that stops it (/run/nested-kvm/heartbeat.pid inside)
echo "START_MARK" >/dev/ttyS0
# through a pipe, as on a CI host: programs see no terminal
chroot /host /bin/sh /run/nested-kvm/command.sh </dev/null 2>&1 | cat >/dev/ttyS0
sync
echo "END_MARK" >/dev/ttyS0
poweroff -f
""".replace("TMPFS_DIRS", " ".join(TMPFS)).replace("KVM_AMD_ARGS", KVM_AMD_ARGS).replace("START_MARK", START).replace("END_MARK", END)


class NestedError(Exception):
    """The nested VM cannot be had here; the message names what is missing."""


def qemu_binary():
    q = shutil.which("qemu-system-x86_64")
    if not q:
        raise NestedError("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")
    return q


def available_mib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    return 0


def _say(message):
    print(message, file=sys.stderr, flush=True)


def l1_image(say=_say):
    """(vmlinuz, initramfs) of the L1, built once from Debian packages and cached."""
    try:
        version, depends = debs.candidate("linux-image-amd64")
        bb_version, _ = debs.candidate("busybox-static")
    except debs.DebError as e:
        raise NestedError(str(e)) from None
    key = hashlib.sha256(f"{version}\n{depends}\n{bb_version}\n{RECIPE}\n{MODULES}\n{INIT}".encode()).hexdigest()[:16]
    cache = debs.CACHE / f"nested-{key}"
    kernel, initrd = cache / "vmlinuz", cache / "initramfs.gz"
    if kernel.exists() and initrd.exists():
        return kernel, initrd
    say("nested-kvm: building the L1 kernel and initramfs from Debian packages (once)")
    with tempfile.TemporaryDirectory(prefix="nested-kvm-build-") as work:
        try:
            k = debs.KernelPackage(work, say)
            modules = k.modules(MODULES)
            bb_deb, _ = debs.fetch("busybox-static", say)
            busybox = debs.extract(bb_deb, Path(work) / "busybox") / "bin/busybox"
            image = initramfs.pack(initramfs.base(busybox, INIT.encode(), modules))
        except (debs.DebError, ValueError, subprocess.CalledProcessError) as e:
            raise NestedError(f"cannot build the L1 image: {e}") from None
        tmp = Path(tempfile.mkdtemp(prefix="tmp-nested-", dir=debs.CACHE))
        shutil.copyfile(k.vmlinuz, tmp / "vmlinuz")
        (tmp / "initramfs.gz").write_bytes(image)
        try:
            tmp.rename(cache)
        except OSError:  # another process cached it first
            shutil.rmtree(tmp, ignore_errors=True)
    return kernel, initrd


def under_tmpfs(path):
    return any(path == d or path.startswith(d + "/") for d in TMPFS)


def command_script(argv, cwd, env):
    lines = ["# generated by tests/harness/nested_kvm.py"]
    for name, value in sorted(env.items()):
        if name.isidentifier():
            lines.append(f"export {name}={shlex.quote(value)}")
    lines.append(f"cd {shlex.quote(cwd)} || {{ echo {NOT_RUN} >/run/nested-kvm/status; exit; }}")
    lines.append(" ".join(shlex.quote(a) for a in argv))
    lines.append("echo $? >/run/nested-kvm/status")
    return "\n".join(lines) + "\n"


def run(argv, cwd=None, env=None, rw=(), mem_mib=4096, smp=1, icount=False, timeout=None, out=None,
        say=None, clock=None):
    """Runs argv inside the nested VM; returns its exit status. Output goes to `out` (default our
    stdout) as it arrives. `clock`: one of CLOCKS (icount=True means "virtual"). Raises NestedError
    when the VM cannot be started."""
    clock = "virtual" if icount else clock or "real"
    if clock not in CLOCKS:
        raise NestedError(f"unknown L1 clock {clock!r} (one of {', '.join(CLOCKS)})")
    if smp > 1 and clock != "real":
        raise NestedError("an L1 with more than one CPU needs the real clock (-icount runs one CPU)")
    out = out or sys.stdout.buffer
    say = say or _say
    qemu = qemu_binary()
    need = mem_mib + 512
    if available_mib() < need:
        raise NestedError(f"not enough free memory for the nested VM: {available_mib()} MiB available, "
                          f"{need} MiB needed (--mem)")
    kernel, initrd = l1_image(say)
    cwd = os.path.abspath(cwd or os.getcwd())
    env = dict(os.environ if env is None else env, MINIVMM_NESTED="1")
    shares = sorted({os.path.realpath(p) for p in rw}, key=len)
    if under_tmpfs(cwd) and not any(cwd == s or cwd.startswith(s + "/") for s in shares):
        shares.append(cwd)
    for s in shares:
        if not os.path.isdir(s):
            raise NestedError(f"cannot share {s}: not a directory")
    with tempfile.TemporaryDirectory(prefix="nested-kvm-") as xchg:
        Path(xchg, "command.sh").write_text(command_script(argv, cwd, env))
        Path(xchg, "shares").write_text("".join(f"rw{i} {p}\n" for i, p in enumerate(shares)))
        Path(xchg, "hostname").write_text("nested-kvm\n")
        cmd = [qemu, "-accel", "tcg" if smp == 1 else "tcg,thread=multi", "-cpu", "max",
               "-m", f"{mem_mib}M", "-smp", str(smp),
               "-display", "none", "-vga", "none", "-nodefaults", "-no-user-config", "-no-reboot",
               "-serial", "stdio",
               "-kernel", str(kernel), "-initrd", str(initrd),
               "-append", "console=ttyS0 quiet loglevel=1 panic=-1 nokaslr no5lvl mitigations=off"
               + KERNEL_ARGS[clock],
               "-virtfs", "local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap",
               "-virtfs", f"local,path={xchg},mount_tag=xchg,security_model=none"]
        cmd += [a for i, p in enumerate(shares)
                for a in ("-virtfs", f"local,path={p},mount_tag=rw{i},security_model=none,multidevs=remap")]
        cmd += CLOCKS[clock]
        debug = os.environ.get("MINIVMM_NESTED_DEBUG")
        if debug:  # the QEMU monitor and a root shell in the L1, as unix sockets in that directory
            Path(xchg, "debug").write_text("")
            cmd += ["-monitor", f"unix:{debug}/monitor.sock,server=on,wait=off",
                    "-serial", f"unix:{debug}/shell.sock,server=on,wait=off"]
        else:
            cmd += ["-monitor", "none"]
        # Under -icount a busy L1's clock runs slower than the host's: its heartbeat can be 20 s apart.
        nudge_after = NUDGE_AFTER if clock == "real" else 4 * NUDGE_AFTER
        return _relay(cmd, xchg, timeout, out, say, nudge_after)


def _relay(cmd, xchg, timeout, out, say, nudge_after):
    """Starts QEMU, copies the command's output (between the markers) to out, returns its status."""
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
    previous = {s: signal.signal(s, lambda *_: (_stop(proc), sys.exit(128 + s))) for s in (signal.SIGTERM,
                                                                                          signal.SIGINT)}
    started, pending, head = False, b"", b""
    recent = b""  # the last output of the VM, whatever it was, for the hang message
    born = time.monotonic()  # a soft lockup reported as longer than this L1 has lived is a clock step
    stepped = None  # the last such report (it stays in the window searched below)
    deadline = born + timeout if timeout else None
    heartbeat = Path(xchg, "heartbeat")
    alive = nudged = time.time()  # the L1's last sign of life (boot start, then its heartbeat); last nudge
    stalled_since = None  # the last heartbeat before a silence that got nudges
    beating = False  # the L1 has booted and written a heartbeat (a boot is not nudged)
    try:
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                say(f"nested-kvm: error: the command did not finish within {timeout:g} s; stopped")
                _stop(proc)
                return NOT_RUN
            try:
                alive, beating = max(alive, heartbeat.stat().st_mtime), True
            except FileNotFoundError:
                pass
            now = time.time()
            if now - alive > HEARTBEAT_LIMIT:
                tail = [l for l in recent.decode(errors="replace").splitlines() if l.strip()][-5:]
                say(f"nested-kvm: error: the nested VM hung (no heartbeat for {HEARTBEAT_LIMIT} s: its "
                    "kernel no longer runs; an emulation fault of QEMU TCG, not of the command); stopped"
                    + ("; its last lines: " + " | ".join(tail) if tail else ""))
                _stop(proc)
                return NOT_RUN
            if beating and now - alive > nudge_after and now - nudged > nudge_after:
                if stalled_since is None:
                    stalled_since = alive
                    say(f"nested-kvm: no heartbeat from the nested VM for {now - alive:.0f} s; sending it serial "
                        "interrupts (QEMU 7.2's TCG can lose a pending timer interrupt)")
                nudged = now
                try:
                    proc.stdin.write(b"\0")
                    proc.stdin.flush()
                except OSError:
                    pass
            elif stalled_since is not None and now - alive < nudge_after:
                say(f"nested-kvm: the nested VM's heartbeat is back after {alive - stalled_since:.0f} s")
                stalled_since = None
            if not select.select([proc.stdout], [], [], min(5, left) if left is not None else 5)[0]:
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            pending += chunk
            recent = (recent + chunk)[-2000:]
            # Search what the VM printed last, not `pending`: once started, pending keeps only a few
            # bytes of the previous read, and a lockup line split across two reads went unseen.
            lockup = ([None] + list(LOCKUP.finditer(recent[-300:])))[-1]  # the latest report
            if lockup and int(lockup.group(1)) > time.monotonic() - born + 60 and lockup.group(0) != stepped:
                # longer than the L1 has existed: its clock stepped, its kernel did not hang
                stepped = lockup.group(0)
                say(f"nested-kvm: warning: the nested VM's clock stepped ({stepped.decode(errors='replace')} "
                    f"after {time.monotonic() - born:.0f} s); not a hang, going on")
            elif lockup and int(lockup.group(1)) >= LOCKUP_LIMIT and lockup.group(0) != stepped:
                say(f"nested-kvm: error: the nested VM's kernel hung ({lockup.group(0).decode(errors='replace')}); "
                    "stopped")
                _stop(proc)
                return NOT_RUN
            if not started:
                at = pending.find(START.encode() + b"\n")
                if at < 0:
                    head = (head + pending)[-4000:]
                    pending = pending[-len(START) - 1:]
                    continue
                started, pending = True, pending[at + len(START) + 1:]
            end = pending.find(END.encode())
            if end >= 0:
                out.write(pending[:end])
                out.flush()
                pending = b""
                break
            keep = len(END)  # a marker may be split across reads
            out.write(pending[:-keep])
            out.flush()
            pending = pending[-keep:]
        proc.wait(timeout=60)
    finally:
        _stop(proc)
        for s, h in previous.items():
            signal.signal(s, h)
    status = Path(xchg, "status")
    if status.exists() and status.read_text().strip().isdigit():
        return int(status.read_text())
    text = (head + pending).decode(errors="replace").strip().splitlines()
    say("nested-kvm: error: the nested VM stopped before the command finished "
        f"(QEMU exit {proc.returncode}); its last lines: " + " | ".join(text[-8:]))
    return NOT_RUN


def _stop(proc):
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
