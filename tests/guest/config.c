/* Config sector: mode, boot counter, scratch area. */
#include "config.h"

#include "bios.h"
#include "report.h"

struct guest_config config;
uint32_t boot_number;
bool config_persisted;

const char *mode_name(uint32_t mode)
{
    switch (mode) {
    case MODE_BASIC:
        return "basic";
    case MODE_RESET:
        return "reset";
    default:
        return "none";
    }
}

const char *tpm_expect_name(uint32_t tpm)
{
    static const char *const names[] = {"unchecked", "none", "1.2", "2.0"};
    return tpm <= TPM_20 ? names[tpm] : "?";
}

void check_config(void)
{
    int err = disk_read(CONFIG_LBA, 1, &config);
    if (err) {
        memset(&config, 0, sizeof(config));
        fail("read LBA %u error 0x%x", CONFIG_LBA, (uint32_t)err);
        return;
    }
    if (memcmp(config.magic, CONFIG_MAGIC, 8) != 0) {
        memset(&config, 0, sizeof(config));
        fail("no config magic at LBA %u (image not made by mkimage.py?)", CONFIG_LBA);
        return;
    }
    if (config.mode != MODE_BASIC && config.mode != MODE_RESET) {
        uint32_t mode = config.mode;
        config.mode = MODE_NONE;
        fail("unknown mode %u", mode);
        return;
    }
    if (config.scratch_lba <= CONFIG_LBA || config.scratch_sectors < 2) {
        fail("bad scratch area lba=%u sectors=%u", config.scratch_lba, config.scratch_sectors);
        config.mode = MODE_NONE;
        return;
    }
    if (config.tpm > TPM_20) {
        fail("unknown tpm expectation %u", config.tpm);
        config.mode = MODE_NONE;
        config.tpm = TPM_UNCHECKED;
        return;
    }
    boot_number = config.boot_count + 1;
    config.boot_count = boot_number;
    err = disk_write(CONFIG_LBA, 1, &config);
    if (err) {
        fail("writing boot counter to LBA %u: error 0x%x", CONFIG_LBA, (uint32_t)err);
        return;
    }
    config_persisted = true;
    pass("mode=%s boot=%u scratch=%u+%u%s%s", mode_name(config.mode), boot_number, config.scratch_lba,
         config.scratch_sectors, config.tpm ? " tpm=" : "", config.tpm ? tpm_expect_name(config.tpm) : "");
}
