/* TCG event log walker (see tcg_log.h). The log is above 1 MiB, so it is read through a window
 * in low memory refilled with phys_read; every length is checked against LAML. */
#include "tcg_log.h"

#include "phys.h"
#include "report.h"

/* n (<= 128) bytes at log offset off, or NULL past LAML. Valid until the next call. */
static const uint8_t *log_get(struct tcg_log *log, uint32_t off, uint32_t n)
{
    if (off > log->size || n > log->size - off)
        return NULL;
    if (off < log->window_off || off + n > log->window_off + log->window_len) {
        log->window_off = off;
        log->window_len = log->size - off < sizeof(log->window) ? log->size - off : sizeof(log->window);
        phys_read(log->window, log->base + off, log->window_len);
    }
    return log->window + (off - log->window_off);
}

static const char *bad(struct tcg_log *log, uint32_t off, const char *why)
{
    info("tpm-log bad at offset 0x%x, event %u", off, log->ev.index);
    return why;
}

/* Event data at *off (u32 length first): keeps its first bytes in ev->data. */
static const char *read_data(struct tcg_log *log, uint32_t *off)
{
    struct tcg_event *ev = &log->ev;
    const uint8_t *p = log_get(log, *off, 4);
    if (!p)
        return bad(log, *off, "log runs past LAML");
    ev->data_len = le32(p);
    *off += 4;
    if (ev->data_len > log->size - *off)
        return bad(log, *off, "log runs past LAML");
    memset(ev->data, 0, sizeof(ev->data));
    uint32_t keep = ev->data_len < TCG_DATA_KEEP ? ev->data_len : TCG_DATA_KEEP;
    if (keep)
        memcpy(ev->data, log_get(log, *off, keep), keep);
    *off += ev->data_len;
    return NULL;
}

/* TCG_PCClientPCREvent (SHA-1 format) at *off; *end set for the all-zero terminator. */
static const char *read_sha1_event(struct tcg_log *log, uint32_t *off, bool *end)
{
    struct tcg_event *ev = &log->ev;
    const uint8_t *p = log_get(log, *off, 32);
    *end = !p;
    if (!p)
        return NULL;                    /* the log fills LAML exactly */
    ev->pcr = le32(p);
    ev->type = le32(p + 4);
    ev->has_sha1 = true;
    ev->has_sha256 = false;
    memcpy(ev->sha1, p + 8, SHA1_SIZE);
    if (ev->type == 0 && le32(p + 28) == 0) {
        *end = true;
        return NULL;
    }
    *off += 28;
    return read_data(log, off);
}

/* TCG_EfiSpecIdEvent, the first event's data (PFP §9.4.5.1): signature[16], platformClass u32,
 * specVersionMinor/Major, specErrata, uintnSize (u8 each), numberOfAlgorithms u32,
 * {algorithmId u16, digestSize u16}[n], vendorInfoSize u8, vendorInfo. Checked: signature,
 * numberOfAlgorithms and the digest sizes the events need. */
static const char *read_spec_id(struct tcg_log *log, uint32_t data_off)
{
    static const char sig[16] = "Spec ID Event03";
    struct tcg_event *ev = &log->ev;
    static const uint8_t zero[SHA1_SIZE];
    if (ev->pcr != 0 || ev->type != EV_NO_ACTION || memcmp(ev->sha1, zero, SHA1_SIZE) != 0 ||
        ev->data_len < 33 || memcmp(ev->data, sig, 16) != 0)
        return bad(log, 0, "no Spec ID event");
    uint32_t n = le32(log_get(log, data_off + 24, 4));
    if (n == 0 || n > TCG_MAX_ALGS || 28 + 4 * n + 1 > ev->data_len)
        return bad(log, data_off + 24, "Spec ID: bad numberOfAlgorithms");
    log->nalgs = n;
    const uint8_t *p = log_get(log, data_off + 28, 4 * n);
    for (unsigned i = 0; i < n; i++) {
        uint16_t alg = le16(p + 4 * i), size = le16(p + 4 * i + 2);
        if ((alg == TPM2_ALG_SHA1 && size != SHA1_SIZE) || (alg == TPM2_ALG_SHA256 && size != SHA256_SIZE) ||
            size == 0 || size > 64)
            return bad(log, data_off + 28 + 4 * i, "Spec ID: bad digest size");
        log->alg[i] = alg;
        log->digest_size[i] = size;
    }
    return NULL;
}

/* TCG_PCR_EVENT2 at *off; *end set for the all-zero terminator. */
static const char *read_agile_event(struct tcg_log *log, uint32_t *off, bool *end)
{
    struct tcg_event *ev = &log->ev;
    const uint8_t *p = log_get(log, *off, 12);
    *end = !p;
    if (!p)
        return NULL;
    ev->pcr = le32(p);
    ev->type = le32(p + 4);
    uint32_t count = le32(p + 8);
    ev->has_sha1 = ev->has_sha256 = false;
    if (ev->type == 0 && count == 0) {
        *end = true;
        return NULL;
    }
    if (count == 0 || count > log->nalgs)
        return bad(log, *off + 8, "bad digest count");
    *off += 12;
    for (uint32_t i = 0; i < count; i++) {
        p = log_get(log, *off, 2);
        unsigned a = 0;
        while (p && a < log->nalgs && log->alg[a] != le16(p))
            a++;
        if (!p || a == log->nalgs)
            return bad(log, *off, "digest algorithm not in Spec ID");
        uint16_t alg = log->alg[a], size = log->digest_size[a];
        p = log_get(log, *off + 2, size);
        if (!p)
            return bad(log, *off, "log runs past LAML");
        if (alg == TPM2_ALG_SHA1) {
            memcpy(ev->sha1, p, SHA1_SIZE);
            ev->has_sha1 = true;
        } else if (alg == TPM2_ALG_SHA256) {
            memcpy(ev->sha256, p, SHA256_SIZE);
            ev->has_sha256 = true;
        }
        *off += 2u + size;
    }
    return read_data(log, off);
}

const char *tcg_log_walk(struct tcg_log *log, tcg_event_fn fn, void *ctx, unsigned *events)
{
    struct tcg_event *ev = &log->ev;
    uint32_t off = 0;
    bool end = false;
    const char *why;
    log->window_off = log->window_len = 0;
    log->nalgs = 0;
    log->used = 0;
    *events = 0;
    for (ev->index = 0;; ev->index++) {
        if (ev->index >= TCG_MAX_EVENTS)
            return bad(log, off, "too many events");
        uint32_t start = off;
        if (!log->agile || ev->index == 0)
            why = read_sha1_event(log, &off, &end);
        else
            why = read_agile_event(log, &off, &end);
        if (!why && log->agile && ev->index == 0)
            why = end ? bad(log, 0, "no Spec ID event") : read_spec_id(log, start + 32);
        if (why)
            return why;
        if (end)
            return NULL;
        if (ev->pcr > 23)
            return bad(log, start, "PCR index above 23");
        log->used = off;
        *events = ev->index + 1;
        if ((why = fn(ev, ctx)) != NULL)
            return why;
    }
}
