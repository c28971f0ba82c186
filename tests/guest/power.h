/* End of a boot: ACPI S5 power-off or a reset (config reset_method). Neither returns. */
#ifndef MVG_POWER_H
#define MVG_POWER_H

#include "guest.h"

/* Finds SLP_TYPa of \_S5 and PM1a_CNT_BLK, prints DONE, writes SLP_TYPa<<10 | SLP_EN.
 * If the machine is still running: "poweroff FAIL still running" and halt. */
NORETURN void power_off(void);
/* Resets by config.reset_method: cf9 = 0x06 to port 0xCF9; acpi = RESET_VALUE to the FADT's
 * RESET_REG (FADT rev >= 2, RESET_REG_SUP, SystemIO, else "reset FAIL" + halt before the
 * request); port92 = set bit 0 of port 0x92; triple = triple fault. Prints "info reset
 * method=M" and "reset-request boot=N" first. If still running 1-2 s later: FAIL + halt. */
NORETURN void request_reset(uint32_t boot);

#endif
