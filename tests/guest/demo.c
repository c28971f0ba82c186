/* demo mode (mkimage.py --mode demo, scripts/demo): once SeaBIOS has measured the boot and jumped
 * to the MBR, a plain report of what a measured boot left behind: the TPM's family, manufacturer
 * and firmware version, PCRs 0-7 in full, the size of the firmware's event log and whether it
 * replays to the PCRs. The checks it relies on (config, rsdp, acpi-tables) run with report_quiet,
 * so only this report, any FAIL line and the final "MVG: DONE" (power_off) reach COM1. The check
 * "demo" fails if the TPM cannot be read or the log does not replay. */
#include "check_tpm.h"
#include "checks.h"
#include "config.h"
#include "report.h"
#include "serial.h"
#include "tpm_tis.h"

/* What the TPM says about itself. */
struct tpm_id {
    char family[5], maker[5], vendor[17];
    uint32_t fw1, fw2;
};

/* Appends the four ASCII characters packed big-endian in v (TPM 2.0 Part 2 §6.13
 * TPM_PT_MANUFACTURER and TPM_PT_VENDOR_STRING_x, TPM 1.2 tpmVendorID), NULs left out. */
static char *ascii4(char *o, uint32_t v)
{
    for (int shift = 24; shift >= 0; shift -= 8)
        if ((char)(v >> shift) >= 0x20)
            *o++ = (char)(v >> shift);
    *o = 0;
    return o;
}

/* TPM2_GetCapability(TPM_CAP_TPM_PROPERTIES, TPM_PT_FAMILY_INDICATOR, 13) (TPM 2.0 Part 3 §30.2):
 * the fixed properties 0x100 (family "2.0") .. 0x10C (TPM_PT_FIRMWARE_VERSION_2), Part 2 §6.13. */
enum { PT_FIXED = 0x100, PT_MANUFACTURER = 5, PT_VENDOR_STRING_1 = 6, PT_FIRMWARE_1 = 11, PT_COUNT = 13 };

static const char *identify_tpm2(struct tpm_id *id)
{
    static const uint8_t cmd[] = {0x80, 0x01, 0, 0, 0, 22, 0, 0, 0x01, 0x7A, 0, 0, 0, 6,
                                  0, 0, 0x01, 0x00, 0, 0, 0, PT_COUNT};
    uint8_t rsp[128];
    uint32_t len, prop[PT_COUNT];
    const char *why = tpm_command(cmd, sizeof(cmd), rsp, sizeof(rsp), &len, false);
    if (why)
        return why;
    /* moreData +10, capability +11, TPML_TAGGED_TPM_PROPERTY: count +15, {property, value} +19 */
    if (len < 19 || be32(rsp + 11) != 6)
        return "not TPM_CAP_TPM_PROPERTIES";
    memset(prop, 0, sizeof(prop));
    for (uint32_t i = 0, off = 19; i < be32(rsp + 15) && off + 8 <= len; i++, off += 8) {
        uint32_t p = be32(rsp + off) - PT_FIXED;
        if (p < PT_COUNT)
            prop[p] = be32(rsp + off + 4);
    }
    ascii4(id->family, prop[0]);
    ascii4(id->maker, prop[PT_MANUFACTURER]);
    for (unsigned i = 0, n = 0; i < 4; i++)
        n = (unsigned)(ascii4(id->vendor + n, prop[PT_VENDOR_STRING_1 + i]) - id->vendor);
    id->fw1 = prop[PT_FIRMWARE_1];
    id->fw2 = prop[PT_FIRMWARE_1 + 1];
    return NULL;
}

/* TPM_GetCapability(TPM_CAP_VERSION_VAL) (TPM 1.2 Part 3 §7.1, Part 2 §21.6 TPM_CAP_VERSION_INFO):
 * respSize +10, tag 0x0030 +14, version {major, minor, revMajor, revMinor} +16, specLevel +20,
 * errataRev +22, tpmVendorID +23 (what TPM_CAP_PROP_MANUFACTURER reports too). */
static const char *identify_tpm12(struct tpm_id *id)
{
    static const uint8_t cmd[] = {0x00, 0xC1, 0, 0, 0, 18, 0, 0, 0, 0x65, 0, 0, 0, 0x1A, 0, 0, 0, 0};
    uint8_t rsp[128];
    uint32_t len;
    const char *why = tpm_command(cmd, sizeof(cmd), rsp, sizeof(rsp), &len, false);
    if (why)
        return why;
    if (len < 27 || be16(rsp + 14) != 0x0030)
        return "not a TPM_CAP_VERSION_INFO";
    ascii4(id->family, 0x302E3000u | (uint32_t)(rsp[16] & 7) << 24 | (rsp[17] & 7) << 8); /* "M.m" */
    ascii4(id->maker, be32(rsp + 23));
    id->fw1 = rsp[18];
    id->fw2 = rsp[19];
    return NULL;
}

static void print_hex(const uint8_t *p, unsigned n)
{
    for (unsigned i = 0; i < n; i += 4)
        print("%08x", be32(p + i));
}

void check_demo(void)
{
    bool tpm2 = tpm_expect_20();
    unsigned n = tpm2 ? SHA256_SIZE : SHA1_SIZE, events;
    uint32_t bytes;
    uint8_t pcr[TPM_NPCR][SHA256_SIZE], replayed[TPM_NPCR][SHA256_SIZE];
    struct tpm_id id;
    memset(&id, 0, sizeof(id));
    const char *why = tpm2 ? identify_tpm2(&id) : identify_tpm12(&id);
    const char *log_why = tpm_log_replay(tpm2, replayed, &events, &bytes);
    const char *pcr_why = tpm_read_pcrs(tpm2, pcr);
    print("\nWhat SeaBIOS measured into the TPM before it ran this boot sector:\n\n");
    if (why)
        print("TPM %s: GetCapability failed: %s\n", tpm_expect_name(config.tpm), why);
    else
        print(tpm2 ? "TPM family:    %s\nmanufacturer:  %s (vendor string \"%s\")\nfirmware:      %08x.%08x\n"
                   : "TPM family:    %s\nmanufacturer:  %s%s\nfirmware:      %u.%u\n",
              id.family, id.maker, id.vendor, id.fw1, id.fw2);
    print("PCRs 0-7, %s bank:\n", tpm2 ? "SHA-256" : "SHA-1");
    for (unsigned i = 0; i < TPM_NPCR && !pcr_why; i++) {
        print("  PCR %u: ", i);
        print_hex(pcr[i], n);
        if (!log_why && memcmp(pcr[i], replayed[i], n) != 0) {
            print(" (replay: ");
            print_hex(replayed[i], 4);
            print("..)");
            log_why = "a PCR differs from the replay";
        }
        print("\n");
    }
    if (pcr_why)
        print("  unreadable: %s\n", pcr_why);
    print("event log:     %u entries, %u bytes\nevent log replays to PCRs 0-7: %s%s%s%s\n\n", events, bytes,
          log_why || pcr_why ? "no" : "yes", log_why ? " (" : "", log_why ? log_why : "", log_why ? ")" : "");
    why = why ? why : pcr_why ? pcr_why : log_why;
    if (why)
        fail("%s", why);
    else
        pass("tpm=%s events=%u replay=yes", tpm_expect_name(config.tpm), events);
}
