"""Host calibration for the nightly boot tests: can this host's KVM run a Linux kernel?

A Linux kernel needs, long before /init, 32-bit (then 64-bit) ring-0 code running at native speed,
software interrupts returning through IRET, and timer interrupts delivered through an IDT. On a
nested paravirtual KVM (kvm_pvm) guest ring 0 is emulated at about 1 MIPS, a protected-mode INT3 or
IRET stops the guest with KVM_EXIT_INTERNAL_ERROR (minivmm exit 5) and Linux never gets past its first
interrupt. The probe is a one-sector boot program that SeaBIOS boots through minivmm itself; it
prints one marker byte on COM1 per step (the host timestamps them) and powers off:

  R  real mode, the boot sector runs        P  32-bit protected mode, GDT and IDT loaded
  L  2M-instruction loop starts             l  loop done (host: MIPS = 2M / time between L and l)
  3  about to execute INT3                  B  INT3 handler ran      i  IRET returned to the caller
  W  PIC/PIT programmed (100 Hz), STI; HLT  T  one per timer interrupt
  D  three ticks seen: ACPI S5 power-off (PM1a_CNT 0x604 <- SLP_EN, SLP_TYP 0)
  X  any other exception (the handler halts)

Needs SeaBIOS (~2-4 s here without -debugcon) plus the loop; the classification is in classify().
"""
import os
import re
import struct

from tests.harness import vmm
from tests.nightly import vm

LOOP_ITERATIONS = 1_000_000  # DEC ECX + JNZ: 2M instructions
MIN_MIPS = 20.0               # Linux boots in minutes only well above this; native KVM runs ~1000+
TICK_WAIT = 5.0               # seconds after 'W' for three 100 Hz ticks (0.03 s on real KVM)
ORIGIN = 0x7C00
IDT_BASE = 0x8000
IDT_VECTORS = 0x30
BOOTING = "Booting from Hard Disk"  # SeaBIOS, just before it jumps to the MBR
PM_PORT, SLP_EN = 0x604, 0x2000  # minivmm's and QEMU pc's PM1a_CNT_BLK; \_S5 SLP_TYP is 0 on both


class Asm:
    """Just enough of an x86 assembler: raw bytes, labels, and 8-bit relative / 16- and 32-bit absolute fixups."""

    def __init__(self):
        self.code, self.labels, self.fixups = bytearray(), {}, []

    def __call__(self, *parts):
        for part in parts:
            if isinstance(part, tuple):  # (kind, label): placeholder resolved in bytes()
                kind, label = part
                self.fixups.append((len(self.code), kind, label))
                self.code += bytes({"rel8": 1, "abs16": 2, "abs32": 4}[kind])
            else:
                self.code += bytes(part)

    def label(self, name):
        self.labels[name] = ORIGIN + len(self.code)

    def bytes(self):
        out = bytearray(self.code)
        for at, kind, label in self.fixups:
            target = self.labels[label]
            if kind == "rel8":
                delta = target - (ORIGIN + at + 1)
                if not -128 <= delta <= 127:
                    raise ValueError(f"jump to {label} out of range")
                out[at] = delta & 0xFF
            else:
                out[at:at + (2 if kind == "abs16" else 4)] = target.to_bytes(2 if kind == "abs16" else 4, "little")
        return bytes(out)


def marker(a, char):
    """mov al, char; out dx, al (DX holds 0x3F8, COM1's data port)."""
    a([0xB0, ord(char), 0xEE])


def boot_sector():
    """The probe's 512-byte MBR (see the module docstring for the markers)."""
    a = Asm()
    # 16-bit real mode, loaded at 0:7C00 by SeaBIOS
    a([0xFA, 0xFC])                               # cli; cld
    a([0x31, 0xC0, 0x8E, 0xD8, 0x8E, 0xD0])       # xor ax,ax; mov ds,ax; mov ss,ax
    a([0xBC, 0x00, 0x7C])                         # mov sp, 0x7C00
    a([0xBA, 0xF8, 0x03])                         # mov dx, 0x3F8
    marker(a, "R")
    a([0x0F, 0x01, 0x16], ("abs16", "gdt_desc"))  # lgdt [gdt_desc]
    a([0x0F, 0x20, 0xC0, 0x0C, 0x01, 0x0F, 0x22, 0xC0])  # mov eax,cr0; or al,1; mov cr0,eax
    a([0x66, 0xEA], ("abs32", "pm32"), [0x08, 0x00])     # jmp dword 0x08:pm32
    # 32-bit protected mode, flat segments, no paging
    a.label("pm32")
    a([0xB8, 0x10, 0, 0, 0, 0x8E, 0xD8, 0x8E, 0xC0, 0x8E, 0xD0])  # mov eax,0x10; mov ds/es/ss,ax
    a([0xBC], struct.pack("<I", 0x7C00))          # mov esp, 0x7C00
    # IDT: every vector -> "other", then 3 -> int3 handler, 0x20 -> timer handler
    a([0xBF], struct.pack("<I", IDT_BASE), [0xB9], struct.pack("<I", IDT_VECTORS))  # mov edi; mov ecx
    a.label("fill")
    a([0xB8], ("abs32", "other"))                 # mov eax, other (patched below to gate low dword)
    a([0x66, 0xBA], struct.pack("<H", 0x0008))    # mov dx, 0x0008 (selector)
    a([0xC1, 0xE2, 0x10])                         # shl edx, 16
    a([0x66, 0x89, 0xC2])                         # mov dx, ax        edx = sel<<16 | offset low
    a([0x89, 0x17])                               # mov [edi], edx
    a([0x66, 0xB8, 0x00, 0x8E])                   # mov ax, 0x8E00    eax = offset high<<16 | P,DPL0,int gate
    a([0x89, 0x47, 0x04])                         # mov [edi+4], eax
    a([0x83, 0xC7, 0x08, 0xE2], ("rel8", "fill"))  # add edi, 8; loop fill
    for vector, handler in ((3, "int3"), (0x20, "timer")):
        a([0xB8], ("abs32", handler))             # mov eax, handler
        a([0x66, 0xA3], struct.pack("<I", IDT_BASE + vector * 8))  # mov [gate], ax
    a([0x0F, 0x01, 0x1D], ("abs32", "idt_desc"))  # lidt [idt_desc]
    a([0xBA], struct.pack("<I", 0x3F8))           # mov edx, 0x3F8
    marker(a, "P")
    # speed: 2M ring-0 instructions
    marker(a, "L")
    a([0xB9], struct.pack("<I", LOOP_ITERATIONS))
    a.label("spin")
    a([0x49, 0x75], ("rel8", "spin"))             # dec ecx; jnz spin
    marker(a, "l")
    # software interrupt and IRET
    marker(a, "3")
    a([0xCC])                                     # int3
    marker(a, "i")
    # timer: remap the 8259 to 0x20 with only IRQ0 unmasked, PIT channel 0 at 100 Hz (1193182 / 11932)
    for port, value in ((0x20, 0x11), (0x21, 0x20), (0x21, 0x04), (0x21, 0x01), (0x21, 0xFE),
                        (0x43, 0x34), (0x40, 0x9C), (0x40, 0x2E)):
        a([0xB0, value, 0xE6, port])              # mov al, value; out port, al
    marker(a, "W")
    a([0xFB])                                     # sti
    a.label("wait")
    a([0xF4, 0x80, 0x3D], ("abs32", "ticks"), [0x03, 0x72], ("rel8", "wait"))  # hlt; cmp byte [ticks],3; jb
    a([0xFA])                                     # cli
    marker(a, "D")
    a([0x66, 0xBA], struct.pack("<H", PM_PORT), [0x66, 0xB8], struct.pack("<H", SLP_EN), [0x66, 0xEF])
    a.label("halt")
    a([0xF4, 0xEB], ("rel8", "halt"))             # hlt; jmp halt
    # handlers (EDX stays 0x3F8 outside them; they save what they use)
    a.label("int3")
    a([0x50, 0x52, 0xBA], struct.pack("<I", 0x3F8))
    marker(a, "B")
    a([0x5A, 0x58, 0xCF])                         # pop edx; pop eax; iret
    a.label("timer")
    a([0x50, 0x52, 0xBA], struct.pack("<I", 0x3F8))
    marker(a, "T")
    a([0xFE, 0x05], ("abs32", "ticks"))           # inc byte [ticks]
    a([0xB0, 0x20, 0xE6, 0x20])                   # EOI to the master 8259
    a([0x5A, 0x58, 0xCF])
    a.label("other")
    a([0xBA], struct.pack("<I", 0x3F8))
    marker(a, "X")
    a.label("stop")
    a([0xFA, 0xF4, 0xEB], ("rel8", "stop"))
    # data
    a.label("ticks")
    a([0])
    a([0] * ((-len(a.code)) % 8))
    a.label("gdt")
    a(struct.pack("<QQQ", 0, 0x00CF9A000000FFFF, 0x00CF92000000FFFF))  # null, code 0x08, data 0x10
    a.label("gdt_desc")
    a(struct.pack("<H", 23), ("abs32", "gdt"))
    a.label("idt_desc")
    a(struct.pack("<H", IDT_VECTORS * 8 - 1), struct.pack("<I", IDT_BASE))
    code = a.bytes()
    if len(code) > 446:
        raise ValueError(f"probe is {len(code)} bytes, more than the MBR's 446")
    return code.ljust(510, b"\0") + b"\x55\xaa"


def write_image(path):
    with open(path, "wb") as f:
        f.write(boot_sector())
        f.truncate(1 << 20)


class Calibration:
    """capable: True (run the Linux cases), False (skip them with `reason`), None (the probe itself
    did not get going, e.g. SeaBIOS never booted it: the Linux cases run, so a broken minivmm fails
    them instead of hiding behind a skip). `detail` says what the probe saw, `seconds` how long it took."""

    def __init__(self, capable, reason, detail, seconds, mips=None):
        self.capable, self.reason, self.detail, self.seconds, self.mips = capable, reason, detail, seconds, mips


def markers(run):
    """[(marker, seconds)] from the probe's COM1 output, after SeaBIOS's "Booting from Hard Disk"."""
    at = run.text.rfind(BOOTING)
    if at < 0:
        return []
    at += len(BOOTING)
    return [(m.group(), run.at(at + m.start())) for m in re.finditer(r"[RPLl3BiWTDX]", run.text[at:])]


def host_hint():
    """A short note on the hypervisor, for the reason string (the probe decides, not this)."""
    if os.path.isdir("/sys/module/kvm_pvm"):
        return "nested paravirtual KVM (kvm_pvm): guest ring 0 is emulated"
    return "KVM"


def classify(run, marks):
    """Turns the probe's run into a Calibration (see the module docstring for the markers)."""
    seen = "".join(m for m, _ in marks)
    times = dict((m, t) for m, t in reversed(marks))  # first time each marker was seen
    mips = None
    if times.get("L") is not None and times.get("l") is not None:
        mips = 2 * LOOP_ITERATIONS / max(times["l"] - times["L"], 1e-3) / 1e6
    facts = [f"markers {seen or 'none'}"]
    if mips is not None:
        facts.append(f"ring-0 code at {mips:.1f} MIPS")
    problems = []
    if "R" not in times:
        return Calibration(None, "", f"probe not booted: {run.describe()}; {', '.join(facts)}", run.seconds)
    if run.returncode == vm.KVM_FAILED and not run.stopped:
        last = seen[-1] if seen else "R"
        where = {"R": "entering 32-bit protected mode", "P": "the ring-0 loop", "L": "the ring-0 loop",
                 "l": "before INT3", "3": "a protected-mode INT3", "B": "the IRET from an INT3 handler",
                 "i": "programming the PIC/PIT", "W": "delivering a timer interrupt",
                 "T": "returning from a timer interrupt (IRET)"}.get(last, f"after marker {last}")
        problems.append(f"KVM could not run {where} (minivmm exit 5: {vmm.short_error(run.error_line())})")
    elif "X" in times:
        problems.append("an unexpected exception in the probe")
    elif "W" in times and "D" not in times:
        problems.append(f"timer interrupts never delivered to protected-mode code ({seen.count('T')} ticks)")
    elif "D" not in times or run.returncode != 0:
        problems.append(f"the probe did not finish ({run.describe()})")
    if mips is not None and mips < MIN_MIPS:
        problems.append(f"ring-0 code runs at {mips:.1f} MIPS (need {MIN_MIPS:g})")
    detail = ", ".join(facts) + f"; {run.describe()}"
    if not problems:
        return Calibration(True, "", detail, run.seconds, mips)
    reason = f"host KVM cannot run a Linux kernel ({host_hint()}): " + "; ".join(problems)
    return Calibration(False, reason, detail, run.seconds, mips)


def calibrate(minivmm, workdir, timeout=60.0):
    """Boots the probe with minivmm (no TPM, no debugcon) and classifies the host; a few seconds."""
    os.makedirs(workdir, exist_ok=True)
    image = os.path.join(workdir, "probe.img")
    write_image(image)

    waiting_since = None

    def stop(text, elapsed):
        nonlocal waiting_since
        at = text.rfind(BOOTING)
        marks = text[at + len(BOOTING):] if at >= 0 else ""
        if "W" in marks and "D" not in marks:
            waiting_since = elapsed if waiting_since is None else waiting_since
            if elapsed - waiting_since > TICK_WAIT:
                return f"no timer interrupt for {TICK_WAIT:g}s"
        return None

    r = vmm.run(vm.minivmm_cmd(minivmm, image, []), timeout, stop)
    return classify(r, markers(r))
