/* ACPI discovery (ACPI 6.x §5.2.5 RSDP, §5.2.7/5.2.8 RSDT/XSDT, §5.2.9 FADT) and what the
 * checks found, for later checks (e.g. TPM2/TCPA tables) to use. */
#ifndef MVG_ACPI_H
#define MVG_ACPI_H

#include "guest.h"

#define ACPI_MAX_TABLES 32
#define ACPI_HEADER_LEN 36
#define ACPI_MAX_TABLE_LEN (1u << 20)

struct acpi_table_ref {
    char sig[5];                        /* NUL-terminated */
    uint32_t addr, len;
    bool checksum_ok;
};

struct acpi_state {
    uint32_t rsdp;                      /* 0 = not found */
    uint8_t revision;
    char oem[7];
    uint32_t rsdt;
    uint32_t xsdt_lo, xsdt_hi;
    bool tables_ok;                     /* acpi-tables passed */
    unsigned ntables;
    struct acpi_table_ref tables[ACPI_MAX_TABLES];
    uint32_t fadt, fadt_len;
    uint32_t dsdt, dsdt_len;
    uint32_t facs;
    uint32_t pm1a_cnt;                  /* FADT +64 */
};

extern struct acpi_state acpi;

/* Table from the root table walked by acpi-tables ("FACP", "APIC", "TPM2", ...), or NULL. */
const struct acpi_table_ref *acpi_find_table(const char *sig);

/* Checks. */
void check_rsdp(void);
void check_acpi_tables(void);

/* SLP_TYPa of \_S5 from the DSDT (ACPI 6.x §7.4.2); false with *why set if not found. */
bool acpi_s5_slp_typa(uint8_t *slp_typa, const char **why);

#endif
