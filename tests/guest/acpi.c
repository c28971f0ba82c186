/* rsdp and acpi-tables checks, and the \_S5 lookup used for power-off. */
#include "acpi.h"

#include "phys.h"
#include "report.h"

struct acpi_state acpi;

static uint8_t buf[64] LOWBSS;

static uint8_t sum8(const uint8_t *p, unsigned n)
{
    uint8_t s = 0;
    while (n--)
        s = (uint8_t)(s + *p++);
    return s;
}

static void copy_printable(char *dst, const uint8_t *src, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        dst[i] = (src[i] >= 0x20 && src[i] < 0x7F) ? (char)src[i] : '?';
    dst[n] = '\0';
    while (n > 0 && dst[n - 1] == ' ')  /* OEM IDs are space-padded */
        dst[--n] = '\0';
}

/* RSDP candidates lie on 16-byte boundaries (ACPI 6.x §5.2.5.1). Returns the address of the
 * first one with a valid checksum; *bad gets the first candidate with a bad one. */
static uint32_t scan_rsdp(uint32_t base, uint32_t len, uint32_t *bad)
{
    uint8_t area[1024];                 /* on the stack: .bss is tight (guest.ld) */
    for (uint32_t off = 0; off < len; off += sizeof(area)) {
        uint32_t n = len - off < sizeof(area) ? len - off : sizeof(area);
        phys_read(area, base + off, n);
        for (uint32_t i = 0; i + 8 <= n; i += 16) {
            if (memcmp(area + i, "RSD PTR ", 8) != 0)
                continue;
            uint32_t addr = base + off + i;
            phys_read(buf, addr, 36);
            if (sum8(buf, 20) == 0)
                return addr;
            if (!*bad)
                *bad = addr;
        }
    }
    return 0;
}

void check_rsdp(void)
{
    uint32_t bad = 0, addr = 0;
    uint32_t ebda = (uint32_t)phys_read16(0x40E) << 4;   /* BDA 40:0E = EBDA segment */
    if (ebda >= 0x80000 && ebda < 0xA0000)
        addr = scan_rsdp(ebda, 1024, &bad);
    if (!addr)
        addr = scan_rsdp(0xE0000, 0x20000, &bad);
    if (!addr) {
        if (bad)
            fail("\"RSD PTR \" at 0x%x has a bad checksum", bad);
        else
            fail("no \"RSD PTR \" in EBDA 0x%x or 0xE0000-0xFFFFF", ebda);
        return;
    }
    phys_read(buf, addr, 36);
    acpi.revision = buf[15];
    copy_printable(acpi.oem, buf + 9, 6);
    acpi.rsdt = le32(buf + 16);
    if (acpi.revision >= 2) {
        uint32_t length = le32(buf + 20);
        if (length < 36) {
            fail("at 0x%x rev=%u length=%u < 36", addr, acpi.revision, length);
            return;
        }
        if (sum8(buf, 36) != 0) {
            fail("at 0x%x rev=%u extended checksum bad", addr, acpi.revision);
            return;
        }
        acpi.xsdt_lo = le32(buf + 24);
        acpi.xsdt_hi = le32(buf + 28);
    }
    acpi.rsdp = addr;
    if (acpi.xsdt_hi)
        pass("addr=0x%x rev=%u oem=%s rsdt=0x%x xsdt=0x%x%08x", addr, acpi.revision, acpi.oem, acpi.rsdt,
             acpi.xsdt_hi, acpi.xsdt_lo);
    else
        pass("addr=0x%x rev=%u oem=%s rsdt=0x%x xsdt=0x%x", addr, acpi.revision, acpi.oem, acpi.rsdt, acpi.xsdt_lo);
}

/* Reads and validates one table header; returns NULL if fine, else the reason. */
static const char *read_table(uint32_t addr, struct acpi_table_ref *t)
{
    phys_read(buf, addr, ACPI_HEADER_LEN);
    copy_printable(t->sig, buf, 4);
    t->addr = addr;
    t->len = le32(buf + 4);
    t->checksum_ok = false;
    if (t->len < ACPI_HEADER_LEN || t->len > ACPI_MAX_TABLE_LEN)
        return "bad length";
    t->checksum_ok = phys_sum8(addr, t->len) == 0;
    return t->checksum_ok ? NULL : "bad checksum";
}

const struct acpi_table_ref *acpi_find_table(const char *sig)
{
    for (unsigned i = 0; i < acpi.ntables; i++)
        if (memcmp(acpi.tables[i].sig, sig, 4) == 0)
            return &acpi.tables[i];
    return NULL;
}

/* FADT fields used here (ACPI 6.x §5.2.9 Table 5.9): FIRMWARE_CTRL +36, DSDT +40,
 * PM1a_CNT_BLK +64, X_DSDT +140. */
static bool check_fadt(const struct acpi_table_ref *fadt)
{
    static uint8_t f[148] LOWBSS;
    uint32_t n = fadt->len < sizeof(f) ? fadt->len : sizeof(f);
    memset(f, 0, sizeof(f));
    phys_read(f, fadt->addr, n);
    if (fadt->len < 68) {
        fail("FADT length %u too short for DSDT and PM1a_CNT_BLK", fadt->len);
        return false;
    }
    acpi.fadt = fadt->addr;
    acpi.fadt_len = fadt->len;
    acpi.facs = le32(f + 36);
    acpi.pm1a_cnt = le32(f + 64);
    uint32_t dsdt = le32(f + 40);
    if (dsdt == 0 && fadt->len >= 148) {
        if (le32(f + 144) != 0) {
            fail("X_DSDT above 4 GiB");
            return false;
        }
        dsdt = le32(f + 140);
    }
    if (dsdt == 0) {
        fail("FADT has no DSDT");
        return false;
    }
    struct acpi_table_ref t;
    const char *why = read_table(dsdt, &t);
    if (memcmp(t.sig, "DSDT", 4) != 0) {
        fail("FADT DSDT pointer 0x%x has signature %s", dsdt, t.sig);
        return false;
    }
    if (why) {
        fail("DSDT at 0x%x len=%u: %s", dsdt, t.len, why);
        return false;
    }
    acpi.dsdt = dsdt;
    acpi.dsdt_len = t.len;
    info("table DSDT addr=0x%x len=%u checksum=ok", dsdt, t.len);
    if (acpi.facs) {
        phys_read(buf, acpi.facs, 8);
        if (memcmp(buf, "FACS", 4) != 0 || le32(buf + 4) < 64) {
            fail("FADT FIRMWARE_CTRL 0x%x is not a FACS", acpi.facs);
            return false;
        }
    }
    return true;
}

void check_acpi_tables(void)
{
    acpi.ntables = 0;
    if (!acpi.rsdp) {
        fail("no RSDP");
        return;
    }
    bool use_xsdt = acpi.revision >= 2 && acpi.xsdt_lo != 0 && acpi.xsdt_hi == 0;
    uint32_t root = use_xsdt ? acpi.xsdt_lo : acpi.rsdt;
    const char *root_sig = use_xsdt ? "XSDT" : "RSDT";
    unsigned entry_size = use_xsdt ? 8 : 4;
    if (!root) {
        fail("RSDP has no RSDT address");
        return;
    }
    struct acpi_table_ref r;
    const char *why = read_table(root, &r);
    if (memcmp(r.sig, root_sig, 4) != 0) {
        fail("%s pointer 0x%x has signature %s", root_sig, root, r.sig);
        return;
    }
    if (why) {
        fail("%s at 0x%x len=%u: %s", root_sig, root, r.len, why);
        return;
    }
    unsigned entries = (r.len - ACPI_HEADER_LEN) / entry_size;
    if (entries > ACPI_MAX_TABLES) {
        fail("%s has %u entries, more than %u", root_sig, entries, ACPI_MAX_TABLES);
        return;
    }
    info("table %s addr=0x%x len=%u entries=%u checksum=ok", root_sig, root, r.len, entries);

    unsigned bad = 0;
    const char *first_bad = NULL;
    char first_bad_sig[5] = "";
    for (unsigned i = 0; i < entries; i++) {
        uint8_t e[8];
        phys_read(e, root + ACPI_HEADER_LEN + i * entry_size, entry_size);
        uint32_t addr = le32(e);
        if ((use_xsdt && le32(e + 4) != 0) || addr == 0) {
            fail("%s entry %u is 0 or above 4 GiB", root_sig, i);
            return;
        }
        struct acpi_table_ref *t = &acpi.tables[acpi.ntables++];
        why = read_table(addr, t);
        info("table %s addr=0x%x len=%u checksum=%s", t->sig, addr, t->len, why ? why : "ok");
        if (why && bad++ == 0) {
            first_bad = why;
            memcpy(first_bad_sig, t->sig, 5);
        }
    }
    if (bad) {
        fail("%u table(s) invalid, first %s: %s", bad, first_bad_sig, first_bad);
        return;
    }
    const struct acpi_table_ref *fadt = acpi_find_table("FACP");
    if (!fadt) {
        fail("no FADT (FACP) in %s", root_sig);
        return;
    }
    if (!check_fadt(fadt))
        return;
    if (!acpi_find_table("APIC")) {
        fail("no MADT (APIC) in %s", root_sig);
        return;
    }
    acpi.tables_ok = true;
    /* One PASS line listing every signature: "FACP,APIC,..." */
    static char sigs[ACPI_MAX_TABLES * 5] LOWBSS;
    unsigned n = 0;
    for (unsigned i = 0; i < acpi.ntables; i++) {
        memcpy(sigs + n, acpi.tables[i].sig, 4);
        n += 4;
        sigs[n++] = i + 1 < acpi.ntables ? ',' : '\0';
    }
    if (n == 0)
        sigs[0] = '\0';
    pass("root=%s@0x%x tables=%s dsdt=0x%x/%u facs=0x%x pm1a_cnt=0x%x", root_sig, root, sigs, acpi.dsdt,
         acpi.dsdt_len, acpi.facs, acpi.pm1a_cnt);
}

/* Name(_S5_, Package(){SLP_TYPa, ...}) in AML (ACPI 6.x §20.2.5): "_S5_", PackageOp 0x12,
 * PkgLength (lead byte bits 7:6 = number of following bytes), NumElements, then the first
 * element as ZeroOp 0x00, OneOp 0x01, BytePrefix 0x0A b, WordPrefix 0x0B w, DWordPrefix 0x0C d. */
bool acpi_s5_slp_typa(uint8_t *slp_typa, const char **why)
{
    if (!acpi.dsdt) {
        *why = "no valid DSDT";
        return false;
    }
    uint32_t from = ACPI_HEADER_LEN;
    for (;;) {
        int32_t off = phys_find(acpi.dsdt, acpi.dsdt_len, from, "_S5_", 4);
        if (off < 0) {
            *why = "no \\_S5 package in the DSDT";
            return false;
        }
        uint8_t a[12];
        memset(a, 0xFF, sizeof(a));
        uint32_t avail = acpi.dsdt_len - (uint32_t)off - 4;
        phys_read(a, acpi.dsdt + (uint32_t)off + 4, avail < sizeof(a) ? avail : sizeof(a));
        from = (uint32_t)off + 1;
        if (a[0] != 0x12)               /* a reference to _S5_, not its definition */
            continue;
        unsigned i = 1 + 1 + (a[1] >> 6); /* skip PkgLength */
        i++;                              /* NumElements */
        uint32_t v;
        switch (a[i]) {
        case 0x00:
            v = 0;
            break;
        case 0x01:
            v = 1;
            break;
        case 0x0A:
            v = a[i + 1];
            break;
        case 0x0B:
            v = le16(a + i + 1);
            break;
        case 0x0C:
            v = le32(a + i + 1);
            break;
        default:
            *why = "\\_S5 SLP_TYPa is not an integer constant";
            return false;
        }
        if (v > 7) {
            *why = "\\_S5 SLP_TYPa does not fit in 3 bits";
            return false;
        }
        *slp_typa = (uint8_t)v;
        return true;
    }
}
