/* Shared by the TPM checks (check_tpm.c, check_tpm_log.c) and the TPM benchmark (bench_tpm.c). */
#ifndef MVG_CHECK_TPM_H
#define MVG_CHECK_TPM_H

#include "guest.h"

/* TPM2 (TPM 2.0) or TCPA (TPM 1.2) table as config.tpm expects it: its log area (LASA, LAML).
 * Returns NULL or the reason there is no usable log area. */
const char *tpm_log_area(uint32_t *lasa, uint32_t *laml);

/* TPM2_GetRandom(8) (tpm2) / TPM_GetRandom(8) on locality 0 through tpm_command (tpm_tis.h;
 * strict: per-byte STS checks): checks tag, rc 0 and that 8 bytes came back; copies them to out.
 * Returns NULL or the reason. */
const char *tpm_get_random(bool tpm2, bool strict, uint8_t out[8]);

#endif
