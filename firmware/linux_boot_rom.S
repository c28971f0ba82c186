/*
 * minivmm's Linux boot option ROM, for -kernel. SeaBIOS loads it from fw_cfg "genroms/" (src/optionroms.c
 * run_file_roms), measures it into PCR 2 like any option ROM, and boots it as a BEV (BIOS Boot
 * Specification 1.01 §3.2: the PnP header's Bootstrap Entry Vector) when "/rom@genroms/..." comes first in
 * the boot order. By then SeaBIOS has made its measurements and logged its separators.
 *
 * The ROM asks minivmm (one byte to port 0x520) to place the kernel, initrd and command line in RAM and to
 * measure them (firmware/linux_boot.hpp, vmm/kernel_boot.hpp), reads the result back, and enters the
 * kernel's real-mode code as the Linux boot protocol says (Documentation/arch/x86/boot.rst, "RUNNING THE
 * KERNEL"): interrupts off, DS = ES = FS = GS = SS = the setup segment 0x1000, SP at the top of its heap,
 * a far jump to 0x1020:0000. If minivmm reports a failure the BEV returns, and SeaBIOS tries the next boot
 * entry.
 *
 * firmware/make_option_rom.py assembles this file, sets the size byte and both checksums.
 */
    .code16
    .text
    .globl _start
_start:
    .byte 0x55, 0xAA            /* option ROM signature */
    .byte 0                     /* size in 512-byte blocks: set by make_option_rom.py */
init:
    lret                        /* initialisation entry (+3): nothing to set up */
    .org 0x18
    .word 0                     /* no PCI data structure */
    .word pnp                   /* PnP expansion header */

    .balign 16
pnp:                            /* PnP BIOS Specification 1.0A, "Expansion Header" */
    .ascii "$PnP"
    .byte 1                     /* structure revision */
    .byte 2                     /* length in 16-byte units */
    .word 0                     /* no next header */
    .byte 0                     /* reserved */
    .byte 0                     /* checksum of the 32 bytes: set by make_option_rom.py */
    .long 0                     /* device identifier */
    .word vendor                /* manufacturer string */
    .word product               /* product name string, shown in SeaBIOS's boot menu */
    .byte 0, 0, 0               /* device type code */
    .byte 0x14                  /* device indicators: only needed when booted from (bit 4), IPL device (bit 2) */
    .word 0                     /* Boot Connection Vector: none */
    .word 0                     /* Disconnect Vector: none */
    .word bev                   /* Bootstrap Entry Vector */
    .word 0                     /* reserved */
    .word 0                     /* static resource information vector */

vendor:
    .asciz "minivmm"
product:
    .asciz "Linux kernel (-kernel)"

    .equ LOAD_PORT, 0x520       /* platform::kLinuxBootPort */
    .equ LOAD_REQUEST, 1        /* devices/linux_boot_port.hpp */
    .equ SETUP_SEG, 0x1000      /* linux_boot::kRealModeAddr >> 4 */
    .equ SETUP_SP, 0xFFF0       /* the stack ends where the heap (heap_end_ptr 0xFE00) + 0x200 ends */

bev:
    cli
    cld
    movw $LOAD_PORT, %dx
    movb $LOAD_REQUEST, %al
    outb %al, %dx               /* minivmm loads and measures */
    inb %dx, %al                /* 0: loaded */
    testb %al, %al
    jnz failed
    movw $SETUP_SEG, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %fs
    movw %ax, %gs
    movw %ax, %ss
    movw $SETUP_SP, %sp
    ljmp $(SETUP_SEG + 0x20), $0
failed:
    sti
    lret
