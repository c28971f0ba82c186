"""Seeds of fuzz_elf_kernel (tests/fuzz/make_seeds.py writes them): small vmlinux-shaped ELF files
for the target's RAM [1 MiB, 1 MiB + 64 KiB): an Elf64_Ehdr, program headers, a PT_NOTE with Xen's
notes as Linux emits them (arch/x86/xen/xen-head.S, arch/x86/platform/pvh/head.S), text, and data
with .bss; the PVH entry with a 4- and an 8-byte desc, and a few that parse() refuses."""
import struct

BODY = 0x200  # file offset of the notes; the segments' bytes follow


def note(name, kind, desc, align=4):
    """One Elf64_Nhdr entry; the desc and the next note start at a multiple of `align`."""
    out = struct.pack("<III", len(name), len(desc), kind) + name
    out += bytes(-len(out) % align) + desc
    return out + bytes(-len(out) % align)


def elf(phdrs, body, e_type=2, machine=62):
    """phdrs: (p_type, p_offset, p_paddr, p_filesz, p_memsz, p_align) tuples."""
    header = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    header += struct.pack("<HHIQQQIHHHHHH", e_type, machine, 1, 0x100000, 64, 0, 0, 64, 56, len(phdrs), 64, 0, 0)
    table = b"".join(struct.pack("<IIQQQQQQ", t, 5, off, paddr | 0xFFFFFFFF80000000, paddr, fs, ms, al)
                     for t, off, paddr, fs, ms, al in phdrs)
    return (header + table).ljust(BODY, b"\0") + body


def kernel(desc_size=8, entry=0x100010, e_type=2, note_align=4, pvh_type=18):
    notes = note(b"Xen\0", 6, b"linux\0", note_align) + note(b"GNU\0", 3, bytes(range(20)), note_align)
    notes += note(b"Xen\0", pvh_type, struct.pack("<Q", entry)[:desc_size], note_align)
    text = bytes((i * 7 + 3) & 0xFF for i in range(0x100))
    data = bytes(0xC0 + i for i in range(0x40))
    t_off, d_off = BODY + 0x100, BODY + 0x200
    body = notes.ljust(0x100, b"\0") + text + data
    phdrs = [(4, BODY, 0, len(notes), len(notes), note_align),
             (1, t_off, 0x100000, len(text), len(text), 0x1000),
             (1, d_off, 0x101000, len(data), 0x200, 0x1000),
             (1, 0, 0x7000000000, 0, 0, 0x1000)]
    return elf(phdrs, body, e_type)


def seeds():
    good = kernel()
    overlap = bytearray(good)
    overlap[64 + 2 * 56 + 24:64 + 2 * 56 + 32] = struct.pack("<Q", 0x1000F0)  # data over text
    huge = bytearray(good)
    huge[64 + 56 + 8:64 + 56 + 16] = struct.pack("<Q", 0xFFFFFFFFFFFFFF00)  # text's p_offset
    return {
        "pvh-desc8": good,
        "pvh-desc4": kernel(4),
        "pvh-dyn-notes8": kernel(8, 0x101100, e_type=3, note_align=8),
        "pvh-entry-outside": kernel(4, 0x102000),
        "overlap": bytes(overlap),
        "huge-offset": bytes(huge),
        "no-pvh": kernel(pvh_type=17),
    }
