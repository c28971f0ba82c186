/* BIOS interrupt calls and INT 13h extended disk I/O (EDD 3.0 packet calls). */
#ifndef MVG_BIOS_H
#define MVG_BIOS_H

#include "guest.h"

struct bios_regs {
    uint32_t eax, ebx, ecx, edx, esi, edi;
    uint32_t eflags;                    /* after the call; bit 0 = CF */
};
#define BIOS_CF 0x1u

/* realmode.S: INT vec (0x10, 0x13, 0x15, 0x1A) with DS = ES = 0; r is in and out. */
void bios_int(uint8_t vec, struct bios_regs *r);

extern uint8_t boot_drive;              /* DL at boot, stored by entry.S */

/* INT 13h AH=41h: packet calls (AH=42h/43h) supported for the boot drive. */
bool disk_has_ext(void);
/* INT 13h AH=42h / AH=43h (AL=0, no verify) on the boot drive. buf must be a low-memory
 * buffer, count 1..127. Returns 0 or the BIOS status (AH), 0x100 if CF is set with AH = 0,
 * 0x101 for bad arguments. */
int disk_read(uint32_t lba, uint16_t count, void *buf);
int disk_write(uint32_t lba, uint16_t count, const void *buf);

#endif
