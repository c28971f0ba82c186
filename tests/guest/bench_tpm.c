/* bench-tpm mode: config.bench_count TPM round trips, timed on the host from the serial lines
 * "bench-start n=N" and "bench-end n=N ok=K" (scripts/bench-tpm). Each round trip is one
 * TPM2_GetRandom(8) / TPM_GetRandom(8) the way Linux's tpm_tis driver sends a command: request
 * locality 0, byte-wise DATA_FIFO writes and reads in burstCount chunks, relinquish locality 0
 * (tpm_tis.c, non-strict: no per-byte STS reads). Stops at the first failing round trip, so a
 * dead TPM costs one timeout, not N. */
#include "check_tpm.h"
#include "checks.h"
#include "config.h"
#include "report.h"
#include "serial.h"

bool bench_tpm_wanted(void) { return config.mode == MODE_BENCH_TPM; }

void check_bench_tpm(void)
{
    bool tpm2 = tpm_expect_20();
    uint32_t n = config.bench_count, ok = 0;
    uint8_t random[8], first[8];
    const char *why = NULL;
    print("MVG: bench-start n=%u\n", n);
    serial_flush();
    for (; ok < n; ok++) {
        if ((why = tpm_get_random(tpm2, false, random)))
            break;
        if (ok == 0)
            memcpy(first, random, sizeof(first));
    }
    print("MVG: bench-end n=%u ok=%u\n", n, ok);
    serial_flush();
    if (why)
        fail("round trip %u of %u: %s", ok + 1, n, why);
    else if (n > 1 && memcmp(first, random, sizeof(first)) == 0)
        fail("first and last of %u GetRandom calls returned the same bytes", n);
    else
        pass("n=%u %s(8) rc=0 each, byte-wise FIFO", n, tpm2 ? "TPM2_GetRandom" : "TPM_GetRandom");
}
