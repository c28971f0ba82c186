/* smp-hammer mode (mkimage.py --mode smp-hammer --tpm 2.0, minivmm -smp 2): both vCPUs use the
 * TIS and COM1 at once. The BSP copies ap_trampoline.S to AP_PAGE and starts the AP with
 * INIT, SIPI, SIPI through the local APIC ICR (Intel SDM vol. 3 §8.4.4.1, §10.6.1); while the
 * AP writes '~' to COM1 and reads TIS ACCESS/DID_VID/STS, the BSP sends TPM2_GetRandom round
 * trips (locality 0 requested and relinquished each time) and prints a line per round trip.
 * PASS when the AP finished all its iterations within about 20 RTC seconds with every read
 * sane (ap_bad = 0), every round trip succeeded and one more works afterwards; main.c then runs
 * tpm-tis-regs again (the TIS registers and localities are consistent after the hammer). */
#include "check_tpm.h"
#include "checks.h"
#include "config.h"
#include "phys.h"
#include "report.h"

#define AP_PAGE 0x10000u                /* ap_trampoline.S AP_PAGE: above the program, below 1 MiB */
#define AP_ITERS 2000u                  /* ap_trampoline.S AP_ITERS */
#define APIC_ICR_LO 0xFEE00300u
#define APIC_ICR_HI 0xFEE00310u

/* ap_trampoline.S: the code to copy, and the physical addresses of its two counters. */
extern const uint8_t ap_tramp[], ap_tramp_end[], ap_iters_phys[], ap_bad_phys[];

bool smp_hammer_wanted(void) { return config.mode == MODE_SMP_HAMMER; }

/* To APIC ID 1, physical destination; waits for the delivery status (bit 12) to clear. */
static void send_ipi(uint32_t icr)
{
    phys_write32(APIC_ICR_HI, 1u << 24);
    phys_write32(APIC_ICR_LO, icr);
    for (unsigned i = 0; i < 1000 && (phys_read32(APIC_ICR_LO) & 0x1000); i++)
        ;
}

void check_smp_hammer(void)
{
    uint8_t rnd[8];
    const char *why = NULL;
    uint32_t cmds = 0, iters = 0, ticks = 0;
    uint8_t last = 0xFF;

    phys_write(AP_PAGE, ap_tramp, (uint32_t)(ap_tramp_end - ap_tramp));
    send_ipi(0x4500);                   /* INIT, level assert */
    send_ipi(0x4600 | AP_PAGE >> 12);   /* start-up, twice */
    send_ipi(0x4600 | AP_PAGE >> 12);
    /* Round trips while the AP runs (at least 3), bounded by ~20 RTC seconds; then one more. */
    while (!why && ticks < 20 && (cmds < 3 || iters < AP_ITERS)) {
        why = tpm_get_random(true, false, rnd);
        iters = phys_read32((uint32_t)ap_iters_phys);
        info("hammer cmd=%u ap=%u", ++cmds, iters);
        outb(0x70, 0x80);
        uint8_t sec = inb(0x71);
        ticks += sec != last;
        last = sec;
    }
    uint32_t bad = phys_read32((uint32_t)ap_bad_phys);
    if (!why)
        why = tpm_get_random(true, false, rnd);
    if (why || iters != AP_ITERS || bad)
        fail("ap_iters=%u ap_bad=%u bsp_cmds=%u %s", iters, bad, cmds, why ? why : "");
    else
        pass("ap_iters=%u bsp_cmds=%u", iters, cmds);
}
