/* MBR stage of the guest test program (real mode, GNU as).
 * SeaBIOS jumps here at 0:7C00 with DL = boot drive. We set up segments and stack, load
 * LBA 1..N to 0:7E00 with INT 13h AH=42h (EDD, when INT 13h AH=41h reports it) or AH=02h
 * (CHS, geometry from AH=08h), check the image trailer, clear .bss and call guest_main(). */
    .code16

    .set STACK_TOP, 0x7BF0          /* stack grows down from here, SS = 0 */
    .set DRIVE_SAVE, 0x7BF8         /* boot drive until .bss is cleared */
    .set LOAD_ADDR, 0x7E00
    .set COM1, 0x3F8

    .section .mbr, "ax"
    .globl _start
_start:
    cli
    xorw %ax, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl $STACK_TOP, %esp           /* gcc -m16 code addresses the stack with %esp */
    ljmp $0, $1f                    /* CS:IP = 0:7Cxx whatever the BIOS used */
1:  cld
    movb %dl, DRIVE_SAVE

    /* EDD present? (INT 13h AH=41h: CF clear, BX = AA55h, CX bit 0 = packet calls) */
    movb $0x41, %ah
    movw $0x55AA, %bx
    int $0x13
    jc load_chs
    cmpw $0xAA55, %bx
    jne load_chs
    testb $1, %cl
    jz load_chs
    movw $dap, %si
    movb DRIVE_SAVE, %dl
    movb $0x42, %ah
    int $0x13
    jnc loaded

load_chs:
    xorw %di, %di                   /* ES:DI = 0 guards against BIOS bugs in AH=08h */
    movb DRIVE_SAVE, %dl
    movb $0x08, %ah
    int $0x13
    jc load_fail
    xorw %ax, %ax
    movw %ax, %es                   /* AH=08h may return a table pointer in ES:DI */
    andw $0x3F, %cx
    jz load_fail
    movw %cx, %si                   /* sectors per track */
    movzbw %dh, %di
    incw %di                        /* heads */
    movw $1, %bp                    /* LBA */
    movw $LOAD_ADDR, %bx
chs_next:
    movw %bp, %ax
    xorw %dx, %dx
    divw %si                        /* AX = track, DX = sector - 1 */
    movw %dx, %cx
    incw %cx
    xorw %dx, %dx
    divw %di                        /* AX = cylinder, DX = head */
    movb %al, %ch
    shlb $6, %ah
    orb %ah, %cl                    /* cylinder bits 8-9 in CL bits 6-7 */
    movb %dl, %dh
    movb DRIVE_SAVE, %dl
    movw $0x0201, %ax
    int $0x13
    jc load_fail
    addw $512, %bx
    incw %bp
    cmpw $_load_sectors, %bp
    jbe chs_next

loaded:
    cmpl $0x5447564D, _trailer      /* "MVGT" */
    jne load_fail
    movw $__bss_start, %di
    movw $__bss_end, %cx
    subw %di, %cx
    xorb %al, %al
    rep stosb
    movb DRIVE_SAVE, %al
    movb %al, boot_drive
    calll guest_main
    .globl guest_halt_forever
guest_halt_forever:
    cli
    hlt
    jmp guest_halt_forever

load_fail:
    movw $fail_msg, %si
2:  lodsb
    testb %al, %al
    jz guest_halt_forever
    movb %al, %bl
    movw $COM1 + 5, %dx
3:  inb %dx, %al                    /* LSR bit 5: transmit holding register empty */
    testb $0x20, %al
    jz 3b
    movw $COM1, %dx
    movb %bl, %al
    outb %al, %dx
    jmp 2b

fail_msg:
    .asciz "MVG: disk-read FAIL MBR could not load the program\r\n"

    .balign 4
dap:                                /* EDD disk address packet, never modified */
    .byte 0x10, 0
    .word _load_sectors
    .word LOAD_ADDR, 0
    .long 1, 0

    /* Last 16 bytes of the loaded image (guest.ld places them): checked above and by disk-read. */
    .section .trailer, "a"
    .globl _trailer
_trailer:
    .ascii "MVGTRAIL"
    .long _load_sectors
    .long 1                         /* trailer format version */

    .section .note.GNU-stack, "", @progbits
