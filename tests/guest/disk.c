/* INT 13h extended disk I/O on the boot drive. */
#include "bios.h"

uint8_t boot_drive;

struct edd_packet {
    uint8_t size;                       /* 16 */
    uint8_t reserved;
    uint16_t count;
    uint16_t offset, segment;           /* buffer */
    uint32_t lba_lo, lba_hi;
} PACKED;

static struct edd_packet packet;

bool disk_has_ext(void)
{
    struct bios_regs r = {.eax = 0x4100, .ebx = 0x55AA, .edx = boot_drive};
    bios_int(0x13, &r);
    return !(r.eflags & BIOS_CF) && (r.ebx & 0xFFFF) == 0xAA55 && (r.ecx & 1);
}

static int disk_packet_call(uint8_t ah, uint32_t lba, uint16_t count, uint32_t buf)
{
    if (count == 0 || count > 127 || buf + count * 512u > 0x10000u)
        return 0x101;
    packet = (struct edd_packet){.size = 16, .count = count, .offset = (uint16_t)buf, .lba_lo = lba};
    struct bios_regs r = {.eax = (uint32_t)ah << 8, .edx = boot_drive, .esi = (uint32_t)(uintptr_t)&packet};
    bios_int(0x13, &r);
    if (!(r.eflags & BIOS_CF))
        return 0;
    uint8_t status = (uint8_t)(r.eax >> 8);
    return status ? status : 0x100;
}

int disk_read(uint32_t lba, uint16_t count, void *buf)
{
    return disk_packet_call(0x42, lba, count, (uint32_t)(uintptr_t)buf);
}

int disk_write(uint32_t lba, uint16_t count, const void *buf)
{
    return disk_packet_call(0x43, lba, count, (uint32_t)(uintptr_t)buf);
}
