/* tpm-eventlog check: replays the firmware's TCG event log into software PCRs 0-7 and compares
 * them with the TPM's (TPM2_PCR_Read on the SHA-256 bank / TPM_PCRRead). The replay and the PCR
 * reads are shared with the demo report (check_tpm.h). SeaBIOS (src/tcgbios.c)
 * measures before it boots the MBR, so the log is complete when this program runs; after a
 * reset the TPM is restarted and the log holds only this boot's events. */
#include "check_tpm.h"

#include "checks.h"
#include "config.h"
#include "report.h"
#include "sha.h"
#include "tcg_log.h"
#include "tpm_tis.h"

#define NPCR TPM_NPCR

extern const uint8_t _start[];          /* the MBR as SeaBIOS loaded (and measured) it */

/* Replay state; lives on the stack of tpm_log_replay (the stack has ~25 KiB, .bss is tight). */
struct replay {
    bool sha256;                        /* bank replayed: SHA-256 (TPM 2.0) or SHA-1 */
    uint8_t pcr[NPCR][SHA256_SIZE];
    uint8_t separators[NPCR];           /* EV_SEPARATOR events per PCR */
    bool mbr_seen;
    uint8_t sep_sha1[SHA1_SIZE], mbr_sha1[SHA1_SIZE];
};

/* Extends a software PCR: PCR = H(PCR || digest) (TPM 2.0 Part 1 §17.6.2 / TPM 1.2 TPM_Extend). */
static void extend(bool use256, uint8_t *pcr, const uint8_t *digest)
{
    uint8_t buf[2 * SHA256_SIZE];
    unsigned n = use256 ? SHA256_SIZE : SHA1_SIZE;
    memcpy(buf, pcr, n);
    memcpy(buf + n, digest, n);
    (use256 ? sha256 : sha1)(buf, 2 * n, pcr);
}

static const char *replay_event(const struct tcg_event *ev, void *ctx)
{
    struct replay *rp = ctx;
    if (ev->type == EV_NO_ACTION || ev->pcr >= NPCR)
        return NULL;                    /* not extended / not compared */
    if (rp->sha256 ? !ev->has_sha256 : !ev->has_sha1) {
        info("tpm-log event %u", ev->index);
        return "event lacks the SHA-256 (2.0) / SHA-1 digest";
    }
    extend(rp->sha256, rp->pcr[ev->pcr], rp->sha256 ? ev->sha256 : ev->sha1);
    /* Events whose measured data is known here, checked on their SHA-1 digest (TPM 1.2 logs and
     * SeaBIOS's TPM 2.0 logs with a SHA-1 bank): the separator 0xFFFFFFFF and MBR bytes 0-439. */
    if (ev->type == EV_SEPARATOR) {
        rp->separators[ev->pcr]++;
        if (ev->has_sha1 && memcmp(ev->sha1, rp->sep_sha1, SHA1_SIZE) != 0)
            return "EV_SEPARATOR digest != SHA-1(FFFFFFFF)";
    }
    if (ev->type == EV_IPL && ev->pcr == 4 && ev->data_len == 3 && memcmp(ev->data, "MBR", 3) == 0) {
        rp->mbr_seen = true;
        if (ev->has_sha1 && memcmp(ev->sha1, rp->mbr_sha1, SHA1_SIZE) != 0)
            return "EV_IPL MBR digest != SHA-1(MBR[0..439])";
    }
    return NULL;
}

/* TPM2_PCR_Read (TPM 2.0 Part 3 §22.4) of PCRs 0-7 in the SHA-256 bank (alg 0x000B), repeated
 * for the PCRs the TPM left out (it returns at most 8 digests per call). */
static const char *read_pcrs_tpm2(uint8_t out[NPCR][SHA256_SIZE])
{
    uint8_t cmd[20], rsp[320];          /* 8 SHA-256 PCRs: 300 bytes */
    uint8_t todo = 0xFF;
    for (unsigned round = 0; todo && round < NPCR; round++) {
        static const uint8_t head[] = {0x80, 0x01, 0, 0, 0, 20, 0, 0, 0x01, 0x7E, 0, 0, 0, 1, 0, 0x0B, 3};
        memcpy(cmd, head, sizeof(head));
        cmd[17] = todo;                 /* pcrSelect[0] = PCRs 0-7 */
        cmd[18] = cmd[19] = 0;
        uint32_t len;
        const char *why = tpm_command(cmd, 20, rsp, sizeof(rsp), &len, false);
        if (why)
            return why;
        /* pcrUpdateCounter +10, TPML_PCR_SELECTION +14 {count, {hash, sizeofSelect, select}},
         * TPML_DIGEST {count, {size, digest}} */
        if (len < 24 || be32(rsp + 14) != 1 || be16(rsp + 18) != 0x000B || rsp[20] < 1 || 21u + rsp[20] + 4 > len)
            return "PCR_Read: bad pcrSelectionOut";
        uint8_t got = rsp[21] & todo;
        uint32_t off = 21 + rsp[20];
        uint32_t count = be32(rsp + off);
        off += 4;
        if (got == 0)
            return "PCR_Read: no PCR returned";
        for (unsigned i = 0; i < NPCR; i++) {
            if (!(got & (1u << i)))
                continue;
            if (count-- == 0 || off + 2 + SHA256_SIZE > len || be16(rsp + off) != SHA256_SIZE)
                return "PCR_Read: bad digest list";
            memcpy(out[i], rsp + off + 2, SHA256_SIZE);
            off += 2 + SHA256_SIZE;
        }
        todo &= (uint8_t)~got;
    }
    return todo ? "PCR_Read: PCRs missing" : NULL;
}

/* TPM_PCRRead (TPM 1.2 Part 3 §16.2), one PCR per command. */
static const char *read_pcrs_tpm12(uint8_t out[NPCR][SHA256_SIZE])
{
    uint8_t cmd[14], rsp[32];
    static const uint8_t head[] = {0x00, 0xC1, 0, 0, 0, 14, 0, 0, 0, 0x15};
    for (unsigned i = 0; i < NPCR; i++) {
        memcpy(cmd, head, sizeof(head));
        put_be32(cmd + 10, i);
        uint32_t len;
        const char *why = tpm_command(cmd, 14, rsp, sizeof(rsp), &len, false);
        if (why)
            return why;
        if (len != 30)
            return "TPM_PCRRead: bad size";
        memcpy(out[i], rsp + 10, SHA1_SIZE);
    }
    return NULL;
}

const char *tpm_read_pcrs(bool tpm2, uint8_t out[TPM_NPCR][SHA256_SIZE])
{
    return tpm2 ? read_pcrs_tpm2(out) : read_pcrs_tpm12(out);
}

const char *tpm_log_replay(bool tpm2, uint8_t pcr[TPM_NPCR][SHA256_SIZE], unsigned *events, uint32_t *bytes)
{
    struct tcg_log log;
    struct replay rp;
    *events = *bytes = 0;
    const char *why = tpm_log_area(&log.base, &log.size);
    if (why)
        return why;
    memset(&rp, 0, sizeof(rp));
    rp.sha256 = tpm2;
    static const uint8_t ff[4] = {0xFF, 0xFF, 0xFF, 0xFF};
    sha1(ff, sizeof(ff), rp.sep_sha1);
    sha1(_start, 440, rp.mbr_sha1);
    log.agile = tpm2;
    why = tcg_log_walk(&log, replay_event, &rp, events);
    *bytes = log.used;
    if (why)
        return why;
    memcpy(pcr, rp.pcr, sizeof(rp.pcr));
    for (unsigned i = 0; i < NPCR; i++) {
        if (rp.separators[i] != 1) {
            info("tpm-log %u EV_SEPARATORs on PCR %u", rp.separators[i], i);
            return "not one EV_SEPARATOR per PCR 0-7";
        }
    }
    return rp.mbr_seen ? NULL : "no EV_IPL MBR event";
}

void check_tpm_eventlog(void)
{
    bool tpm2 = tpm_expect_20();
    uint8_t replayed[NPCR][SHA256_SIZE], tpm_pcr[NPCR][SHA256_SIZE];
    unsigned events;
    uint32_t bytes;
    const char *why = tpm_log_replay(tpm2, replayed, &events, &bytes);
    if (why) {
        fail("event log: %s", why);
        return;
    }
    why = tpm_read_pcrs(tpm2, tpm_pcr);
    if (why) {
        fail("reading PCRs: %s", why);
        return;
    }
    /* " pcrN=<first 8 hex digits>" for each PCR */
    char line[NPCR * 14 + 1], *o = line;
    for (unsigned i = 0; i < NPCR; i++) {
        if (memcmp(tpm_pcr[i], replayed[i], tpm2 ? SHA256_SIZE : SHA1_SIZE) != 0) {
            fail("PCR %u: TPM %x.. log replay %x.. (%u events)", i, be32(tpm_pcr[i]), be32(replayed[i]), events);
            return;
        }
        memcpy(o, " pcr0=", 6);
        o[4] = (char)('0' + i);
        o += 6;
        for (unsigned d = 0; d < 8; d++) {
            unsigned nib = (replayed[i][d / 2] >> (d & 1 ? 0 : 4)) & 15;
            *o++ = (char)(nib < 10 ? '0' + nib : 'A' + nib - 10);
        }
    }
    *o = 0;
    pass("events=%u bytes=%u bank=%s%s", events, bytes, tpm2 ? "sha256" : "sha1", line);
}
