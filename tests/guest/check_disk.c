/* disk-read and disk-write checks (INT 13h AH=42h/43h on the boot drive). */
#include "checks.h"

#include "bios.h"
#include "config.h"
#include "report.h"

extern const uint8_t _start[];          /* LBA 0 as loaded by SeaBIOS (never modified) */
extern const uint8_t _trailer[];        /* last 16 bytes of the loaded image */
extern const uint8_t _load_sectors[];   /* linker constant: sectors after the MBR */

static uint8_t sector_buf[1024] LOWBSS;  /* two sectors */

void check_disk_read(void)
{
    uint32_t sectors = (uint32_t)(uintptr_t)_load_sectors;
    if (memcmp(_trailer, "MVGTRAIL", 8) != 0 || le32(_trailer + 8) != sectors) {
        fail("trailer magic missing at 0x%x", (uint32_t)(uintptr_t)_trailer);
        return;
    }
    if (!disk_has_ext()) {
        fail("INT 13h extensions (AH=41h) not reported for drive 0x%x", boot_drive);
        return;
    }
    int err = disk_read(0, 1, sector_buf);
    if (err) {
        fail("AH=42h LBA 0 error 0x%x", (uint32_t)err);
        return;
    }
    if (memcmp(sector_buf, _start, 512) != 0) {
        fail("LBA 0 read again differs from the MBR at 0x7C00");
        return;
    }
    err = disk_read(sectors, 1, sector_buf);
    if (err) {
        fail("AH=42h LBA %u error 0x%x", sectors, (uint32_t)err);
        return;
    }
    if (memcmp(sector_buf + 512 - 16, _trailer, 16) != 0) {
        fail("LBA %u read again has no trailer", sectors);
        return;
    }
    pass("drive=0x%x sectors=1+%u trailer=ok lba0=ok", boot_drive, sectors);
}

/* Scratch pattern, also checked from the host by test_guest_on_qemu.py: "MVGSCRAT",
 * boot number, nonce, LBA of the first sector, then byte i = (i * 7 + nonce + boot) & 0xFF. */
void check_disk_write(void)
{
    if (config.mode == MODE_NONE) {
        fail("no valid config sector, scratch area unknown");
        return;
    }
    uint8_t pattern[1024];              /* on the stack: .bss is tight (guest.ld) */
    uint32_t lba = config.scratch_lba;
    uint32_t nonce = (uint32_t)rdtsc() ^ (uint32_t)(rdtsc() >> 32) ^ 0x4D564721;
    for (unsigned i = 0; i < sizeof(pattern); i++)
        pattern[i] = (uint8_t)(i * 7 + nonce + boot_number);
    memcpy(pattern, "MVGSCRAT", 8);
    put_le32(pattern + 8, boot_number);
    put_le32(pattern + 12, nonce);
    put_le32(pattern + 16, lba);
    int err = disk_write(lba, 2, pattern);
    if (err) {
        fail("AH=43h LBA %u error 0x%x", lba, (uint32_t)err);
        return;
    }
    memset(sector_buf, 0xA5, sizeof(sector_buf));
    err = disk_read(lba, 2, sector_buf);
    if (err) {
        fail("AH=42h LBA %u error 0x%x", lba, (uint32_t)err);
        return;
    }
    for (unsigned i = 0; i < sizeof(pattern); i++) {
        if (sector_buf[i] != pattern[i]) {
            fail("LBA %u byte %u read 0x%x, wrote 0x%x", lba + i / 512, i % 512, sector_buf[i], pattern[i]);
            return;
        }
    }
    pass("lba=%u sectors=2 boot=%u nonce=0x%x", lba, boot_number, nonce);
}
