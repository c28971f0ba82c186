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
    case MODE_BENCH_TPM:
        return "bench-tpm";
    case MODE_DEMO:
        return "demo";
    case MODE_RESET_LOOP:
        return "reset-loop";
    case MODE_SMP_HAMMER:
        return "smp-hammer";
    default:
        return "none";
    }
}

const char *tpm_expect_name(uint32_t tpm)
{
    static const char *const names[] = {"unchecked", "none", "1.2", "2.0", "2.0-crb"};
    return tpm <= TPM_20_CRB ? names[tpm] : "?";
}

const char *reset_method_name(uint32_t method)
{
    static const char *const names[] = {"cf9", "acpi", "port92", "triple"};
    return method <= RESET_TRIPLE ? names[method] : "?";
}

/* Mode-specific parameters; NULL if fine, else the reason. */
static const char *mode_params_bad(void)
{
    if (config.reset_method > RESET_TRIPLE)
        return "unknown reset method";
    if ((config.mode == MODE_BENCH_TPM || config.mode == MODE_DEMO) && config.tpm < TPM_12)
        return "bench-tpm and demo need a TPM (tpm 1.2 or 2.0)";
    if (config.mode == MODE_BENCH_TPM && (config.bench_count == 0 || config.bench_count > BENCH_COUNT_MAX))
        return "bench count out of range";
    if (config.mode == MODE_SMP_HAMMER && config.tpm != TPM_20)
        return "smp-hammer needs tpm 2.0";
    if (config.mode == MODE_RESET_LOOP && (config.resets == 0 || config.resets > RESETS_MAX))
        return "reset-loop resets out of range";
    return NULL;
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
    if (config.mode < MODE_BASIC || config.mode > MODE_SMP_HAMMER) {
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
    if (config.tpm > TPM_20_CRB) {
        fail("unknown tpm expectation %u", config.tpm);
        config.mode = MODE_NONE;
        config.tpm = TPM_UNCHECKED;
        return;
    }
    const char *bad = mode_params_bad();
    if (bad) {
        fail("%s (reset_method=%u bench_count=%u tpm=%u)", bad, config.reset_method, config.bench_count, config.tpm);
        config.mode = MODE_NONE;
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
    pass("mode=%s boot=%u scratch=%u+%u%s%s%s%s", mode_name(config.mode), boot_number, config.scratch_lba,
         config.scratch_sectors, config.tpm ? " tpm=" : "", config.tpm ? tpm_expect_name(config.tpm) : "",
         config.mode == MODE_RESET ? " reset=" : "",
         config.mode == MODE_RESET ? reset_method_name(config.reset_method) : "");
}
