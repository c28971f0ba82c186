/* Polled TPM CRB driver (see tpm_crb.h). Every wait is bounded by the RTC seconds register and
 * an iteration cap, so a dead TPM cannot hang the program. */
#include "tpm_crb.h"

#include "phys.h"
#include "report.h"
#include "tpm_tis.h"

uint32_t crb_read32(uint32_t reg) { return phys_read32(CRB_BASE + reg); }
void crb_write32(uint32_t reg, uint32_t v) { phys_write32(CRB_BASE + reg, v); }

bool crb_wait(uint32_t reg, uint32_t mask, uint32_t want, unsigned seconds, uint32_t *last)
{
    return mmio_wait(CRB_BASE + reg, true, mask, want, seconds, last);
}

/* The buffer, as Linux's crb_map_io finds it once at probe time: CMD_LADDR/HADDR and CMD_SIZE,
 * with RSP_ADDR/RSP_SIZE the same buffer (QEMU: +0x80 of the register page; minivmm: its own
 * page of RAM). 0 until the first command. */
static uint32_t crb_buf, crb_buf_size;

static const char *find_buffer(void)
{
    uint32_t buf = crb_read32(CRB_CMD_LADDR), size = crb_read32(CRB_CMD_SIZE);
    if (crb_read32(CRB_CMD_HADDR) || crb_read32(CRB_RSP_ADDR_HIGH))
        return "buffer above 4 GiB";
    if (crb_read32(CRB_RSP_ADDR) != buf || crb_read32(CRB_RSP_SIZE) != size)
        return "separate command and response buffers";
    if (size < 64 || (buf >= CRB_BASE && buf < CRB_BASE + 0x80))
        return "buffer too small or over the registers";
    crb_buf = buf;
    crb_buf_size = size;
    return NULL;
}

static const char *exchange(const uint8_t *cmd, uint32_t len, uint8_t *rsp, uint32_t rsp_max, uint32_t *rsp_len)
{
    uint32_t v;
    if (!crb_wait(CRB_LOC_STATE, 0x82, 0x82, 1, &v))
        return "locality 0 not assigned";
    crb_write32(CRB_CTRL_REQ, 1);                          /* cmdReady */
    if (!crb_wait(CRB_CTRL_REQ, 1, 0, 1, &v))
        return "cmdReady not taken";
    if (len > crb_buf_size)
        return "command larger than the buffer";
    crb_write32(CRB_CTRL_CANCEL, 0);
    for (uint32_t i = 0; i < len; i += 4)
        phys_write32(crb_buf + i, le32(cmd + i));
    crb_write32(CRB_CTRL_START, 1);
    if (!crb_wait(CRB_CTRL_START, 1, 0, 30, &v))
        return "CTRL_START never cleared";
    if (crb_read32(CRB_CTRL_STS) & CRB_CTRL_STS_ERROR)
        return "CTRL_STS tpmSts (fatal error)";
    for (uint32_t i = 0; i < 12; i += 4)
        put_le32(rsp + i, phys_read32(crb_buf + i));
    uint32_t n = be32(rsp + 2);
    if (n < 10 || n + 3 > rsp_max || n > crb_buf_size)
        return "response paramSize out of range";
    for (uint32_t i = 12; i < n; i += 4)
        put_le32(rsp + i, phys_read32(crb_buf + i));
    *rsp_len = n;
    return NULL;
}

const char *crb_transmit(const uint8_t *cmd, uint32_t len, uint8_t *rsp, uint32_t rsp_max, uint32_t *rsp_len)
{
    static uint8_t padded[64] LOWBSS;
    if (len > sizeof(padded))
        return "command too long for the CRB test driver";
    memset(padded, 0, sizeof(padded));
    memcpy(padded, cmd, len);
    const char *why = crb_buf ? NULL : find_buffer();
    if (why)
        return why;
    crb_write32(CRB_LOC_CTRL, 1);                          /* requestAccess */
    why = exchange(padded, (len + 3) & ~3u, rsp, rsp_max, rsp_len);
    if (why)
        info("crb LOC_STATE=0x%x CTRL_STS=0x%x CTRL_START=0x%x", crb_read32(CRB_LOC_STATE),
             crb_read32(CRB_CTRL_STS), crb_read32(CRB_CTRL_START));
    crb_write32(CRB_CTRL_REQ, 2);                          /* goIdle */
    crb_write32(CRB_LOC_CTRL, 2);                          /* relinquish */
    return why;
}
