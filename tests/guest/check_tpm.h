/* Shared by the TPM checks (check_tpm.c, check_tpm_log.c). */
#ifndef MVG_CHECK_TPM_H
#define MVG_CHECK_TPM_H

#include "guest.h"

/* TPM2 (TPM 2.0) or TCPA (TPM 1.2) table as config.tpm expects it: its log area (LASA, LAML).
 * Returns NULL or the reason there is no usable log area. */
const char *tpm_log_area(uint32_t *lasa, uint32_t *laml);

#endif
