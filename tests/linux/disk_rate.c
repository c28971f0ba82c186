/* disk_rate: the Linux guest's virtio-blk request rate, for scripts/bench-linux.
 *   disk_rate SYNC_COUNT READ_MIB [DEVICE]   (DEVICE default /dev/vda)
 * Phase 1, sync writes: opens DEVICE O_RDWR|O_DIRECT, reads one 4 KiB-aligned block in the middle of
 * the device (its size from BLKGETSIZE64), then SYNC_COUNT times writes the same bytes back to the
 * same block and calls fdatasync(): one virtio-blk write request and one FLUSH each. The disk's
 * content never changes, so this is safe without -snapshot too.
 * Phase 2, sequential read: reads READ_MIB MiB (at most the device's size) from offset 0 with
 * O_DIRECT in 64 KiB blocks, one virtio-blk read request each (the page cache is bypassed).
 * Prints, one line at a time (flushed; the host times each phase between them, since the guest's
 * clock is not comparable under nested icount):
 *   disk-sync-start / disk-sync n=N ok=K / disk-read-start / disk-read bytes=B ok=0|1
 * with error=WHAT:ERRNO on a failure. Exit status 0 when every request succeeded.
 * open(2) O_DIRECT, fdatasync(2); virtio 1.0 §5.2.6 (VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

enum { SYNC_BLOCK = 4096, READ_BLOCK = 64 * 1024 };

static void line(const char *text, const char *what, int err)
{
    if (what)
        printf("%s error=%s:%s\n", text, what, strerror(err));
    else
        printf("%s\n", text);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    long count = argc > 2 ? strtol(argv[1], NULL, 10) : 0;
    long mib = argc > 2 ? strtol(argv[2], NULL, 10) : -1;
    const char *dev = argc > 3 ? argv[3] : "/dev/vda";
    if (count < 1 || mib < 0) {
        fprintf(stderr, "usage: disk_rate SYNC_COUNT READ_MIB [DEVICE]\n");
        return 2;
    }
    char text[160];
    const char *setup = NULL, *why = NULL;
    int setup_err = 0, err = 0;
    uint64_t size = 0;
    void *buf = NULL;
    int fd = open(dev, O_RDWR | O_DIRECT | O_CLOEXEC);
    if (fd < 0)
        setup = "open", setup_err = errno;
    else if (ioctl(fd, BLKGETSIZE64, &size) != 0)
        setup = "BLKGETSIZE64", setup_err = errno;
    else if (size < SYNC_BLOCK)
        setup = "size", setup_err = EINVAL;
    else if ((setup_err = posix_memalign(&buf, SYNC_BLOCK, READ_BLOCK)) != 0)
        setup = "posix_memalign";

    /* Phase 1: SYNC_COUNT x (write the block's own bytes back, fdatasync). */
    line("disk-sync-start", NULL, 0);
    off_t at = (off_t)(size / 2 / SYNC_BLOCK * SYNC_BLOCK);
    long ok = 0;
    why = setup, err = setup_err;
    if (!why && pread(fd, buf, SYNC_BLOCK, at) != SYNC_BLOCK)
        why = "pread", err = errno;
    for (long i = 0; !why && i < count; i++) {
        if (pwrite(fd, buf, SYNC_BLOCK, at) != SYNC_BLOCK)
            why = "pwrite", err = errno;
        else if (fdatasync(fd) != 0)
            why = "fdatasync", err = errno;
        else
            ok++;
    }
    snprintf(text, sizeof(text), "disk-sync n=%ld ok=%ld", count, ok);
    line(text, why, err);
    int failed = why != NULL;

    /* Phase 2: READ_MIB MiB (at most the device's size) from offset 0, 64 KiB per request. */
    line("disk-read-start", NULL, 0);
    uint64_t want = (uint64_t)mib << 20, done = 0;
    if (want > size)
        want = size;
    why = setup, err = setup_err;
    while (!why && done < want) {
        size_t n = want - done < READ_BLOCK ? (size_t)(want - done) : READ_BLOCK;
        ssize_t got = pread(fd, buf, n, (off_t)done);
        if (got <= 0)
            why = "pread", err = got < 0 ? errno : EIO; /* 0: the device ended early */
        else
            done += (uint64_t)got;
    }
    snprintf(text, sizeof(text), "disk-read bytes=%llu ok=%d", (unsigned long long)done, !why);
    line(text, why, err);
    failed |= why != NULL;
    if (fd >= 0)
        close(fd);
    free(buf);
    return failed;
}
