#!/usr/bin/env python3
"""Build a raw disk image for the minivmm guest test program (see README.md).

Layout (512-byte sectors):
  LBA 0..P-1   test_guest.bin (MBR stage + program, P <= 63)
  LBA 63       config sector: "MVGCONF1", mode, boot counter, scratch area, P, TPM expectation,
               reset method, benchmark round trips, reset-loop resets
  LBA 64..127  scratch area (zero), overwritten by the disk-write check
  rest         zero up to --size
"""
import argparse
import os
import struct
import sys

SECTOR = 512
CONFIG_LBA = 63
SCRATCH_LBA = 64
SCRATCH_SECTORS = 64
CONFIG_MAGIC = b"MVGCONF1"
TRAILER_MAGIC = b"MVGTRAIL"
MODES = {"basic": 1, "reset": 2, "bench-tpm": 3, "demo": 4, "reset-loop": 5, "smp-hammer": 6}
# --tpm: what the TPM checks expect; without --tpm (0) they do not run (config.h enum tpm_expect).
TPM_EXPECT = {"none": 1, "1.2": 2, "2.0": 3, "2.0-crb": 4}  # 2.0-crb: TPM 2.0 through the CRB interface
# --reset-method: how reset mode's first boot resets (config.h enum reset_method).
RESET_METHODS = {"cf9": 0, "acpi": 1, "port92": 2, "triple": 3}
BENCH_COUNT_MAX = 1000000  # config.h BENCH_COUNT_MAX
RESETS_MAX = 1000  # config.h RESETS_MAX
# magic, mode, boot_count, scratch_lba, scratch_sectors, program_sectors, tpm, reset_method, bench_count,
# resets, boot_mark
CONFIG_FORMAT = "<8sIIIIIIIIII"


def parse_size(text):
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = text[-1] if text and text[-1] in "KMG" else ""
    try:
        value = int(text[: len(text) - len(unit)]) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad size {text!r} (examples: 8M, 65536)") from None
    if value % SECTOR:
        raise argparse.ArgumentTypeError(f"size {value} is not a multiple of {SECTOR}")
    return value


def config_sector(mode, program_sectors, tpm=None, reset_method="cf9", bench_count=1000, resets=0, boot_mark=False):
    data = struct.pack(CONFIG_FORMAT, CONFIG_MAGIC, MODES[mode], 0, SCRATCH_LBA, SCRATCH_SECTORS,
                       program_sectors, TPM_EXPECT[tpm] if tpm else 0, RESET_METHODS[reset_method],
                       bench_count, resets, 1 if boot_mark else 0)
    return data.ljust(SECTOR, b"\0")


def read_config(image_path):
    """Returns the config sector fields of an image as a dict (used by the tests)."""
    with open(image_path, "rb") as f:
        f.seek(CONFIG_LBA * SECTOR)
        raw = f.read(struct.calcsize(CONFIG_FORMAT))
    (magic, mode, boot_count, scratch_lba, scratch_sectors, program, tpm, reset_method,
     bench_count, resets, boot_mark) = struct.unpack(CONFIG_FORMAT, raw)
    return {"magic": magic, "mode": mode, "boot_count": boot_count, "scratch_lba": scratch_lba,
            "scratch_sectors": scratch_sectors, "program_sectors": program, "tpm": tpm,
            "reset_method": reset_method, "bench_count": bench_count, "resets": resets,
            "boot_mark": boot_mark}


def check_program(program):
    if len(program) < SECTOR or len(program) % SECTOR:
        raise ValueError(f"program size {len(program)} is not a positive multiple of {SECTOR}")
    if len(program) > CONFIG_LBA * SECTOR:
        raise ValueError(f"program has {len(program) // SECTOR} sectors, at most {CONFIG_LBA} fit before the config sector")
    if program[510:512] != b"\x55\xaa":
        raise ValueError("program has no 0x55AA boot signature")
    if program[-16:-8] != TRAILER_MAGIC:
        raise ValueError("program does not end with the MVGTRAIL trailer (not test_guest.bin?)")


def make_image(program_path, out_path, mode, size, tpm=None, reset_method="cf9", bench_count=1000, resets=5,
               boot_mark=False):
    if mode in ("bench-tpm", "demo") and tpm not in ("1.2", "2.0", "2.0-crb"):
        raise ValueError(f"--mode {mode} needs --tpm 1.2, 2.0 or 2.0-crb")
    if mode == "smp-hammer" and tpm != "2.0":
        raise ValueError("--mode smp-hammer needs --tpm 2.0 (and minivmm -smp 2)")
    if not 1 <= bench_count <= BENCH_COUNT_MAX:
        raise ValueError(f"--bench-count must be 1..{BENCH_COUNT_MAX}")
    if not 1 <= resets <= RESETS_MAX:
        raise ValueError(f"--resets must be 1..{RESETS_MAX}")
    with open(program_path, "rb") as f:
        program = f.read()
    check_program(program)
    minimum = (SCRATCH_LBA + SCRATCH_SECTORS) * SECTOR
    if size < minimum:
        raise ValueError(f"image size {size} is below the minimum {minimum}")
    tmp = out_path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(program)
        f.write(bytes(CONFIG_LBA * SECTOR - len(program)))
        f.write(config_sector(mode, len(program) // SECTOR, tpm, reset_method, bench_count,
                              resets if mode == "reset-loop" else 0, boot_mark))
        f.truncate(size)  # zero-filled scratch area and the rest
    os.replace(tmp, out_path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--program", required=True, help="test_guest.bin")
    parser.add_argument("--out", required=True, help="raw image to write")
    parser.add_argument("--mode", required=True, choices=sorted(MODES))
    parser.add_argument("--size", type=parse_size, default=8 << 20, help="image size (default 8M)")
    parser.add_argument("--tpm", choices=sorted(TPM_EXPECT),
                        help="run the TPM checks expecting no TPM, TPM 1.2 or TPM 2.0 (default: no TPM checks); "
                             "demo mode: the TPM version to report on")
    parser.add_argument("--reset-method", choices=sorted(RESET_METHODS), default="cf9",
                        help="reset mode: 0x06 to port 0xCF9 (default), the FADT RESET_REG, port 0x92 bit 0, "
                             "or a triple fault")
    parser.add_argument("--bench-count", type=int, default=1000,
                        help="bench-tpm mode (needs --tpm 1.2/2.0): TPM GetRandom round trips (default 1000)")
    parser.add_argument("--resets", type=int, default=5,
                        help="reset-loop mode: resets (by --reset-method) before the power-off, 1..1000 (default 5)")
    parser.add_argument("--boot-mark", action="store_true",
                        help="before its final MVG: DONE line the program writes 123 to port 0x3F0, minivmm's "
                             "boot-complete marker (devices/boot_marker.hpp)")
    args = parser.parse_args(argv)
    try:
        make_image(args.program, args.out, args.mode, args.size, args.tpm, args.reset_method, args.bench_count,
                   args.resets, args.boot_mark)
    except (OSError, ValueError) as e:
        print(f"mkimage.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
