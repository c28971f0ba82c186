/* tpm_rate: the Linux user-space TPM round-trip rate, for scripts/bench-linux. Sends COUNT
 * GetRandom(8) commands through a TPM character device (default /dev/tpmrm0, the kernel's
 * resource manager; /dev/tpm0 for TPM 1.2), one write() and one read() each, and prints
 *   tpm-rate device=D version=2.0|1.2 n=N ok=K seconds=S ops_per_s=R
 * timed with CLOCK_MONOTONIC. The TPM version is the one /sys/class/tpm/tpm0 reports.
 * Exit status 0 when every command answered with return code 0.
 * TPM 2.0 Part 3 §16.1 (TPM2_GetRandom), TPM 1.2 Part 3 §13.6 (TPM_GetRandom). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const unsigned char get_random_20[] = {0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7B, 0, 8};
static const unsigned char get_random_12[] = {0x00, 0xC1, 0, 0, 0, 14, 0, 0, 0, 0x46, 0, 0, 0, 8};

static int tpm_major(void)
{
    FILE *f = fopen("/sys/class/tpm/tpm0/tpm_version_major", "r");
    int v = 0;
    if (f) {
        if (fscanf(f, "%d", &v) != 1)
            v = 0;
        fclose(f);
    }
    return v;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long count = argc > 1 ? strtol(argv[1], NULL, 10) : 1000;
    int tpm2 = tpm_major() != 1;
    const char *dev = argc > 2 ? argv[2] : tpm2 ? "/dev/tpmrm0" : "/dev/tpm0";
    if (count < 1) {
        fprintf(stderr, "usage: tpm_rate [COUNT [DEVICE]]\n");
        return 2;
    }
    int fd = open(dev, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        printf("tpm-rate device=%s error=open:%s\n", dev, strerror(errno));
        return 1;
    }
    const unsigned char *cmd = tpm2 ? get_random_20 : get_random_12;
    size_t len = tpm2 ? sizeof(get_random_20) : sizeof(get_random_12);
    unsigned char rsp[64];
    long ok = 0;
    const char *why = NULL;
    double start = now();
    for (long i = 0; i < count; i++) {
        if (write(fd, cmd, len) != (ssize_t)len) {
            why = "write";
            break;
        }
        ssize_t n = read(fd, rsp, sizeof(rsp));
        /* header: tag(2) size(4) return code(4), then the bytes: 2.0 a TPM2B (2+8), 1.2 a UINT32 size + 8 */
        if (n < 10 || rsp[6] | rsp[7] | rsp[8] | rsp[9]) {
            why = "response";
            break;
        }
        ok++;
    }
    double seconds = now() - start;
    close(fd);
    printf("tpm-rate device=%s version=%s n=%ld ok=%ld seconds=%.6f ops_per_s=%.1f%s%s\n", dev, tpm2 ? "2.0" : "1.2",
           count, ok, seconds, seconds > 0 ? (double)ok / seconds : 0.0, why ? " error=" : "", why ? why : "");
    return ok == count ? 0 : 1;
}
