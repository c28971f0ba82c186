/* Guest test program main flow (see README.md for the protocol and the image layout). */
#include "acpi.h"
#include "bios.h"
#include "checks.h"
#include "config.h"
#include "phys.h"
#include "power.h"
#include "report.h"
#include "serial.h"

struct check {
    const char *name;
    check_fn run;
    bool (*wanted)(void);               /* NULL: always run */
};

/* Run on every boot, in this order. New checks are appended here. */
static const struct check checks[] = {
    {"disk-read", check_disk_read, NULL},
    {"disk-write", check_disk_write, NULL},
    {"rsdp", check_rsdp, NULL},
    {"acpi-tables", check_acpi_tables, NULL},
    {"tpm-acpi", check_tpm_acpi, tpm_checks_wanted},
    {"tpm-tis-regs", check_tpm_tis_regs, tpm_tis_checks_wanted},
    {"tpm-crb-regs", check_tpm_crb_regs, tpm_crb_checks_wanted},
    {"tpm-cmd", check_tpm_cmd, tpm_device_expected},
    {"tpm-eventlog", check_tpm_eventlog, tpm_device_expected},
    {"bench-tpm", check_bench_tpm, bench_tpm_wanted},
    {"smp-hammer", check_smp_hammer, smp_hammer_wanted},
    {"tpm-tis-regs", check_tpm_tis_regs, smp_hammer_wanted},   /* the TIS is sane after the hammer */
};

void guest_main(void);

void guest_main(void)
{
    serial_init();
    /* Demo mode prints a plain report instead of PASS/info lines: look at the mode first. */
    report_quiet = disk_read(CONFIG_LBA, 1, &config) == 0 && memcmp(config.magic, CONFIG_MAGIC, 8) == 0 &&
                   config.mode == MODE_DEMO;
    print("\n");                        /* start on a fresh line after any BIOS output */
    result("serial", true, "COM1 0x3F8 115200 8N1 minivmm-guest/1");
    if (!phys_enable_a20())
        fail_and_halt("a20", "A20 gate stays off (INT 15h AX=2401h and port 0x92)");

    check_run("config", check_config);
    if (config.mode == MODE_RESET) {
        if (!config_persisted)
            fail_and_halt("reset", "boot counter not written back, not resetting");
        if (boot_number == 2)
            result("second-boot", true, "boot=2 counter=1 after reset");
        else if (boot_number > 2)
            fail_and_halt("second-boot", "boot counter above 2: more than one reset");
    }
    if (config.mode == MODE_RESET_LOOP && !config_persisted)
        fail_and_halt("reset", "boot counter not written back, not resetting");
    if (config.mode == MODE_RESET_LOOP && boot_number > config.resets + 1)
        fail_and_halt("reset", "boot counter above resets+1: the loop did not stop");

    if (config.mode == MODE_DEMO) {
        check_run("rsdp", check_rsdp);
        check_run("acpi-tables", check_acpi_tables);
        check_run("demo", check_demo);
        power_off();
    }

    for (unsigned i = 0; i < ARRAY_SIZE(checks); i++)
        if (!checks[i].wanted || checks[i].wanted())
            check_run(checks[i].name, checks[i].run);

    if ((config.mode == MODE_RESET && boot_number == 1) ||
        (config.mode == MODE_RESET_LOOP && boot_number <= config.resets))
        request_reset(boot_number);
    power_off();
}
