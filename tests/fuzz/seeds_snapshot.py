"""Seeds of fuzz_snapshot (tests/fuzz/make_seeds.py): snapshot headers and preambles encoded as
vmm/snapshot_file.cpp and vmm/snapshot_preamble.cpp write them."""
import hashlib

from seed_bytes import u8, u32, u64

PAGE = 4096


def blob(data):
    return u32(len(data)) + data


def header(regions, state_offset, state):
    fields = (b"minivmm snapshot" + u32(1) + blob(b"0.1.0") + u64(state_offset) + u64(len(state)) +
              blob(hashlib.sha256(state).digest()) + u32(len(regions)))
    for gpa, size, offset in regions:
        fields += u64(gpa) + u64(size) + u64(offset)
    fields += hashlib.sha256(fields).digest()
    return fields + bytes(PAGE - len(fields))


def stamp(size=None, mtime=0):
    return u8(0) if size is None else u8(1) + u64(size) + u64(mtime)


def preamble(args, bios=True, kernel=None, tpm=2, disk=1 << 20, overlay=0):
    out = u8(1) + u32(len(args)) + b"".join(blob(a.encode()) for a in args)
    out += u8(1) + blob(bytes(range(32))) if bios else u8(0)
    return out + stamp(kernel, 5) + stamp() + u8(tpm) + stamp(disk, 1700000000123456789) + u8(overlay)


def seeds():
    seabios = preamble(["-m", "512M", "-smp", "1", "-bios", "/usr/share/seabios/bios-256k.bin", "-tpm-interface", "tis",
                        "-tpm-irq", "on", "-tpm-ppi", "on"])
    nofw = preamble(["-m", "1024M", "-smp", "2", "-bios", "none", "-kernel", "vmlinuz", "-append", "console=ttyS0",
                     "-kernel-entry", "auto", "-snapshot"], bios=False, kernel=8 << 20, tpm=0, disk=None, overlay=1)
    machine = u8(1) + u32(0)  # what follows the preamble (the machine's part) is not parsed here
    ram = [(0, 512 << 20, PAGE)]
    return {"seabios-tpm": header(ram, PAGE + (512 << 20), seabios + machine) + seabios + machine,
            "nofw-two-regions": header([(0, 16 * PAGE, PAGE), (1 << 32, 4 * PAGE, 17 * PAGE)], 21 * PAGE, nofw) + nofw,
            "preamble-only": seabios}
