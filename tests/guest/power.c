/* Power-off through the ACPI PM1a control register (ACPI 6.x §4.8.3.2.1, §7.4.2 \_S5) and
 * reset (config reset_method): the PIIX/ICH "reset control" register 0xCF9 (bit 1 = hard,
 * bit 2 = reset), the FADT's RESET_REG, System Control Port A 0x92 bit 0, or a triple fault. */
#include "power.h"

#include "acpi.h"
#include "config.h"
#include "phys.h"
#include "report.h"
#include "serial.h"

#define PM1_SLP_EN (1u << 13)
#define PM1_SLP_TYP_SHIFT 10

/* Gives the VMM time to act on the write (QEMU handles a shutdown request in its main loop
 * while the vCPU keeps running): waits for two changes of the RTC seconds register (CMOS 0x00,
 * MC146818), i.e. 1-2 s, with an iteration cap in case the RTC does not tick. */
static void settle(void)
{
    uint8_t last = 0xFF;
    unsigned changes = 0;
    for (uint32_t i = 0; i < 2000000 && changes < 3; i++) {
        outb(0x70, 0x80);               /* register 0, NMI disabled */
        uint8_t sec = inb(0x71);
        if (sec != last) {
            last = sec;
            changes++;                  /* the first read counts as one */
        }
    }
}

void power_off(void)
{
    uint8_t slp_typa = 0;
    const char *why = NULL;
    if (!acpi_s5_slp_typa(&slp_typa, &why))
        fail_and_halt("poweroff", why);
    if (acpi.pm1a_cnt == 0 || acpi.pm1a_cnt > 0xFFFF)
        fail_and_halt("poweroff", "FADT PM1a_CNT_BLK is not an I/O port");
    info("poweroff pm1a_cnt=0x%x slp_typa=%u value=0x%x", acpi.pm1a_cnt, slp_typa,
         (uint32_t)slp_typa << PM1_SLP_TYP_SHIFT | PM1_SLP_EN);
    report_done();
    outw((uint16_t)acpi.pm1a_cnt, (uint16_t)((uint32_t)slp_typa << PM1_SLP_TYP_SHIFT | PM1_SLP_EN));
    settle();
    print("MVG: poweroff FAIL still running\n");
    serial_flush();
    guest_halt_forever();
}

/* ACPI 6.x §4.8.3.6 / §5.2.9: FADT revision (header +8) >= 2, Flags (+112) bit 10 RESET_REG_SUP,
 * RESET_REG (+116, a §5.2.3.2 Generic Address Structure: space, bit width, bit offset, access
 * size, u64 address), RESET_VALUE (+128). Only a SystemIO register is handled. Returns NULL and
 * the port and value, or the reason. */
#define FADT_RESET_REG_SUP (1u << 10)
#define GAS_SYSTEM_IO 1

static const char *acpi_reset_reg(uint16_t *port, uint8_t *value)
{
    static uint8_t f[129] LOWBSS;
    if (!acpi.fadt)
        return "no FADT (acpi-tables did not find one)";
    memset(f, 0, sizeof(f));
    phys_read(f, acpi.fadt, acpi.fadt_len < sizeof(f) ? acpi.fadt_len : sizeof(f));
    uint32_t flags = le32(f + 112), addr = le32(f + 120), addr_hi = le32(f + 124);
    info("reset FADT rev=%u len=%u flags=0x%x RESET_REG space=%u width=%u offset=%u access=%u addr=0x%x%s value=0x%x",
         f[8], acpi.fadt_len, flags, f[116], f[117], f[118], f[119], addr, addr_hi ? "+hi" : "", f[128]);
    if (f[8] < 2)
        return "FADT revision below 2 has no RESET_REG";
    if (acpi.fadt_len < sizeof(f))
        return "FADT too short for RESET_REG";
    if (!(flags & FADT_RESET_REG_SUP))
        return "FADT flag RESET_REG_SUP is clear";
    if (f[116] != GAS_SYSTEM_IO || addr_hi != 0 || addr == 0 || addr > 0xFFFF)
        return "RESET_REG is not a SystemIO port";
    *port = (uint16_t)addr;
    *value = f[128];
    return NULL;
}

/* Triple fault, as Linux's reboot=t does it (arch/x86/kernel/reboot.c BOOT_TRIPLE: an empty
 * IDT, then an exception), from 32-bit protected mode: ud2 raises #UD, whose gate lies beyond
 * the IDT limit (#GP), so does #GP's (#DF), and so does #DF's: a shutdown cycle, which a PC
 * turns into a reset (Intel SDM Vol. 3, "Interrupt 8 - Double Fault Exception"). The IDT base
 * points at zeroed (not-present) gates, so even an implementation that ignored the limit would
 * fault (#NP, #DF, shutdown). Why not real mode and not int3: where KVM emulates real and
 * unpaged protected mode (hosts whose CPU cannot run them directly, e.g. this project's nested
 * hosts), its emulator delivers real-mode interrupts through the IVT without checking the IDT
 * limit (INT 12h still reached the BIOS after lidt with limit 0, and a real-mode ud2 kept the
 * vCPU busy in the kernel instead of faulting), and cannot emulate a protected-mode int3
 * (KVM_EXIT_INTERNAL_ERROR). */
static void triple_fault(void)
{
    static uint8_t zero_gates[16 * 8];  /* vectors 0-15, all zero (bss) */
    static struct PACKED {
        uint16_t limit;
        uint32_t base;
    } empty_idt;
    empty_idt.limit = 0;
    empty_idt.base = phys_addr(zero_gates);
    phys_ud2_with_idt(&empty_idt);
}

void request_reset(uint32_t boot)
{
    uint32_t method = config.reset_method;
    uint16_t port = 0;
    uint8_t value = 0;
    if (method == RESET_ACPI) {
        const char *why = acpi_reset_reg(&port, &value);
        if (why)
            fail_and_halt("reset", why);
    }
    info("reset method=%s", reset_method_name(method));
    print("MVG: reset-request boot=%u\n", boot);
    serial_flush();
    switch (method) {
    case RESET_ACPI:
        outb(port, value);
        break;
    case RESET_PORT92:
        /* System Control Port A: bit 0 = fast reset, bit 1 (A20) kept as it is. */
        outb(0x92, inb(0x92) | 1);
        break;
    case RESET_TRIPLE:
        triple_fault();
        break;
    default:
        outb(0xCF9, 0x06);
        break;
    }
    settle();
    fail_and_halt("reset", method == RESET_ACPI     ? "still running after writing RESET_VALUE to RESET_REG"
                           : method == RESET_PORT92 ? "still running after setting bit 0 of port 0x92"
                           : method == RESET_TRIPLE ? "still running after a triple fault"
                                                    : "still running after writing 0x06 to port 0xCF9");
}
