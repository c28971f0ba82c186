/* tpm-acpi, tpm-tis-regs and tpm-cmd checks. They expect QEMU's TPM TIS device
 * (hw/tpm/tpm_tis_common.c, -device tpm-tis) and its ACPI tables (hw/acpi/aml-build.c build_tpm2,
 * hw/i386/acpi-build.c build_tpm_tcpa, hw/tpm/tpm_tis_isa.c), which minivmm copies. */
#include "check_tpm.h"

#include "acpi.h"
#include "checks.h"
#include "config.h"
#include "phys.h"
#include "report.h"
#include "tpm_crb.h"
#include "tpm_tis.h"

#define TPM_DID_VID 0x00011014u         /* QEMU: DID 1, VID IBM */
#define TPM_LAML 0x10000u               /* QEMU TPM_LOG_AREA_MINIMUM_SIZE */

bool tpm_checks_wanted(void) { return config.tpm != TPM_UNCHECKED; }
bool tpm_tis_checks_wanted(void) { return config.tpm != TPM_UNCHECKED && config.tpm != TPM_20_CRB; }
bool tpm_crb_checks_wanted(void) { return config.tpm == TPM_20_CRB; }
bool tpm_device_expected(void) { return config.tpm >= TPM_12; }

static uint8_t tbl[76] LOWBSS;               /* TPM2 76 bytes, TCPA 50 */

/* DSDT AML (ACPI 6.x §20.2.3, §6.4.3.4): Name(_HID, "MSFT0101") (StringPrefix 0x0D),
 * Name(_HID, EisaId("PNP0C31")) (DWordPrefix 0x0C, 0x310CD041), and
 * Memory32Fixed(ReadWrite, 0xFED40000, 0x5000) (0x86, length 9, RW, base, length). */
static const uint8_t hid20[] = {'_', 'H', 'I', 'D', 0x0D, 'M', 'S', 'F', 'T', '0', '1', '0', '1', 0};
static const uint8_t hid12[] = {'_', 'H', 'I', 'D', 0x0C, 0x41, 0xD0, 0x0C, 0x31};
static const uint8_t mem32_tis[] = {0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0xD4, 0xFE, 0x00, 0x50, 0x00, 0x00};
static const uint8_t mem32_crb[] = {0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0xD4, 0xFE, 0x00, 0x10, 0x00, 0x00};

static int32_t dsdt_find(uint32_t from, const uint8_t *pat, uint32_t len)
{
    return phys_find(acpi.dsdt, acpi.dsdt_len, from, pat, len);
}

const char *tpm_log_area(uint32_t *lasa, uint32_t *laml)
{
    bool tpm2 = tpm_expect_20();
    const struct acpi_table_ref *t = acpi_find_table(tpm2 ? "TPM2" : "TCPA");
    if (!t || t->len < (tpm2 ? 76u : 50u))
        return "no TPM2/TCPA table or too short";
    phys_read(tbl, t->addr, sizeof(tbl) - (tpm2 ? 0 : 26));
    *laml = le32(tbl + (tpm2 ? 64 : 38));
    *lasa = le32(tbl + (tpm2 ? 68 : 42));
    return *lasa ? NULL : "LASA is 0";
}

/* Table fields as QEMU builds them: {offset, bytes, value}. TPM2 (TCG ACPI spec §8.3): revision 4,
 * platform class client, control area 0 (u64), start method 6 (TIS/FIFO), LAML, LASA high half.
 * TCPA (§7.1.1): revision 2, client, LAML, LASA high half. Checksums: acpi-tables. */
struct table_field {
    uint8_t off, bytes;
    uint32_t want;
};
static const struct table_field tpm2_fields[] = {
    {8, 1, 4}, {36, 2, 0}, {40, 4, 0}, {44, 4, 0}, {48, 4, 6}, {64, 4, TPM_LAML}, {72, 4, 0},
};
/* QEMU's tpm-crb: control area 0xFED40040, start method 7 (command response buffer). */
static const struct table_field tpm2_crb_fields[] = {
    {8, 1, 4}, {36, 2, 0}, {40, 4, 0xFED40040}, {44, 4, 0}, {48, 4, 7}, {64, 4, TPM_LAML}, {72, 4, 0},
};
static const struct table_field tcpa_fields[] = {{8, 1, 2}, {36, 2, 0}, {38, 4, TPM_LAML}, {46, 4, 0}};

void check_tpm_acpi(void)
{
    if (!acpi.tables_ok) {
        fail("acpi-tables did not pass");
        return;
    }
    bool tpm2 = tpm_expect_20();
    bool has2 = acpi_find_table("TPM2"), has12 = acpi_find_table("TCPA");
    int32_t at20 = dsdt_find(ACPI_HEADER_LEN, hid20, sizeof(hid20));
    int32_t at12 = dsdt_find(ACPI_HEADER_LEN, hid12, sizeof(hid12));
    if (config.tpm == TPM_NONE) {
        if (has2 || has12 || at20 >= 0 || at12 >= 0)
            fail("TPM2=%u TCPA=%u, _HID MSFT0101 at %d PNP0C31 at %d", has2, has12, at20, at12);
        else
            pass("no TPM2/TCPA table, no TPM _HID in the DSDT");
        return;
    }
    const char *sig = tpm2 ? "TPM2" : "TCPA";
    int32_t at = tpm2 ? at20 : at12, mem = -1;
    uint32_t lasa = 0, laml = 0;
    const char *why = tpm_log_area(&lasa, &laml);
    if (!why && (tpm2 ? has12 || at12 >= 0 : has2 || at20 >= 0))
        why = "other TPM version's table or _HID present";
    const bool crb = config.tpm == TPM_20_CRB;
    const struct table_field *f = crb ? tpm2_crb_fields : tpm2 ? tpm2_fields : tcpa_fields;
    for (unsigned n = tpm2 ? ARRAY_SIZE(tpm2_fields) : ARRAY_SIZE(tcpa_fields); !why && n--; f++) {
        uint32_t v = le32(tbl + f->off) & (0xFFFFFFFFu >> (32 - 8 * f->bytes));
        if (v != f->want) {
            info("%s +%u = 0x%x, want 0x%x", sig, f->off, v, f->want);
            why = "table field differs from QEMU's";
        }
    }
    if (!why && at < 0)
        why = "no TPM _HID in the DSDT";
    if (!why && (mem = dsdt_find((uint32_t)at, crb ? mem32_crb : mem32_tis, sizeof(mem32_tis))) < 0)
        why = crb ? "no Memory32Fixed 0xFED40000/0x1000 after _HID" : "no Memory32Fixed 0xFED40000/0x5000 after _HID";
    if (why)
        fail("%s: %s", sig, why);
    else
        pass("%s lasa=0x%x laml=0x%x, DSDT _HID +0x%x Memory32Fixed +0x%x", sig, lasa, laml,
             at, mem);
}

/* ---- tpm-tis-regs ---- */

/* Locality arbitration as QEMU's ACCESS write algorithm and qtests (check_access_reg,
 * check_access_reg_release) have it: {locality, value to write (0 = read only), ACCESS expected
 * (tpmEstablishment masked)}. */
struct access_step {
    uint8_t loc, write, want;
};
static const struct access_step grab0[] = {
    {0, ACC_REQUEST_USE, ACC_VALID | ACC_ACTIVE},           /* granted at once: none active */
};
static const struct access_step handover[] = {
    {1, ACC_REQUEST_USE, ACC_VALID | ACC_REQUEST_USE},      /* pending while 0 is active */
    {0, 0, ACC_VALID | ACC_ACTIVE | ACC_PENDING},
    {0, ACC_ACTIVE, ACC_VALID},                             /* relinquish 0: 1 gets it */
    {1, 0, ACC_VALID | ACC_ACTIVE},
    {4, ACC_REQUEST_USE, ACC_VALID},                        /* locality 4 writes are ignored */
    {1, 0, ACC_VALID | ACC_ACTIVE},
    {1, ACC_ACTIVE, ACC_VALID},                             /* relinquish 1: none active */
};
static const struct access_step idle[] = {
    {0, 0, ACC_VALID}, {1, 0, ACC_VALID}, {2, 0, ACC_VALID}, {3, 0, ACC_VALID}, {4, 0, ACC_VALID},
};

static const char *access_steps(const struct access_step *s, unsigned n)
{
    for (; n--; s++) {
        if (s->write)
            tis_write8(s->loc, TIS_ACCESS, s->write);
        uint8_t got = tis_read8(s->loc, TIS_ACCESS) & (uint8_t)~ACC_ESTABLISHMENT;
        if (got != s->want) {
            info("tis wrote 0x%x: ACCESS(%u)&~1=0x%x want 0x%x", s->write, s->loc, got, s->want);
            return "ACCESS arbitration differs from QEMU";
        }
    }
    return NULL;
}

/* Identification registers of every locality (qtest check_localities): DID_VID, RID 1,
 * INTF_CAPABILITY 0x30000697 / 0x20000697, INTERFACE_ID 0x2100 (FIFO, 5 localities, TIS
 * selectable; SeaBIOS sets IntfSelLock bit 19) / all-ones for TPM 1.2. */
static const char *tis_ids(bool tpm2)
{
    for (unsigned loc = 0; loc < 5; loc++) {
        uint32_t did = tis_read32(loc, TIS_DID_VID), caps = tis_read32(loc, TIS_INTF_CAPS);
        uint32_t iid = tis_read32(loc, TIS_INTERFACE_ID);
        uint8_t rid = tis_read8(loc, TIS_RID);
        if (did != TPM_DID_VID || rid != 1 || caps != (tpm2 ? 0x30000697u : 0x20000697u) ||
            (tpm2 ? (iid & ~(1u << 19)) != 0x2100 : iid != 0xFFFFFFFF)) {
            info("tis loc %u: DID_VID %x RID %x INTF_CAPS %x IID %x", loc, did, rid, caps, iid);
            return "ID registers differ from QEMU";
        }
    }
    return NULL;
}

/* STS of the active locality 0 after commandReady (QEMU tpm_tis_mmio_read): commandReady,
 * burstCount = free buffer bytes (an 8-bit read of STS+1 clamps it to 0xFF, a 16-bit read does
 * not), family 1 for TPM 2.0; a non-active locality's STS reads all-ones. */
static const char *tis_sts(bool tpm2, uint32_t *sts)
{
    uint8_t low;
    tis_write8(0, TIS_STS, STS_COMMAND_READY);
    tis_wait(0, TIS_STS, STS_COMMAND_READY, STS_COMMAND_READY, 1, &low);
    *sts = tis_read32(0, TIS_STS);
    uint32_t burst = STS_BURST(*sts);
    uint8_t b1 = tis_read8(0, TIS_STS + 1);
    uint16_t w1 = phys_read16(TIS_REG(0, TIS_STS + 1));
    uint32_t other = tis_read32(1, TIS_STS);
    if ((*sts & 0xFF & ~STS_SELFTEST_DONE) != STS_COMMAND_READY || !burst || STS_FAMILY(*sts) != tpm2 ||
        b1 != (burst > 0xFF ? 0xFF : burst) || w1 != burst || other != 0xFFFFFFFF) {
        info("tis STS=0x%x STS+1 8/16-bit 0x%x/0x%x STS(1)=0x%x", *sts, b1, w1, other);
        return "STS after commandReady differs from QEMU";
    }
    return NULL;
}

void check_tpm_tis_regs(void)
{
    uint8_t acc0 = tis_read8(0, TIS_ACCESS);
    uint32_t did = tis_read32(0, TIS_DID_VID), sts = tis_read32(0, TIS_STS), iid = tis_read32(0, TIS_INTERFACE_ID);
    if (config.tpm == TPM_NONE) {
        /* Unmapped: minivmm's buses read all-ones, QEMU's unassigned memory all-zero. Either way
         * DID_VID is 0 or all-ones, which SeaBIOS's tis_probe and Linux take as "no TPM". */
        if ((did != 0 && did != 0xFFFFFFFF) || acc0 != (uint8_t)did || sts != did || iid != did)
            fail("ACCESS=0x%x DID_VID=0x%x STS=0x%x IID=0x%x, want all 0 or all-ones", acc0, did, sts, iid);
        else
            pass("no TPM: 0x%x reads all-%s", TIS_BASE, did ? "ones" : "zero");
        return;
    }
    bool tpm2 = tpm_expect_20();
    const char *why = NULL;
    if (!tis_wait(0, TIS_ACCESS, ACC_VALID, ACC_VALID, 1, &acc0))
        why = "ACCESS.tpmRegValidSts not set";
    if (!why)
        why = tis_ids(tpm2);
    /* SeaBIOS may leave locality 0 active: release 0-3, then every locality reads tpmRegValidSts. */
    for (unsigned loc = 0; loc < 4; loc++)
        tis_relinquish_locality(loc);
    if (!why)
        why = access_steps(idle, ARRAY_SIZE(idle));
    if (!why)
        why = access_steps(grab0, ARRAY_SIZE(grab0));
    if (!why)
        why = tis_sts(tpm2, &sts);
    if (!why)
        why = access_steps(handover, ARRAY_SIZE(handover));
    if (!why)
        why = access_steps(idle, ARRAY_SIZE(idle));
    tis_relinquish_locality(0);
    tis_relinquish_locality(1);
    if (why)
        fail("%s", why);
    else
        pass("access=0x%x iid=0x%x sts=0x%x, localities 0/1/4 ok", acc0,
             tis_read32(0, TIS_INTERFACE_ID), sts);
}

/* ---- tpm-crb-regs ---- */

/* The CRB registers as QEMU's tpm-crb shows them: tpmRegValidSts, INTF_ID (CRB active, version
 * 1, 64-byte transfers, CapCRB, selector CRB), vendor 0x1014, one buffer for commands and
 * responses (QEMU: 0xF80 bytes at +0x80; minivmm: RAM at 0xFED41000). SeaBIOS leaves locality 0 assigned and the TPM ready (crb_ready after
 * each command), so the check first relinquishes (CTRL_STS as SeaBIOS left it: not compared) and
 * goes idle; then each step of a request/cmdReady/goIdle/relinquish cycle must show exactly its
 * bits in LOC_STATE, LOC_STS and CTRL_STS (a cmdReady|goIdle write is ignored). */
static const struct crb_step {
    uint8_t reg, write, state, sts;
} crb_cycle[] = {
    {CRB_LOC_CTRL, 2, 0x80, 0xFF}, {CRB_CTRL_REQ, 2, 0x80, 2}, {CRB_LOC_CTRL, 1, 0x82, 2},
    {CRB_CTRL_REQ, 1, 0x82, 0}, {CRB_CTRL_REQ, 3, 0x82, 0}, {CRB_CTRL_REQ, 2, 0x82, 2},
    {CRB_LOC_CTRL, 2, 0x80, 2},
};

void check_tpm_crb_regs(void)
{
    uint32_t id = crb_read32(CRB_INTF_ID);
    const char *why = NULL;
    const uint32_t buf = crb_read32(CRB_CMD_LADDR), size = crb_read32(CRB_CMD_SIZE);
    /* QEMU's buffer is 0xF80 bytes at +0x80; minivmm's a page of RAM of the TPM's buffer size at
     * 0xFED41000 (vmm/tpm/README.md "The CRB interface"): the guest writes it, the TPM answers into it. */
    const bool qemu_buf = buf == CRB_BASE + 0x80 && size == 0xF80;
    const bool ram_buf = buf == CRB_BASE + 0x1000 && size >= 0xF80 && size <= 0x2000;
    if ((id & 0xFFFFF) != 0x25811 || crb_read32(CRB_INTF_ID2) != 0x1014 || !(qemu_buf || ram_buf) ||
        crb_read32(CRB_CMD_HADDR) || crb_read32(CRB_RSP_SIZE) != size || crb_read32(CRB_RSP_ADDR) != buf ||
        crb_read32(CRB_RSP_ADDR_HIGH) || crb_read32(CRB_CTRL_START) || crb_read32(CRB_INT_ENABLE))
        why = "ID, buffer or control registers differ from QEMU's (or minivmm's RAM buffer)";
    if (!why && ram_buf) {
        phys_write32(buf + size - 4, 0x5A5AA5A5u);
        if (phys_read32(buf + size - 4) != 0x5A5AA5A5u)
            why = "the buffer at CMD_LADDR does not keep what was written";
    }
    for (unsigned i = 0; !why && i < ARRAY_SIZE(crb_cycle); i++) {
        const struct crb_step *c = &crb_cycle[i];
        crb_write32(c->reg, c->write);
        uint32_t st = crb_read32(CRB_LOC_STATE) & ~1u, ls = crb_read32(CRB_LOC_STS), cs = crb_read32(CRB_CTRL_STS);
        if (st != c->state || ls != (c->state >> 1 & 1) || (c->sts != 0xFF && cs != c->sts) || crb_read32(CRB_CTRL_REQ)) {
            info("crb step %u: LOC_STATE 0x%x LOC_STS 0x%x CTRL_STS 0x%x", i, st, ls, cs);
            why = "locality or idle cycle differs from QEMU's";
        }
    }
    if (why)
        fail("%s (INTF_ID 0x%x)", why, id);
    else
        pass("intf_id=0x%x, buffer 0x%x+0x%x, locality and idle cycle ok", id, buf, size);
}

/* ---- tpm-cmd ---- */

/* TPM2_GetRandom (TPM 2.0 Part 3 §16.1) / TPM_GetRandom (TPM 1.2 Part 3 §13.6) of 8 bytes. */
const char *tpm_get_random(bool tpm2, bool strict, uint8_t out[8])
{
    static const uint8_t cmd20[] = {0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7B, 0, 8};
    static const uint8_t cmd12[] = {0x00, 0xC1, 0, 0, 0, 14, 0, 0, 0, 0x46, 0, 0, 0, 8};
    static uint8_t rsp[32];
    uint32_t len = 0;
    const char *why = tpm2 ? tpm_command(cmd20, sizeof(cmd20), rsp, sizeof(rsp), &len, strict)
                           : tpm_command(cmd12, sizeof(cmd12), rsp, sizeof(rsp), &len, strict);
    if (why)
        return why;
    if (len != (tpm2 ? 20u : 22u) || (tpm2 ? be16(rsp + 10) : be32(rsp + 10)) != 8)
        return "response is not 8 random bytes";
    memcpy(out, rsp + len - 8, 8);
    return NULL;
}

void check_tpm_cmd(void)
{
    bool tpm2 = tpm_expect_20();
    uint8_t r1[8], r2[8];
    /* strict: per-byte STS and burstCount checks */
    const char *why = tpm_get_random(tpm2, true, r1);
    if (!why)
        why = tpm_get_random(tpm2, true, r2);
    if (!why && memcmp(r1, r2, 8) == 0)
        why = "two calls returned the same bytes";
    if (why)
        fail("GetRandom: %s", why);
    else
        pass("%s(8) x2, %s: %08x%08x", tpm2 ? "TPM2_GetRandom" : "TPM_GetRandom",
             config.tpm == TPM_20_CRB ? "CRB buffer" : "byte-wise FIFO", be32(r1), be32(r1 + 4));
}
