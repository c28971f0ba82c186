"""scripts/nightly-boot's command line: options, defaults under the repository's build/, checks."""
import argparse
import os
import re
import shutil

from tests.nightly import checks


def parse(argv, description, root):
    """The command line of scripts/nightly-boot (`description`: its docstring; `root`: the repository)."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", help="raw Linux guest disk (default: build/guest-linux-debian.img, "
                                   "else build/guest-linux-minimal.img)")
    p.add_argument("--system-image", default=os.path.join(root, "build", "guest-debian-system.img"),
                   help="the debian-system cells' disk (default: build/guest-debian-system.img, made by "
                        "scripts/build-guest-image --distro debian)")
    p.add_argument("--build", action="store_true", help="build the image with scripts/build-guest-image if missing")
    p.add_argument("--minivmm", default=os.path.join(root, "build", "minivmm"), help="default: build/minivmm")
    p.add_argument("--program", default=os.path.join(root, "build", "tests", "guest", "test_guest.bin"),
                   help="the boot-sector test program for firmware-tpm (default: build/tests/guest/test_guest.bin)")
    p.add_argument("--junit", default=os.path.join(root, "build", "nightly", "junit.xml"),
                   help="JUnit XML output (default: build/nightly/junit.xml)")
    p.add_argument("--report", help="plain table output (default: report.txt next to --junit)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per VMM run (default 300)")
    p.add_argument("--system-timeout", type=float, default=900.0,
                   help="seconds per debian-system run (a systemd boot pair: ~4 min nested; default 900)")
    p.add_argument("--force", action="store_true",
                   help="run the Linux cases even where the calibration says the host cannot run a kernel")
    p.add_argument("--no-qemu", action="store_true", help="no QEMU reference column")
    p.add_argument("--qemu", default=shutil.which("qemu-system-x86_64"), help=argparse.SUPPRESS)
    p.add_argument("--cases", default="*", help="comma-separated glob patterns over case ids, e.g. "
                                                "'tpm2.0/*,qemu/*' or '*/first-boot/*' (default: all)")
    p.add_argument("--bootloader-banner", default=checks.BOOTLOADER,
                   help=f"regex of the bootloader's first COM1 output (default: {checks.BOOTLOADER})")
    p.add_argument("--list", action="store_true", help="print the case ids and exit")
    args = p.parse_args(argv)
    if args.timeout <= 0 or args.system_timeout <= 0:
        p.error("--timeout and --system-timeout must be positive")
    try:
        re.compile(args.bootloader_banner)
    except re.error as e:
        p.error(f"--bootloader-banner: {e}")
    args.report = args.report or os.path.join(os.path.dirname(os.path.abspath(args.junit)), "report.txt")
    return args
