#!/usr/bin/env python3
"""Bad input gives one clear line naming the problem and the documented exit status, never a
crash or a half-started VM. Needs no KVM for most cases (errors are caught before KVM set-up).

usage: test_cli_errors.py MINIVMM"""
import os
import struct
import subprocess
import sys

from tests.harness import suite

BIOS = "/usr/share/seabios/bios-256k.bin"


def main():
    minivmm = sys.argv[1]
    s = suite.Suite()
    disk = os.path.join(s.tmp.name, "disk.img")
    with open(disk, "wb") as f:
        f.write(b"\0" * 1024 * 1024)
    odd = os.path.join(s.tmp.name, "odd.img")
    with open(odd, "wb") as f:
        f.write(b"\0" * 1000)
    bad_bios = os.path.join(s.tmp.name, "bios.bin")
    with open(bad_bios, "wb") as f:
        f.write(b"\0" * 1000)

    cases = [
        ("no arguments", [], 2, "no disk image"),
        ("unknown option", ["-frob", disk], 2, "unknown option -frob"),
        ("bad -m", ["-m", "lots", disk], 2, "-m"),
        ("-m too small", ["-m", "8M", disk], 2, "out of range"),
        ("bad -smp", ["-smp", "0", disk], 2, "-smp"),
        ("bad -serial", ["-serial", "pty", disk], 2, "-serial"),
        ("missing option value", [disk, "-bios"], 2, "needs a value"),
        ("missing disk", [os.path.join(s.tmp.name, "nope.img")], 3, "nope.img"),
        ("disk is a directory", [s.tmp.name], 3, s.tmp.name),
        ("disk size not a multiple of 512", [odd], 3, "512"),
        ("missing BIOS", ["-bios", "/nonexistent/bios.bin", disk], 3, "/nonexistent/bios.bin"),
        ("BIOS of a bad size", ["-bios", bad_bios, disk], 3, "64 KiB"),
        ("unwritable serial file", ["-serial", "file:/nonexistent/dir/s.log", disk], 3, "/nonexistent/dir/s.log"),
    ]
    # Output files: checked, not created or truncated, before anything else happens.
    precious = os.path.join(s.tmp.name, "precious.txt")
    with open(precious, "w") as f:
        f.write("precious\n")
    link = os.path.join(s.tmp.name, "link.txt")
    os.symlink(precious, link)
    d2 = os.path.join(s.tmp.name, "d2.img")
    with open(d2, "wb") as f:
        f.write(b"\x5a" * 1024 * 1024)
    cases += [
        ("-debugcon into the disk image", ["-debugcon", f"file:{d2}", d2], 3, f"is the disk image {d2}"),
        ("-serial into the disk image", ["-serial", f"file:{d2}", d2], 3, f"is the disk image {d2}"),
        ("-serial into the BIOS", ["-serial", f"file:{BIOS}", disk], 3, f"is the BIOS {BIOS}"),
        ("-serial through a symbolic link", ["-serial", f"file:{link}", disk], 3, "is a symbolic link"),
        ("-serial into a directory", ["-serial", f"file:{s.tmp.name}", disk], 3, "Is a directory"),
        ("-dump-acpi in a missing directory", ["-dump-acpi", "/nonexistent/dir/acpi", disk], 3, "/nonexistent/dir/acpi"),
    ]
    # Cheap checks come before /dev/kvm: sizes, TPM arguments, the TPM itself.
    foreign = os.path.join(s.tmp.name, "home")
    os.mkdir(foreign)
    with open(os.path.join(foreign, "notes.txt"), "w") as f:
        f.write("mine\n")
    os.symlink(foreign, os.path.join(s.tmp.name, "tpmlink"))
    cases += [
        ("-m 0 is out of range", ["-m", "0", disk], 2, "-m: 0 is out of range (32M to 1T)"),
        ("-m not whole MiB", ["-m", "33554433K", disk], 2, "-m: 33554433K is not a whole number of MiB"),
        ("-tpm-sock path too long", ["-tpm-sock", "/tmp/" + "x" * 200, disk], 2, "is 205 bytes long"),
        ("-tpm-sock missing", ["-tpm-sock", os.path.join(s.tmp.name, "no-sock"), disk], 6,
         "cannot connect to swtpm control socket"),
        ("-tpm-state someone's directory", ["-tpm-state", foreign, disk], 6, "is not empty and was not made by minivmm"),
        ("-tpm-state symbolic link", ["-tpm-state", os.path.join(s.tmp.name, "tpmlink"), disk], 6, "is a symbolic link"),
        ("-tpm-swtpm with -tpm-sock", ["-tpm-swtpm", os.path.join(s.tmp.name, "sw"), "-tpm-sock", "/x", disk], 2,
         "-tpm-swtpm, -tpm-sock and -tpm-state are mutually exclusive"),
        ("-tpm-swtpm with -tpm-state", ["-tpm-swtpm", os.path.join(s.tmp.name, "sw"), "-tpm-state", "d", disk], 2,
         "-tpm-swtpm, -tpm-sock and -tpm-state are mutually exclusive"),
        ("-tpm-swtpm empty", ["-tpm-swtpm", "", disk], 2, "-tpm-swtpm: empty directory name"),
        ("-tpm-swtpm 1.2 with crb", ["-tpm-swtpm", os.path.join(s.tmp.name, "sw"), "-tpm-version", "1.2",
                                     "-tpm-interface", "crb", disk], 2, "-tpm-interface crb needs a TPM 2.0"),
        ("-tpm-swtpm someone's directory", ["-tpm-swtpm", foreign, disk], 6, "which is not swtpm's"),
        ("-tpm-swtpm symbolic link", ["-tpm-swtpm", os.path.join(s.tmp.name, "tpmlink"), disk], 6, "is a symbolic link"),
    ]
    # -tpm-ca (the EK certificates' CA): checked whole before anything is created; the state
    # directory named with it must not appear (checked below).
    ca_state = os.path.join(s.tmp.name, "ca-tpm-state")
    ca_dir, other = os.path.join(s.tmp.name, "ca"), os.path.join(s.tmp.name, "other-ca")
    for d in (ca_dir, other):
        os.mkdir(d)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-subj", "/CN=test CA", "-keyout", os.path.join(d, "ca.key"), "-out", os.path.join(d, "ca.pem"),
                        "-days", "2"], check=True, capture_output=True)
    os.replace(os.path.join(other, "ca.key"), os.path.join(ca_dir, "ca.key"))  # ca_dir: a key of another CA
    cases += [
        ("-tpm-ca without -tpm-state", ["-tpm-ca", ca_dir, disk], 2, "-tpm-ca is only valid with -tpm-state"),
        ("-tpm-ca with TPM 1.2: checked as with 2.0", ["-tpm-state", ca_state, "-tpm-version", "1.2", "-tpm-ca", ca_dir,
                                                       disk], 3,
         f"-tpm-ca: {ca_dir}/ca.key is not the private key of {ca_dir}/ca.pem"),
        ("-tpm-ca missing", ["-tpm-state", ca_state, "-tpm-ca", os.path.join(s.tmp.name, "no-ca"), disk], 3,
         "-tpm-ca: cannot open directory"),
        ("-tpm-ca without its key", ["-tpm-state", ca_state, "-tpm-ca", other, disk], 3,
         f"-tpm-ca: cannot open {other}/ca.key: No such file or directory"),
        ("-tpm-ca key of another CA", ["-tpm-state", ca_state, "-tpm-ca", ca_dir, disk], 3,
         f"-tpm-ca: {ca_dir}/ca.key is not the private key of {ca_dir}/ca.pem"),
    ]
    # -kernel: the files and the boot protocol are checked before /dev/kvm too.
    bz = os.path.join(s.tmp.name, "bzImage")
    header = bytearray(28 * 512 + 4096)
    header[0x1F1] = 27
    struct.pack_into("<H", header, 0x1FE, 0xAA55)  # boot flag
    struct.pack_into("<I", header, 0x202, 0x53726448)  # "HdrS"
    struct.pack_into("<H", header, 0x206, 0x020F)
    header[0x211] = 1  # LOADED_HIGH
    struct.pack_into("<I", header, 0x22C, 0x7FFFFFFF)
    struct.pack_into("<I", header, 0x238, 255)  # cmdline_size
    with open(bz, "wb") as f:
        f.write(header)
    big = os.path.join(s.tmp.name, "big.initrd")
    with open(big, "wb") as f:
        f.truncate(20 << 20)
    os.symlink(bz, os.path.join(s.tmp.name, "vmlinuz"))
    # The same kernel with XLF_KERNEL_64 (xloadflags bit 0), and one with protocol 2.11 (no xloadflags).
    bz64, bz211 = os.path.join(s.tmp.name, "bzImage64"), os.path.join(s.tmp.name, "bzImage211")
    for path, version, xloadflags in ((bz64, 0x020F, 1), (bz211, 0x020B, 0)):
        variant = bytearray(header)
        struct.pack_into("<H", variant, 0x206, version)
        struct.pack_into("<H", variant, 0x236, xloadflags)
        with open(path, "wb") as f:
            f.write(variant)
    # A 64-bit bzImage whose payload (payload_offset/length, 0x248/0x24C) is an xz stream cut short, and a
    # -kernel-cache that is a symbolic link.
    bzxz = os.path.join(s.tmp.name, "bzImage-xz")
    broken = bytearray(header)
    struct.pack_into("<H", broken, 0x206, 0x020F)
    struct.pack_into("<H", broken, 0x236, 1)
    struct.pack_into("<II", broken, 0x248, 0, 64)
    broken[28 * 512:28 * 512 + 64] = bytes.fromhex("fd377a585a000004e6d6b446") + bytes(52)
    with open(bzxz, "wb") as f:
        f.write(broken)
    os.symlink(s.tmp.name, os.path.join(s.tmp.name, "cachelink"))
    # An ELF vmlinux (ELF-64 header, a PT_LOAD at 16 MiB, a PT_NOTE with Xen's PVH entry note), and one cut short.
    note = struct.pack("<III", 4, 4, 18) + b"Xen\0" + struct.pack("<I", 0x1000000)
    ehdr = b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0x1000000, 64, 0, 0, 64, 56, 2, 64, 0, 0)
    phdrs = (struct.pack("<IIQQQQQQ", 1, 5, 0x1000, 0x1000000, 0x1000000, 0x1000, 0x2000, 0x1000) +
             struct.pack("<IIQQQQQQ", 4, 4, 0x2000, 0, 0, len(note), len(note), 4))
    image = bytearray(0x3000)
    image[:len(ehdr + phdrs)] = ehdr + phdrs
    image[0x2000:0x2000 + len(note)] = note
    elf, elf_cut = os.path.join(s.tmp.name, "vmlinux"), os.path.join(s.tmp.name, "vmlinux-cut")
    with open(elf, "wb") as f:
        f.write(image)
    with open(elf_cut, "wb") as f:
        f.write(image[:0x1800])
    cases += [
        ("-initrd without -kernel", ["-initrd", big, disk], 2, "-initrd needs -kernel"),
        ("-append without -kernel", ["-append", "quiet", disk], 2, "-append needs -kernel"),
        ("-kernel missing", ["-kernel", "/nonexistent/bzImage"], 3, "-kernel /nonexistent/bzImage: cannot open"),
        ("-kernel not a bzImage", ["-kernel", bad_bios], 3, "not a Linux bzImage"),
        ("-kernel through a symbolic link", ["-kernel", os.path.join(s.tmp.name, "vmlinuz")], 3, "is a symbolic link"),
        ("-append longer than the kernel takes", ["-kernel", bz, "-append", "x" * 300], 3, "accepts at most 255"),
        ("-initrd too large for the RAM", ["-m", "32M", "-kernel", bz, "-initrd", big], 3,
         "the initrd (20.0 MiB) does not fit"),
        ("-serial into the kernel", ["-kernel", bz, "-serial", f"file:{bz}"], 3, f"is the kernel {bz}"),
        # -bios none (vmm/direct_boot.hpp): only with -kernel, only a kernel with a 64-bit entry.
        ("-bios none without -kernel", ["-bios", "none", disk], 2, "-bios none needs -kernel"),
        ("-bios none, a kernel without XLF_KERNEL_64", ["-bios", "none", "-kernel", bz], 3, "XLF_KERNEL_64 is clear"),
        ("-bios none, protocol 2.11", ["-bios", "none", "-kernel", bz211], 3, "boot protocol 2.11 has no 64-bit entry"),
        ("-bios none, a 64-bit kernel with an initrd too large", ["-bios", "none", "-m", "32M", "-kernel", bz64,
                                                                  "-initrd", big], 3, "does not fit"),
        ("-kernel-entry without -bios none", ["-kernel-entry", "pvh", "-kernel", bz64], 2, "-kernel-entry needs -bios none"),
        ("-kernel-entry of another kind", ["-bios", "none", "-kernel-entry", "fast", "-kernel", bz64], 2,
         "-kernel-entry takes auto, pvh or bzimage"),
        ("-kernel-cache without -bios none", ["-kernel-cache", s.tmp.name, "-kernel", bz64], 2,
         "-kernel-cache needs -bios none"),
        ("-kernel-cache with -kernel-entry bzimage", ["-bios", "none", "-kernel-entry", "bzimage", "-kernel-cache",
                                                      s.tmp.name, "-kernel", bz64], 2, "not with -kernel-entry bzimage"),
        ("-kernel-entry pvh, a payload that is no stream", ["-bios", "none", "-kernel-entry", "pvh", "-kernel", bz64], 3,
         "-kernel-entry pvh: its payload is in no compression format minivmm knows"),
        ("-bios none, a corrupt xz payload", ["-bios", "none", "-kernel", bzxz], 3, "the kernel's xz payload is"),
        ("an ELF vmlinux through SeaBIOS", ["-kernel", elf], 3, "an ELF vmlinux boots only without firmware (-bios none)"),
        ("an ELF vmlinux, -kernel-entry bzimage", ["-bios", "none", "-kernel-entry", "bzimage", "-kernel", elf], 3,
         "an ELF vmlinux has no bzImage entry"),
        ("an ELF vmlinux cut short", ["-bios", "none", "-kernel", elf_cut], 3, "-kernel " + elf_cut + ": "),
        ("-kernel-cache through a symbolic link", ["-bios", "none", "-kernel-cache", os.path.join(s.tmp.name, "cachelink"),
                                                   "-kernel", bzxz], 3, "is a symbolic link"),
    ]
    for name, args, code, text in cases:
        r = suite.run([minivmm] + args, timeout=30)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        ok = (r.returncode == code and len(lines) == 1 and text in lines[0] and lines[0].startswith("minivmm: error:"))
        s.check(f"{name}: exit {code}, one line naming the problem", ok, r)

    long_sock = [l for l in suite.run([minivmm, "-tpm-sock", "/tmp/" + "y" * 200, disk]).stderr.splitlines()]
    s.check("-tpm-sock too long: the path is not repeated", all("y" * 200 not in l for l in long_sock), long_sock)
    s.check("refused runs left the disk, the output file and the foreign directory alone",
            open(d2, "rb").read() == b"\x5a" * 1024 * 1024 and open(precious).read() == "precious\n" and
            sorted(os.listdir(foreign)) == ["notes.txt"] and not os.path.exists("/nonexistent/dir") and
            not os.path.exists(ca_state))

    # Without KVM the run stops at /dev/kvm (exit 4): by then nothing may have been created or
    # truncated. (Where KVM works the guest would run, and an output file is then meant to be written.)
    if not os.path.exists("/dev/kvm") or not os.access("/dev/kvm", os.R_OK | os.W_OK):
        fresh = os.path.join(s.tmp.name, "fresh.log")
        state = os.path.join(s.tmp.name, "new-tpm-state")
        r = suite.run([minivmm, "-serial", f"file:{precious}", "-debugcon", f"file:{fresh}", "-tpm-state", state,
                         "-dump-acpi", os.path.join(s.tmp.name, "acpi"), disk], timeout=30)
        s.check("no KVM: exit 4, and the serial file, debugcon file, TPM state and ACPI directory are untouched",
                r.returncode == 4 and open(precious).read() == "precious\n" and not os.path.exists(fresh) and
                not os.path.exists(state) and not os.path.exists(os.path.join(s.tmp.name, "acpi")), r)

    r = suite.run([minivmm, "--help"], timeout=30)
    s.check("--help exits 0 and documents options", r.returncode == 0 and "-no-reboot" in r.stdout, r)
    r = suite.run([minivmm, "--version"], timeout=30)
    s.check("--version", r.returncode == 0 and r.stdout.startswith("minivmm "), r)
    s.finish()


if __name__ == "__main__":
    main()
