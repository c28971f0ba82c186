#!/usr/bin/env python3
"""Snapshots of a Linux guest with its TPM (README "Snapshots"; tests/nightly/snapshot_cells.py says what
is checked): booted once with -bios none, saved at /init's snapshot-ready, SIGKILLed, restored twice
(the second with -restore-clone). The test command runs the in-process TPM 2.0 case; the nightly
(scripts/nightly-boot) runs every case with more restores; name cases to run them here.

usage: test_snapshot_linux.py MINIVMM IMAGE [CASE...]   (CASE: swtpm-2.0, inproc-2.0, inproc-1.2)"""
import os
import sys

from tests.harness import suite
from tests.nightly import kernel_checks
from tests.nightly import snapshot_cells


def main():
    minivmm, image = sys.argv[1:3]
    wanted = sys.argv[3:] or ["inproc-2.0"]
    s = suite.Suite()
    suite.require_kvm_and_swtpm()
    if not os.path.isfile(image):
        s.check(f"the guest image {image} exists (scripts/build-guest-image; scripts/test builds it)", False)
        return s.finish()
    files = kernel_checks.BootFiles(image, s.tmp.name, extra="nightly.snapshot")
    for name in wanted:
        version, backend = snapshot_cells.CASES[name]
        for what, ok, detail in snapshot_cells.run_case(minivmm, image, files, s.tmp.name, name, version, backend):
            s.check(what, ok, detail)
    s.finish()


if __name__ == "__main__":
    main()
