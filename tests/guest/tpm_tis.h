/* Polled TPM TIS (FIFO) driver for the checks, modelled on Linux tpm_tis_core.c and on QEMU's
 * register semantics (hw/tpm/tpm_tis_common.c; TCG PC Client PTP "TIS 1.3" interface):
 * 5 localities of 4 KiB at 0xFED40000, byte-wise DATA_FIFO transfers, no interrupts. */
#ifndef MVG_TPM_TIS_H
#define MVG_TPM_TIS_H

#include "guest.h"

#define TIS_BASE 0xFED40000u
#define TIS_SIZE 0x5000u
#define TIS_REG(loc, reg) (TIS_BASE + ((uint32_t)(loc) << 12) + (reg))

/* Register offsets within a locality page. */
enum {
    TIS_ACCESS = 0x00,
    TIS_INT_ENABLE = 0x08,
    TIS_INT_VECTOR = 0x0C,
    TIS_INT_STATUS = 0x10,
    TIS_INTF_CAPS = 0x14,
    TIS_STS = 0x18,
    TIS_DATA_FIFO = 0x24,
    TIS_INTERFACE_ID = 0x30,
    TIS_XDATA_FIFO = 0x80,
    TIS_DID_VID = 0xF00,
    TIS_RID = 0xF04,
};

/* ACCESS bits */
#define ACC_VALID 0x80
#define ACC_ACTIVE 0x20
#define ACC_BEEN_SEIZED 0x10
#define ACC_SEIZE 0x08
#define ACC_PENDING 0x04
#define ACC_REQUEST_USE 0x02
#define ACC_ESTABLISHMENT 0x01

/* STS bits (burstCount in bits 8..23, TPM family in 27:26) */
#define STS_VALID 0x80
#define STS_COMMAND_READY 0x40
#define STS_GO 0x20
#define STS_DATA_AVAIL 0x10
#define STS_EXPECT 0x08
#define STS_SELFTEST_DONE 0x04
#define STS_RESPONSE_RETRY 0x02
#define STS_BURST(sts) (((sts) >> 8) & 0xFFFF)
#define STS_FAMILY(sts) (((sts) >> 26) & 3)

/* Big-endian fields of TPM commands and responses. */
static inline uint16_t be16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Polls the 8-bit (or with wide, 32-bit) register at addr until (value & mask) == want or about
 * `seconds` RTC seconds (MC146818 CMOS 0x00) pass; *last = last value read. The TIS and CRB
 * drivers' waits. */
bool mmio_wait(uint32_t addr, bool wide, uint32_t mask, uint32_t want, unsigned seconds, uint32_t *last);

uint8_t tis_read8(unsigned loc, uint32_t reg);
uint32_t tis_read32(unsigned loc, uint32_t reg);
void tis_write8(unsigned loc, uint32_t reg, uint8_t v);

/* Polls the 8-bit register reg (ACCESS, or the low byte of STS like Linux's tpm_tis_status)
 * until (value & mask) == want or about `seconds` RTC seconds pass; *last = last value read. */
bool tis_wait(unsigned loc, uint32_t reg, uint8_t mask, uint8_t want, unsigned seconds, uint8_t *last);

/* Request (ACCESS = requestUse, wait for activeLocality|tpmRegValidSts without requestUse, Linux
 * check_locality) and relinquish (ACCESS = activeLocality) a locality. */
bool tis_request_locality(unsigned loc);
void tis_relinquish_locality(unsigned loc);

/* One command round trip on an active locality, Linux tpm_tis_send_data/tpm_tis_recv: commandReady,
 * bytes written one at a time to DATA_FIFO in burstCount chunks (Expect set until the last byte,
 * cleared after it), tpmGo, wait for dataAvail|stsValid, read the 10-byte header then the rest
 * byte-wise, dataAvail clear at the end, commandReady. With strict, also checks after every
 * byte that STS is stsValid|expect (last: stsValid only) and burstCount dropped by exactly 1, and
 * the same per byte while reading (QEMU qtest tpm_tis_test_check_transmit). Returns NULL on
 * success with the response in rsp[0..*rsp_len), else the reason. */
const char *tis_transmit(unsigned loc, const uint8_t *cmd, uint32_t len, uint8_t *rsp, uint32_t rsp_max,
                         uint32_t *rsp_len, bool strict);

/* tis_transmit on locality 0 (requested and relinquished around it), or crb_transmit when the
 * image expects the CRB interface (mkimage.py --tpm 2.0-crb), then checks the response header:
 * tag (TPM 2.0 0x8001/0x8002, TPM 1.2 0x00C4) and return code 0. */
const char *tpm_command(const uint8_t *cmd, uint32_t len, uint8_t *rsp, uint32_t rsp_max, uint32_t *rsp_len,
                        bool strict);

#endif
