#!/usr/bin/env python3
"""Two scripts/build-guest-image runs at once, sharing a cold package cache and a work directory
(as two nightly jobs on one host do): both must succeed and write a bootable-looking image (an MBR
with the boot signature). Downloads Debian's kernel package once into a temporary cache.

usage: test_image_builder_concurrent.py BUILD_GUEST_IMAGE"""
import os
import subprocess
import sys
import tempfile


def main():
    builder = sys.argv[1]
    failed = 0
    with tempfile.TemporaryDirectory(prefix="image-builder-") as d:
        env = dict(os.environ, XDG_CACHE_HOME=os.path.join(d, "cache"))
        work = os.path.join(d, "work")
        procs = [subprocess.Popen([sys.executable, builder, "--kernel", "debian", "--work", work,
                                   "--out", os.path.join(d, f"guest{i}.img")], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in (1, 2)]
        for i, p in enumerate(procs, 1):
            out = p.communicate(timeout=900)[0]
            img = os.path.join(d, f"guest{i}.img")
            ok = p.returncode == 0 and os.path.getsize(img) == 64 << 20
            if ok:
                with open(img, "rb") as f:
                    ok = f.read(512)[510:] == b"\x55\xaa"
            print(f"{'PASS' if ok else 'FAIL'} build {i} of 2 at once: exit {p.returncode}, image written")
            if not ok:
                print(out[-3000:])
                failed += 1
        leftovers = [n for n in os.listdir(d) if ".tmp" in n]
        print(f"{'PASS' if not leftovers else 'FAIL'} no temporary files left: {leftovers}")
        failed += bool(leftovers)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
