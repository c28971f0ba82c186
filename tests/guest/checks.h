/* The checks run by main.c, in order. Each calls pass() or fail() once (report.h). */
#ifndef MVG_CHECKS_H
#define MVG_CHECKS_H

#include "guest.h"

void check_disk_read(void);             /* check_disk.c */
void check_disk_write(void);
void check_rsdp(void);                  /* acpi.c */
void check_acpi_tables(void);
void check_tpm_acpi(void);              /* check_tpm.c */
void check_tpm_tis_regs(void);
void check_tpm_crb_regs(void);
void check_tpm_cmd(void);
void check_tpm_eventlog(void);          /* check_tpm_log.c */
void check_bench_tpm(void);             /* bench_tpm.c */
void check_demo(void);                  /* demo.c: demo mode's report */
void check_smp_hammer(void);            /* smp_hammer.c: smp-hammer mode, both vCPUs on TIS and COM1 */

/* When the TPM checks run (config sector field tpm, mkimage.py --tpm): tpm-acpi for any
 * expectation (none, 1.2, 2.0, 2.0-crb), tpm-tis-regs for all but 2.0-crb, which has tpm-crb-regs
 * instead, tpm-cmd and tpm-eventlog with a TPM. */
bool tpm_checks_wanted(void);
bool tpm_tis_checks_wanted(void);
bool tpm_crb_checks_wanted(void);
bool tpm_device_expected(void);
/* bench-tpm runs last, in bench-tpm mode only. */
bool bench_tpm_wanted(void);
/* smp-hammer (then tpm-tis-regs again) runs last, in smp-hammer mode only. */
bool smp_hammer_wanted(void);

#endif
