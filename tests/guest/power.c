/* Power-off through the ACPI PM1a control register (ACPI 6.x §4.8.3.2.1, §7.4.2 \_S5) and
 * reset through the PIIX/ICH "reset control" register 0xCF9 (bit 1 = hard, bit 2 = reset). */
#include "power.h"

#include "acpi.h"
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

void request_reset(uint32_t boot)
{
    print("MVG: reset-request boot=%u\n", boot);
    serial_flush();
    outb(0xCF9, 0x06);
    settle();
    fail_and_halt("reset", "still running after writing 0x06 to port 0xCF9");
}
