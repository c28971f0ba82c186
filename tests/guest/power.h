/* End of a boot: ACPI S5 power-off or a 0xCF9 reset. Neither returns. */
#ifndef MVG_POWER_H
#define MVG_POWER_H

#include "guest.h"

/* Finds SLP_TYPa of \_S5 and PM1a_CNT_BLK, prints DONE, writes SLP_TYPa<<10 | SLP_EN.
 * If the machine is still running: "poweroff FAIL still running" and halt. */
NORETURN void power_off(void);
/* Prints "reset-request boot=N", writes 0x06 to port 0xCF9. If still running: FAIL + halt. */
NORETURN void request_reset(uint32_t boot);

#endif
