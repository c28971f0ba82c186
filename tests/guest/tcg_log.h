/* TCG event log reader for the log SeaBIOS writes at the TPM2/TCPA table's LASA:
 * TPM 1.2: TCG_PCClientPCREvent list (PC Client Implementation Spec for Conventional BIOS 1.21
 * §11.1.1: u32 pcrIndex, u32 eventType, SHA-1 digest, u32 eventDataSize, data);
 * TPM 2.0: crypto-agile (PC Client Platform Firmware Profile §9.4.5): a first SHA-1-format event
 * (EV_NO_ACTION) holding TCG_EfiSpecIdEvent "Spec ID Event03" with the digest sizes, then
 * TCG_PCR_EVENT2 (u32 pcrIndex, u32 eventType, TPML_DIGEST_VALUES {u32 count, {u16 algId,
 * digest}}, u32 eventSize, data). All fields little-endian. The log ends at an all-zero entry
 * (type 0, no digests / data size 0, as Linux's parser) or at LAML. */
#ifndef MVG_TCG_LOG_H
#define MVG_TCG_LOG_H

#include "guest.h"
#include "sha.h"

#define TCG_MAX_ALGS 5
#define TCG_MAX_EVENTS 100
#define TCG_DATA_KEEP 32                /* event data bytes kept per event */

enum {
    EV_NO_ACTION = 0x3,
    EV_SEPARATOR = 0x4,
    EV_ACTION = 0x5,
    EV_EVENT_TAG = 0x6,
    EV_IPL = 0xD,
    EV_IPL_PARTITION_DATA = 0xE,
};

enum { TPM2_ALG_SHA1 = 0x0004, TPM2_ALG_SHA256 = 0x000B };

struct tcg_event {
    unsigned index;                     /* 0 = first entry (the Spec ID event for TPM 2.0) */
    uint32_t pcr, type;
    bool has_sha1, has_sha256;
    uint8_t sha1[SHA1_SIZE], sha256[SHA256_SIZE];
    uint32_t data_len;
    uint8_t data[TCG_DATA_KEEP];        /* first min(data_len, TCG_DATA_KEEP) bytes */
};

/* Set base, size and agile; the walk fills in the rest. Big (~450 bytes): keep it on the stack. */
struct tcg_log {
    uint32_t base, size;                /* LASA, LAML */
    bool agile;                         /* TPM 2.0 crypto-agile format */
    unsigned nalgs;                     /* from the Spec ID event (agile only) */
    uint16_t alg[TCG_MAX_ALGS], digest_size[TCG_MAX_ALGS];
    uint32_t used;                      /* bytes up to the end of the last event */
    struct tcg_event ev;                /* the entry being read */
    uint32_t window_off, window_len;    /* log bytes [off, off+len) are in window */
    uint8_t window[256];
};

/* Called for every entry; returns NULL to go on or a reason to stop the walk with. */
typedef const char *(*tcg_event_fn)(const struct tcg_event *ev, void *ctx);

/* Walks the log at log->base/size (log->agile chooses the format; the other fields are filled in).
 * Returns NULL with *events entries (Spec ID event included), or the reason the log is malformed
 * (an "info" line gives the offset). */
const char *tcg_log_walk(struct tcg_log *log, tcg_event_fn fn, void *ctx, unsigned *events);

#endif
