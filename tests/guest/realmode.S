/* Real-mode helpers called from gcc -m16 C code (cdecl: arguments at 4(%esp).., 32-bit
 * return address, %ebx/%esi/%edi/%ebp preserved, result in %eax).
 *
 * pm_op(op, dst, src, val): one access to 32-bit physical memory. Switches to 32-bit
 * protected mode with a flat GDT (no paging, interrupts off), performs a copy or one
 * 8/16/32-bit read or write, goes back through a 16-bit protected-mode segment (so the
 * real-mode segment limits are 64 KiB again) to real mode with DS = ES = SS = 0. A copy
 * moves dwords (rep movsl) then bytes, so it is for RAM, not for MMIO registers. Op 7
 * loads the IDT descriptor at src and executes ud2 (a triple fault with an unusable IDT);
 * should execution continue after it, the saved real-mode IDT is reloaded before going back.
 *
 * bios_int(vec, regs): INT vec (0x10, 0x13, 0x15 or 0x1A) with registers from/to a
 * struct bios_regs; DS = ES = 0 for the call. Interrupts are off again on return. */
    .code16
    .text

    .set SEL_CODE32, 0x08
    .set SEL_DATA32, 0x10
    .set SEL_CODE16, 0x18
    .set SEL_DATA16, 0x20

    .globl pm_op
pm_op:
    pushl %ebp
    movl %esp, %ebp
    pushl %ebx
    pushl %esi
    pushl %edi
    pushfl
    cli
    movl 8(%ebp), %ebx              /* op */
    movl 12(%ebp), %edi             /* dst */
    movl 16(%ebp), %esi             /* src */
    movl 20(%ebp), %ecx             /* length or value */
    lgdtl pm_gdt_desc
    movl %cr0, %eax
    orb $1, %al
    movl %eax, %cr0
    ljmpl $SEL_CODE32, $pm32
    .code32
pm32:
    movw $SEL_DATA32, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorl %eax, %eax
    cmpl $7, %ebx
    ja pm_leave
    jmp *pm_ops(,%ebx,4)
op_copy:                            /* dwords, then the 0-3 remaining bytes */
    cld
    movl %ecx, %edx
    shrl $2, %ecx
    rep movsl
    movl %edx, %ecx
    andl $3, %ecx
    rep movsb
    jmp pm_leave
op_read8:
    movzbl (%esi), %eax
    jmp pm_leave
op_read16:
    movzwl (%esi), %eax
    jmp pm_leave
op_read32:
    movl (%esi), %eax
    jmp pm_leave
op_write8:
    movb %cl, (%edi)
    jmp pm_leave
op_write16:
    movw %cx, (%edi)
    jmp pm_leave
op_write32:
    movl %ecx, (%edi)
    jmp pm_leave
op_ud2_idt:
    sidtl pm_saved_idt
    lidtl (%esi)
    ud2
    lidtl pm_saved_idt
pm_leave:
    ljmp $SEL_CODE16, $pm16
    .code16
pm16:
    movw $SEL_DATA16, %dx
    movw %dx, %ds
    movw %dx, %es
    movw %dx, %ss
    movl %cr0, %edx
    andb $0xFE, %dl
    movl %edx, %cr0
    ljmp $0, $rm16
rm16:
    xorw %dx, %dx
    movw %dx, %ds
    movw %dx, %es
    movw %dx, %ss
    popfl
    popl %edi
    popl %esi
    popl %ebx
    popl %ebp
    retl

    .globl bios_int
bios_int:
    pushl %ebp
    movl %esp, %ebp
    pushl %ebx
    pushl %esi
    pushl %edi
    movb 8(%ebp), %al
    movb %al, bios_vector
    movl 12(%ebp), %eax
    pushl %eax                      /* struct bios_regs * */
    movl 4(%eax), %ebx
    movl 8(%eax), %ecx
    movl 12(%eax), %edx
    movl 16(%eax), %esi
    movl 20(%eax), %edi
    movl (%eax), %eax
    cmpb $0x13, bios_vector
    je 1f
    cmpb $0x15, bios_vector
    je 2f
    cmpb $0x10, bios_vector
    je 3f
    cmpb $0x1A, bios_vector
    je 4f
    movl $0xFFFFFFFF, %eax          /* unsupported vector: CF set, EAX = -1 */
    stc
    jmp 5f
1:  int $0x13
    jmp 5f
2:  int $0x15
    jmp 5f
3:  int $0x10
    jmp 5f
4:  int $0x1A
5:  cli
    pushfl
    pushl %eax
    xorw %ax, %ax
    movw %ax, %ds
    movw %ax, %es
    movl 8(%esp), %eax              /* struct bios_regs * */
    popl (%eax)
    movl %ebx, 4(%eax)
    movl %ecx, 8(%eax)
    movl %edx, 12(%eax)
    movl %esi, 16(%eax)
    movl %edi, 20(%eax)
    popl 24(%eax)
    addl $4, %esp
    popl %edi
    popl %esi
    popl %ebx
    popl %ebp
    retl

    .section .rodata
    .balign 4
pm_ops:
    .long op_copy, op_read8, op_read16, op_read32, op_write8, op_write16, op_write32, op_ud2_idt

    .balign 8
pm_gdt:
    .quad 0
    .quad 0x00CF9A000000FFFF        /* 0x08: 32-bit code, base 0, 4 GiB */
    .quad 0x00CF92000000FFFF        /* 0x10: 32-bit data, base 0, 4 GiB */
    .quad 0x00009A000000FFFF        /* 0x18: 16-bit code, base 0, 64 KiB */
    .quad 0x000092000000FFFF        /* 0x20: 16-bit data, base 0, 64 KiB */
pm_gdt_end:
pm_gdt_desc:
    .word pm_gdt_end - pm_gdt - 1
    .long pm_gdt

    .bss
bios_vector:
    .byte 0
    .balign 2
pm_saved_idt:                       /* limit, base: the real-mode IVT during op 7 */
    .word 0
    .long 0

    .section .note.GNU-stack, "", @progbits
