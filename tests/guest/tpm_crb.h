/* Polled TPM CRB driver for the checks, modelled on Linux tpm_crb.c (crb_send/crb_recv/
 * crb_go_idle/crb_cmd_ready/crb_request_locality) and QEMU's tpm-crb (hw/tpm/tpm_crb.c; TCG PC
 * Client PTP "CRB Interface"): locality 0 registers at 0xFED40000, the control area at +0x40, the
 * command/response buffer wherever CMD_LADDR/RSP_ADDR say (QEMU: +0x80, 0xF80 bytes; minivmm: a
 * page of RAM at 0xFED41000). */
#ifndef MVG_TPM_CRB_H
#define MVG_TPM_CRB_H

#include "guest.h"

#define CRB_BASE 0xFED40000u
#define CRB_SIZE 0x1000u

enum {
    CRB_LOC_STATE = 0x00,
    CRB_LOC_CTRL = 0x08,
    CRB_LOC_STS = 0x0C,
    CRB_INTF_ID = 0x30,
    CRB_INTF_ID2 = 0x34,
    CRB_CTRL_REQ = 0x40,
    CRB_CTRL_STS = 0x44,
    CRB_CTRL_CANCEL = 0x48,
    CRB_CTRL_START = 0x4C,
    CRB_INT_ENABLE = 0x50,
    CRB_CMD_SIZE = 0x58,
    CRB_CMD_LADDR = 0x5C,
    CRB_CMD_HADDR = 0x60,
    CRB_RSP_SIZE = 0x64,
    CRB_RSP_ADDR = 0x68,
    CRB_RSP_ADDR_HIGH = 0x6C,
};

#define CRB_LOC_STATE_ASSIGNED 0x02
#define CRB_LOC_STATE_VALID 0x80
#define CRB_CTRL_STS_ERROR 0x01
#define CRB_CTRL_STS_IDLE 0x02

uint32_t crb_read32(uint32_t reg);
void crb_write32(uint32_t reg, uint32_t v);

/* Polls the 32-bit register reg until (value & mask) == want or about `seconds` RTC seconds
 * pass; *last = last value read. */
bool crb_wait(uint32_t reg, uint32_t mask, uint32_t want, unsigned seconds, uint32_t *last);

/* One command round trip on locality 0, Linux's order: (the first time only: the buffer's address
 * and size from CMD_LADDR/HADDR, CMD_SIZE, RSP_ADDR, RSP_SIZE, as Linux crb_map_io at probe time)
 * LOC_CTRL requestAccess (wait for locAssigned|tpmRegValidSts), CTRL_REQ cmdReady (wait for it
 * to clear), CTRL_CANCEL 0, the command into the buffer with 32-bit writes, CTRL_START 1, wait for
 * CTRL_START to clear, CTRL_STS without tpmSts, the 10-byte header then paramSize bytes read
 * with 32-bit reads, CTRL_REQ goIdle, LOC_CTRL relinquish. Returns NULL on success with the
 * response in rsp[0..*rsp_len), else the reason (after an "info" line with the registers). */
const char *crb_transmit(const uint8_t *cmd, uint32_t len, uint8_t *rsp, uint32_t rsp_max, uint32_t *rsp_len);

#endif
