/* The config sector written by mkimage.py at LBA CONFIG_LBA (see README.md). */
#ifndef MVG_CONFIG_H
#define MVG_CONFIG_H

#include "guest.h"

#define CONFIG_LBA 63
#define CONFIG_MAGIC "MVGCONF1"
#define BENCH_COUNT_MAX 1000000u
#define RESETS_MAX 1000u

enum guest_mode { MODE_NONE = 0, MODE_BASIC = 1, MODE_RESET = 2, MODE_BENCH_TPM = 3, MODE_DEMO = 4, MODE_RESET_LOOP = 5,
                  MODE_SMP_HAMMER = 6 };

/* How reset mode's first boot resets the machine (mkimage.py --reset-method); 0 = the default. */
enum reset_method { RESET_CF9 = 0, RESET_ACPI = 1, RESET_PORT92 = 2, RESET_TRIPLE = 3 };

/* What the TPM checks expect (mkimage.py --tpm); TPM_UNCHECKED skips them. */
enum tpm_expect { TPM_UNCHECKED = 0, TPM_NONE = 1, TPM_12 = 2, TPM_20 = 3, TPM_20_CRB = 4 };

/* A TPM 2.0 is expected, through TIS or CRB. */
static inline bool tpm_expect_20(void);

struct guest_config {
    char magic[8];                      /* "MVGCONF1" */
    uint32_t mode;                      /* enum guest_mode */
    uint32_t boot_count;                /* boots started so far; each boot stores +1 */
    uint32_t scratch_lba;               /* first sector the program may overwrite */
    uint32_t scratch_sectors;
    uint32_t program_sectors;           /* LBA 0..program_sectors-1 */
    uint32_t tpm;                       /* enum tpm_expect */
    uint32_t reset_method;              /* enum reset_method (reset mode) */
    uint32_t bench_count;               /* TPM round trips (bench-tpm mode), 1..1000000 */
    uint32_t resets;                    /* reset-loop mode: resets before the power-off, 1..1000 */
    uint32_t boot_mark;                 /* 1: write 123 to port 0x3F0 before "MVG: DONE" (minivmm's boot timer) */
    uint8_t reserved[512 - 48];         /* zero; room for later checks' parameters */
} PACKED;

_Static_assert(sizeof(struct guest_config) == 512, "config is one sector");

extern struct guest_config config;

static inline bool tpm_expect_20(void) { return config.tpm == TPM_20 || config.tpm == TPM_20_CRB; }
extern uint32_t boot_number;            /* 1 = first boot of this image, 0 = no config */
extern bool config_persisted;           /* boot counter written back */

/* Check "config": reads the sector, validates it, writes boot_count + 1 back. */
void check_config(void);
const char *mode_name(uint32_t mode);
const char *tpm_expect_name(uint32_t tpm);     /* "unchecked", "none", "1.2", "2.0", "2.0-crb" */
const char *reset_method_name(uint32_t method); /* "cf9", "acpi", "port92", "triple" */

#endif
