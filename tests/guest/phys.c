/* Physical memory access helpers on top of realmode.S pm_op. */
#include "phys.h"

#include "bios.h"

enum { PM_COPY, PM_READ8, PM_READ16, PM_READ32, PM_WRITE8, PM_WRITE16, PM_WRITE32, PM_UD2_IDT };
uint32_t pm_op(uint32_t op, uint32_t dst, uint32_t src, uint32_t val);

enum { CHUNK = 1024 };
static uint8_t chunk[CHUNK] LOWBSS;

uint8_t phys_read8(uint32_t addr) { return (uint8_t)pm_op(PM_READ8, 0, addr, 0); }
uint16_t phys_read16(uint32_t addr) { return (uint16_t)pm_op(PM_READ16, 0, addr, 0); }
uint32_t phys_read32(uint32_t addr) { return pm_op(PM_READ32, 0, addr, 0); }
void phys_write8(uint32_t addr, uint8_t v) { pm_op(PM_WRITE8, addr, 0, v); }
void phys_write16(uint32_t addr, uint16_t v) { pm_op(PM_WRITE16, addr, 0, v); }
void phys_write32(uint32_t addr, uint32_t v) { pm_op(PM_WRITE32, addr, 0, v); }
void phys_ud2_with_idt(const void *idt_desc) { pm_op(PM_UD2_IDT, 0, phys_addr(idt_desc), 0); }

void phys_read(void *dst, uint32_t src, uint32_t len)
{
    if (len)
        pm_op(PM_COPY, phys_addr(dst), src, len);
}

void phys_write(uint32_t dst, const void *src, uint32_t len)
{
    if (len)
        pm_op(PM_COPY, dst, phys_addr(src), len);
}

uint8_t phys_sum8(uint32_t addr, uint32_t len)
{
    uint8_t sum = 0;
    while (len) {
        uint32_t n = len < CHUNK ? len : CHUNK;
        phys_read(chunk, addr, n);
        for (uint32_t i = 0; i < n; i++)
            sum = (uint8_t)(sum + chunk[i]);
        addr += n;
        len -= n;
    }
    return sum;
}

int32_t phys_find(uint32_t addr, uint32_t len, uint32_t from, const void *pat, uint32_t patlen)
{
    const uint8_t *p = pat;
    if (patlen == 0 || patlen > 16 || len < patlen)
        return -1;
    /* Chunks overlap by patlen - 1 bytes so a match across a chunk boundary is found. */
    for (uint32_t off = from; off + patlen <= len;) {
        uint32_t n = len - off < CHUNK ? len - off : CHUNK;
        phys_read(chunk, addr + off, n);
        for (uint32_t i = 0; i + patlen <= n; i++)
            if (chunk[i] == p[0] && memcmp(chunk + i, p, patlen) == 0)
                return (int32_t)(off + i);
        if (off + n >= len)
            break;
        off += n - (patlen - 1);
    }
    return -1;
}

/* A20 is on when the word at 0:0500 and its alias at FFFF:0510 (1 MiB + 0x500) differ
 * after writing a distinct value to the alias. */
static bool a20_on(void)
{
    uint32_t low = 0x500, high = 0x100500;
    uint32_t saved_low = phys_read32(low), saved_high = phys_read32(high);
    phys_write32(low, 0x4D564730);
    phys_write32(high, 0x4D564731);
    bool on = phys_read32(low) == 0x4D564730;
    phys_write32(high, saved_high);
    phys_write32(low, saved_low);
    return on;
}

bool phys_enable_a20(void)
{
    if (a20_on())
        return true;
    struct bios_regs r = {.eax = 0x2401};
    bios_int(0x15, &r);
    if (a20_on())
        return true;
    /* "Fast A20" (port 0x92 bit 1); bit 0 would reset the machine. */
    outb(0x92, (uint8_t)((inb(0x92) | 0x02) & ~0x01));
    return a20_on();
}
