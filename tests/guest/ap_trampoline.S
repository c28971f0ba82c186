/* smp-hammer mode: the application processor's code (smp_hammer.c copies ap_tramp..ap_tramp_end
 * to AP_PAGE and starts the AP there with INIT, SIPI, SIPI; Intel SDM vol. 3 §8.4.4). The AP
 * starts in real mode at AP_PAGE>>4:0000, loads the flat GDT that follows the code, enters
 * 32-bit protected mode and loops AP_ITERS times: one byte to the COM1 THR, TIS ACCESS(0),
 * DID_VID(0) and STS(0) read (Linux-style MMIO loads). DID_VID must be 0x00011014 and ACCESS
 * must have tpmRegValidSts (bit 7) and not be all-ones; misses count in ap_bad. ap_iters counts
 * finished iterations (the BSP polls it), then cli; hlt forever. Position-dependent only on
 * AP_PAGE (set below, must match smp_hammer.c). */
    .set AP_PAGE, 0x10000
    .set AP_ITERS, 2000
    .set TIS_ACCESS0, 0xFED40000
    .set TIS_STS0, 0xFED40018
    .set TIS_DID_VID0, 0xFED40F00
#define PHYS(label) ((label) - ap_tramp + AP_PAGE)

    .section .rodata
    .code16
    .globl ap_tramp, ap_tramp_end
ap_tramp:
    cli
    movw %cs, %ax
    movw %ax, %ds
    lgdtl ap_gdt_desc - ap_tramp
    movl %cr0, %eax
    orb $1, %al
    movl %eax, %cr0
    ljmpl $0x08, $PHYS(ap_pm32)
    .code32
ap_pm32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl $AP_ITERS, %ecx
    movw $0x3F8, %dx
1:  movb $'~', %al
    outb %al, %dx
    movb TIS_ACCESS0, %al
    cmpb $0xFF, %al
    je 2f
    testb $0x80, %al
    jz 2f
    movl TIS_DID_VID0, %eax
    cmpl $0x00011014, %eax
    je 3f
2:  lock incl PHYS(ap_bad)
3:  movl TIS_STS0, %eax
    lock incl PHYS(ap_iters)
    loop 1b
4:  cli
    hlt
    jmp 4b

    .balign 8
ap_gdt:
    .quad 0
    .quad 0x00CF9A000000FFFF            /* 0x08: 32-bit code, base 0, 4 GiB */
    .quad 0x00CF92000000FFFF            /* 0x10: 32-bit data, base 0, 4 GiB */
ap_gdt_desc:
    .word ap_gdt_desc - ap_gdt - 1
    .long PHYS(ap_gdt)
    .globl ap_iters_phys, ap_bad_phys
    .set ap_iters_phys, PHYS(ap_iters)
    .set ap_bad_phys, PHYS(ap_bad)
ap_iters:
    .long 0                             /* read by the BSP at AP_PAGE + (ap_iters - ap_tramp) */
ap_bad:
    .long 0
ap_tramp_end:
