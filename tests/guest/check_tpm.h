/* Shared by the TPM checks (check_tpm.c, check_tpm_log.c), the TPM benchmark (bench_tpm.c) and
 * the demo report (demo.c). */
#ifndef MVG_CHECK_TPM_H
#define MVG_CHECK_TPM_H

#include "guest.h"
#include "sha.h"

#define TPM_NPCR 8                      /* PCRs 0-7: what the firmware measures into */

/* TPM2 (TPM 2.0) or TCPA (TPM 1.2) table as config.tpm expects it: its log area (LASA, LAML).
 * Returns NULL or the reason there is no usable log area. */
const char *tpm_log_area(uint32_t *lasa, uint32_t *laml);

/* TPM2_GetRandom(8) (tpm2) / TPM_GetRandom(8) on locality 0 through tpm_command (tpm_tis.h;
 * strict: per-byte STS checks): checks tag, rc 0 and that 8 bytes came back; copies them to out.
 * Returns NULL or the reason. */
const char *tpm_get_random(bool tpm2, bool strict, uint8_t out[8]);

/* check_tpm_log.c. PCRs 0-7 of the SHA-256 bank (tpm2: TPM2_PCR_Read) or SHA-1 (TPM_PCRRead; the
 * first 20 bytes of each row are used). Returns NULL or the reason. */
const char *tpm_read_pcrs(bool tpm2, uint8_t out[TPM_NPCR][SHA256_SIZE]);

/* check_tpm_log.c. Walks the firmware's event log (tpm_log_area) and replays every event but
 * EV_NO_ACTION into software PCRs 0-7 (SHA-256 bank for tpm2, else SHA-1), checking one
 * EV_SEPARATOR per PCR and the EV_IPL "MBR" event. Returns NULL with the replayed values in pcr,
 * or the reason (details in an info line). *events = entries walked (the Spec ID event
 * included), *bytes = log bytes used, also on failure as far as the walk got. */
const char *tpm_log_replay(bool tpm2, uint8_t pcr[TPM_NPCR][SHA256_SIZE], unsigned *events, uint32_t *bytes);

#endif
