"""Seeds of fuzz_kvm_state (tests/fuzz/make_seeds.py): the first byte picks a vCPU's state (0) or a
VM's (1), then the blob as vmm/kvm/vcpu_state.hpp and vm_state.hpp write it, with struct sizes
from <linux/kvm.h> on x86-64."""
from seed_bytes import u8, u32, u64

SIZES = {"regs": 144, "sregs": 312, "sregs2": 320, "fpu": 416, "xcrs": 392, "lapic": 1024, "events": 64,
         "debugregs": 128, "irqchip": 520, "pit2": 112}


def blob(name, fill=0, head=b""):
    """A kernel structure as bytes(): u32 length, then its bytes (`head` first, `fill` after)."""
    size = SIZES[name]
    return u32(size) + (head + bytes([fill]) * size)[:size]


def vcpu(modern, msrs):
    flags = 7 if modern else 0
    out = u8(1, flags) + blob("regs", 0, u64(0x1234) + bytes(8 * 15) + u64(0x1044) + u64(2))
    if modern:
        out += blob("sregs2") + u32(4096) + bytes(4096) + blob("xcrs", 0, u32(1) + u32(0) + u32(0) + u32(0) + u64(3))
    else:
        out += blob("sregs") + blob("fpu")
    out += u32(len(msrs)) + b"".join(u32(i) + u64(v) for i, v in msrs)
    out += blob("lapic") + blob("events") + u32(3) + blob("debugregs") + u32(2_596_136)
    return u8(0) + out


def vm():
    chips = b"".join(blob("irqchip", 0, u32(chip)) for chip in (0, 1, 2))
    return u8(1) + u8(1) + chips + blob("pit2") + u64(15_873_769) + u32(0xE)


def seeds():
    msrs = [(0x10, 0x214D1A9197A), (0x3B, 0), (0x6E0, 0), (0x4B564D01, 0x5001), (0xC0000080, 0x500)]
    return {"vcpu-sregs2-xsave": vcpu(True, msrs), "vcpu-sregs-fpu": vcpu(False, msrs[:2]),
            "vcpu-no-msrs": vcpu(True, []), "vm": vm()}
