/* The checks run by main.c, in order. Each calls pass() or fail() once (report.h). */
#ifndef MVG_CHECKS_H
#define MVG_CHECKS_H

void check_disk_read(void);             /* check_disk.c */
void check_disk_write(void);
void check_rsdp(void);                  /* acpi.c */
void check_acpi_tables(void);

#endif
