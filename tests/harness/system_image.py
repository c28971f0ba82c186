"""A Debian 12 system disk as an installer leaves it, for `scripts/build-guest-image --distro debian`:
GRUB (i386-pc) in the MBR, an ext4 root on /dev/vda1, Debian's kernel with an initramfs-tools
initrd, systemd and udev, tpm2-tools and cryptsetup, a serial console in GRUB and on the kernel
command line. A second partition (/dev/vda2) is left empty for the guest's LUKS2 check, and the
disk's last sector is the boot flag of the nightly protocol (tests/linux/init). The unit
minivmm-nightly.service runs tests/linux/system-report once the system is up.

The root file system comes from mmdebstrap (Debian's packages, the host's apt sources for
bookworm), cached as a tarball in ~/.cache/minivmm/debian-system-<hash>.tar; the disk is put
together on a loop device: sfdisk, mkfs.ext4, the tarball unpacked, then `grub-install` and
`update-grub` in a chroot, as the Debian installer does. Needs root (loop devices, mount)."""
import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.harness import debs

REPO = Path(__file__).resolve().parent.parent.parent
LINUX = REPO / "tests/linux"
# What an installer's "standard system" needs here, and no more: the kernel and its initrd
# generator, systemd as init with udev, GRUB for BIOS, and the TPM users (systemd's TPM2 support
# dlopens libtss2-esys/-rc/-mu and the device TCTI; tpm2-tools brings the first three).
PACKAGES = ["linux-image-amd64", "initramfs-tools", "systemd", "systemd-sysv", "udev", "e2fsprogs", "kmod",
            "grub-pc-bin", "grub2-common", "cryptsetup", "cryptsetup-bin", "tpm2-tools", "libtss2-tcti-device0",
            "util-linux", "procps"]
SUITE = "bookworm"
RECIPE = "debian-system rootfs v1"  # part of the tarball's cache key: bump when the mmdebstrap call changes
SIZE_MIB = 2048
LUKS_MIB = 32  # /dev/vda2, for the guest's LUKS2 volume
# The installer's GRUB settings, plus the serial console (minivmm has no VGA).
GRUB_DEFAULTS = """GRUB_DEFAULT=0
GRUB_TIMEOUT=1
GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
GRUB_CMDLINE_LINUX="console=ttyS0,115200"
GRUB_TERMINAL=serial
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
"""
UNIT = """[Unit]
Description=minivmm nightly report (NIGHTLY: lines on the console)
After=multi-user.target

[Service]
Type=simple
ExecStart=/usr/local/sbin/minivmm-system-report
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
"""
HOST_TOOLS = {"mmdebstrap": "mmdebstrap", "sfdisk": "fdisk", "mkfs.ext4": "e2fsprogs", "losetup": "mount",
              "partx": "util-linux"}


class BuildError(debs.DebError):
    """The disk could not be built; the message says which step and why (debs.run's failures too)."""


def say(msg):
    print(f"build-guest-image: {msg}", flush=True)


run = debs.run


def ensure_host_tools():
    missing = sorted({pkg for tool, pkg in HOST_TOOLS.items() if not shutil.which(tool)})
    if not missing:
        return
    if os.geteuid() != 0:
        raise BuildError(f"missing host tools; install: apt-get install {' '.join(missing)}")
    say(f"installing {' '.join(missing)}")
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + missing,
        env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def host_sources():
    """The host's apt sources for bookworm (deb822 stanzas), so mmdebstrap uses the same mirror."""
    stanzas = []
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            suites = re.search(r"^Suites:(.*)$", stanza, re.M)
            if suites and any(s.split("-")[0] == SUITE for s in suites.group(1).split()):
                stanzas.append("\n".join(line for line in stanza.splitlines() if not line.startswith("#")))
    legacy = Path("/etc/apt/sources.list")
    lines = [ln for ln in (legacy.read_text().splitlines() if legacy.exists() else [])
             if re.match(rf"^deb\s.*\s{SUITE}(-\S+)?\s", ln)]
    if not stanzas and not lines:
        raise BuildError(f"the host's apt sources name no {SUITE} suite (/etc/apt/sources.list{{,.d}})")
    return "\n\n".join(stanzas) + "\n", lines


def rootfs_tarball(cache):
    """mmdebstrap's root file system, built once per package list and recipe."""
    key = hashlib.sha256("\n".join([RECIPE, SUITE] + PACKAGES).encode()).hexdigest()[:16]
    tar = cache / f"debian-system-{key}.tar"
    if tar.exists():
        say(f"root file system from the cache: {tar}")
        return tar
    cache.mkdir(parents=True, exist_ok=True)
    stanzas, lines = host_sources()
    with tempfile.TemporaryDirectory(prefix="minivmm-mmdebstrap-") as tmp:
        sources = Path(tmp) / "host.sources"
        sources.write_text(stanzas)
        mirrors = [str(sources)] if stanzas.strip() else []
        part = tar.with_name(tar.name + f".tmp{os.getpid()}")
        say(f"mmdebstrap {SUITE} (minbase + {len(PACKAGES)} packages) -> {tar} (downloads about 250 MB once)")
        start = time.monotonic()
        run(["mmdebstrap", "--variant=minbase", "--mode=root", "--format=tar",
             "--include=" + ",".join(PACKAGES), "--aptopt=Acquire::Retries \"3\"", SUITE, part] + mirrors + lines,
            stdin=subprocess.DEVNULL)
        os.replace(part, tar)
        say(f"root file system built in {time.monotonic() - start:.0f} s")
    return tar


@contextlib.contextmanager
def loop_device(image):
    dev = run(["losetup", "--find", "--show", "--partscan", image], capture_output=True, text=True).stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


def partition_node(dev, n):
    """/dev/loopNpM: made by the kernel with --partscan where devtmpfs shows it, else by partx -a,
    else created here from sysfs's major:minor (hosts without udev or devtmpfs updates)."""
    node = Path(f"{dev}p{n}")
    for attempt in range(50):
        if node.exists():
            return node
        if attempt == 10:
            subprocess.run(["partx", "-a", dev], check=False, capture_output=True)
        if attempt == 20:
            sysfs = Path(f"/sys/block/{Path(dev).name}/{node.name}/dev")
            if sysfs.exists():
                major, minor = map(int, sysfs.read_text().split(":"))
                os.mknod(node, 0o600 | 0o060000, os.makedev(major, minor))
        time.sleep(0.1)
    raise BuildError(f"no partition node {node} (tried --partscan, partx -a and sysfs)")


@contextlib.contextmanager
def mounted(what, where, *opts):
    run(["mount", *opts, what, where])
    try:
        yield where
    finally:
        subprocess.run(["umount", where], check=False)


def make_dev(root, disk, part, uuid):
    """A private /dev for the chroot: what grub-install and grub-mkconfig probe, nothing of the host's."""
    dev = root / "dev"
    for name in ("null", "zero", "random", "urandom"):
        st = os.stat(f"/dev/{name}")
        os.mknod(dev / name, 0o666 | 0o020000, st.st_rdev)
    for node in (disk, part):
        os.mknod(dev / Path(node).name, 0o600 | 0o060000, os.stat(node).st_rdev)
    (dev / "disk/by-uuid").mkdir(parents=True)
    os.symlink(f"../../{Path(part).name}", dev / "disk/by-uuid" / uuid)


def configure(root, uuid):
    """What the installer writes, plus the nightly report unit."""
    (root / "etc/fstab").write_text(f"UUID={uuid} / ext4 errors=remount-ro 0 1\n")
    (root / "etc/hostname").write_text("minivmm-debian\n")
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n127.0.1.1 minivmm-debian\n")
    (root / "etc/default/grub").write_text(GRUB_DEFAULTS)
    report = root / "usr/local/sbin/minivmm-system-report"
    report.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(LINUX / "system-report", report)
    report.chmod(0o755)
    shutil.copyfile(LINUX / "report.sh", root / "usr/local/sbin/minivmm-report.sh")
    unit = root / "etc/systemd/system/minivmm-nightly.service"
    unit.write_text(UNIT)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    os.symlink("/etc/systemd/system/minivmm-nightly.service", wants / "minivmm-nightly.service")
    # root logs in on the serial console without a password: a test disk, never a server.
    run(["chroot", root, "passwd", "-d", "root"], stdout=subprocess.DEVNULL)


def build(out, cache):
    if os.geteuid() != 0:
        raise BuildError("--distro needs root (loop devices, mount, chroot)")
    ensure_host_tools()
    tar = rootfs_tarball(cache)
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
    total = SIZE_MIB * 2048
    luks = LUKS_MIB * 2048
    root_sectors = total - 2048 - luks - 1  # the last sector: the boot flag
    with open(tmp, "wb") as f:
        f.truncate(total * 512)
    try:
        layout = (f"label: dos\nstart=2048, size={root_sectors}, type=83, bootable\n"
                  f"start={2048 + root_sectors}, size={luks}, type=83\n")
        run(["sfdisk", "--quiet", tmp], input=layout, text=True)
        with loop_device(tmp) as disk, tempfile.TemporaryDirectory(prefix="minivmm-sysimg-") as mnt:
            part = partition_node(disk, 1)
            run(["mkfs.ext4", "-q", "-L", "root", part])
            uuid = run(["blkid", "-s", "UUID", "-o", "value", part], capture_output=True, text=True).stdout.strip()
            root = Path(mnt)
            with mounted(part, root):
                run(["tar", "-C", root, "--numeric-owner", "--xattrs", "--xattrs-include=*", "-xf", tar])
                configure(root, uuid)
                with mounted("tmpfs", root / "dev", "-t", "tmpfs", "-o", "mode=755"), \
                        mounted("proc", root / "proc", "-t", "proc"), mounted("sysfs", root / "sys", "-t", "sysfs"):
                    make_dev(root, disk, part, uuid)
                    say(f"grub-install --target=i386-pc {disk}; update-grub")
                    run(["chroot", root, "grub-install", "--target=i386-pc", disk], stderr=subprocess.STDOUT,
                        stdout=subprocess.DEVNULL)
                    run(["chroot", root, "update-grub"], stderr=subprocess.STDOUT, stdout=subprocess.DEVNULL)
                cfg = (root / "boot/grub/grub.cfg").read_text()
                if f"root=UUID={uuid}" not in cfg:
                    raise BuildError("update-grub wrote no root=UUID= line (grub.cfg has no Debian entry)")
        with open(tmp, "r+b") as f:  # the boot flag (tests/linux/init): the disk's last sector
            f.seek((total - 1) * 512)
            f.write(b"NIGHTLY-BOOT-FLAG=0\n".ljust(512, b"\0"))
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    say(f"wrote {out} ({SIZE_MIB} MiB: GRUB in the MBR, ext4 root /dev/vda1 UUID {uuid}, /dev/vda2 for LUKS2)")
