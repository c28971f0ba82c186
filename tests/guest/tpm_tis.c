/* Polled TPM TIS driver (see tpm_tis.h). A failure returns a short reason after an "info" line
 * with the register values. Every wait is bounded by the RTC seconds register (MC146818 CMOS
 * 0x00) and an iteration cap, so a dead TPM cannot hang the program. */
#include "tpm_tis.h"

#include "config.h"
#include "phys.h"
#include "report.h"
#include "tpm_crb.h"

uint8_t tis_read8(unsigned loc, uint32_t reg) { return phys_read8(TIS_REG(loc, reg)); }
uint32_t tis_read32(unsigned loc, uint32_t reg) { return phys_read32(TIS_REG(loc, reg)); }
void tis_write8(unsigned loc, uint32_t reg, uint8_t v) { phys_write8(TIS_REG(loc, reg), v); }

static uint8_t rtc_seconds(void)
{
    outb(0x70, 0x80);                   /* register 0, NMI disabled */
    return inb(0x71);
}

bool mmio_wait(uint32_t addr, bool wide, uint32_t mask, uint32_t want, unsigned seconds, uint32_t *last)
{
    uint8_t sec = rtc_seconds();
    unsigned changes = 0;
    for (uint32_t spins = 0; spins < 5000000u; spins++) {
        *last = wide ? phys_read32(addr) : phys_read8(addr);
        if ((*last & mask) == want)
            return true;
        uint8_t s = rtc_seconds();
        if (s != sec) {
            sec = s;
            if (++changes > seconds)
                break;
        }
    }
    return false;
}

bool tis_wait(unsigned loc, uint32_t reg, uint8_t mask, uint8_t want, unsigned seconds, uint8_t *last)
{
    uint32_t v = 0;
    bool ok = mmio_wait(TIS_REG(loc, reg), false, mask, want, seconds, &v);
    *last = (uint8_t)v;
    return ok;
}

bool tis_request_locality(unsigned loc)
{
    uint8_t acc;
    tis_write8(loc, TIS_ACCESS, ACC_REQUEST_USE);   /* no-op if loc is already active */
    if (tis_wait(loc, TIS_ACCESS, ACC_ACTIVE | ACC_VALID | ACC_REQUEST_USE, ACC_ACTIVE | ACC_VALID, 1, &acc))
        return true;
    info("tis ACCESS(%u)=0x%x", loc, acc);
    return false;
}

void tis_relinquish_locality(unsigned loc) { tis_write8(loc, TIS_ACCESS, ACC_ACTIVE); }

/* STS low byte (selfTestDone, sticky after a self test, aside) must be `want` and burstCount
 * `burst` (any if burst < 0). */
static const char *sts_is(unsigned loc, uint32_t byte, uint8_t want, int32_t burst, const char *why)
{
    uint32_t sts = tis_read32(loc, TIS_STS);
    if ((sts & 0xFF & ~STS_SELFTEST_DONE) == want && (burst < 0 || STS_BURST(sts) == (uint32_t)burst))
        return NULL;
    info("tis byte %u: STS=0x%x, want 0x%x burst %d", byte, sts, want, burst);
    return why;
}

static const char *send_cmd(unsigned loc, const uint8_t *cmd, uint32_t len, bool strict)
{
    uint8_t sts;
    const char *why;
    if (!(tis_read8(loc, TIS_STS) & STS_COMMAND_READY)) {
        tis_write8(loc, TIS_STS, STS_COMMAND_READY);
        if (!tis_wait(loc, TIS_STS, STS_COMMAND_READY, STS_COMMAND_READY, 2, &sts))
            return "no commandReady";
    }
    for (uint32_t i = 0; i < len;) {
        uint32_t burst = STS_BURST(tis_read32(loc, TIS_STS));
        if (burst == 0)
            return "burstCount 0";
        for (uint32_t n = len - i < burst ? len - i : burst; n; n--, i++) {
            tis_write8(loc, TIS_DATA_FIFO, cmd[i]);
            /* Expect stays set until the last byte; burstCount counts down (QEMU qtest). */
            if (strict && (why = sts_is(loc, i, i + 1 < len ? STS_VALID | STS_EXPECT : STS_VALID,
                                        (int32_t)(--burst), "STS/burstCount wrong after a FIFO byte")))
                return why;
        }
        if (!tis_wait(loc, TIS_STS, STS_VALID, STS_VALID, 1, &sts) || !(sts & STS_EXPECT) != (i == len)) {
            info("tis %u/%u bytes sent: STS=0x%x", i, len, sts);
            return "Expect wrong while sending";
        }
    }
    tis_write8(loc, TIS_STS, STS_GO);
    return NULL;
}

static const char *recv_rsp(unsigned loc, uint8_t *rsp, uint32_t rsp_max, uint32_t *rsp_len, bool strict)
{
    uint8_t sts;
    const char *why;
    if (!tis_wait(loc, TIS_STS, STS_DATA_AVAIL | STS_VALID, STS_DATA_AVAIL | STS_VALID, 10, &sts))
        return "no dataAvail after tpmGo";
    uint32_t want = 10, got = 0;
    while (got < want) {
        uint32_t burst = STS_BURST(tis_read32(loc, TIS_STS));
        if (burst == 0)
            return "burstCount 0";
        for (uint32_t n = want - got < burst ? want - got : burst; n; n--, got++) {
            rsp[got] = tis_read8(loc, TIS_DATA_FIFO);
            /* After the header: burstCount = bytes left while dataAvail is set (QEMU). */
            bool last = got + 1 == want;
            if (strict && got >= 10 &&
                (why = sts_is(loc, got, last ? STS_VALID : STS_VALID | STS_DATA_AVAIL,
                              last ? -1 : (int32_t)(want - got - 1), "STS/burstCount wrong after a FIFO byte")))
                return why;
        }
        if (got == 10) {
            want = be32(rsp + 2);
            if (want < 10 || want > rsp_max) {
                info("tis paramSize %u", want);
                return "bad response size";
            }
        }
    }
    if (!tis_wait(loc, TIS_STS, STS_VALID, STS_VALID, 1, &sts) || (sts & STS_DATA_AVAIL)) {
        info("tis STS=0x%x at the end", sts);
        return "dataAvail left after the response";
    }
    *rsp_len = want;
    return NULL;
}

const char *tis_transmit(unsigned loc, const uint8_t *cmd, uint32_t len, uint8_t *rsp, uint32_t rsp_max,
                         uint32_t *rsp_len, bool strict)
{
    *rsp_len = 0;
    const char *why = send_cmd(loc, cmd, len, strict);
    if (!why)
        why = recv_rsp(loc, rsp, rsp_max, rsp_len, strict);
    tis_write8(loc, TIS_STS, STS_COMMAND_READY);    /* COMPLETION -> READY (or abort) */
    return why;
}

const char *tpm_command(const uint8_t *cmd, uint32_t len, uint8_t *rsp, uint32_t rsp_max, uint32_t *rsp_len,
                        bool strict)
{
    const char *why;
    if (config.tpm == TPM_20_CRB) {
        why = crb_transmit(cmd, len, rsp, rsp_max, rsp_len);
    } else {
        if (!tis_request_locality(0))
            return "locality 0 not granted";
        why = tis_transmit(0, cmd, len, rsp, rsp_max, rsp_len, strict);
        tis_relinquish_locality(0);
    }
    if (why)
        return why;
    uint16_t tag = be16(rsp);
    uint32_t rc = be32(rsp + 6);
    if ((be16(cmd) >= 0x8000 ? tag != 0x8001 && tag != 0x8002 : tag != 0x00C4) || rc) {
        info("tpm ordinal 0x%x: tag 0x%x rc 0x%x", be32(cmd + 6), tag, rc);
        return "TPM error response";
    }
    return NULL;
}
