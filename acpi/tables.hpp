// ACPI fixed tables as packed little-endian structs (x86 only, so host order is the table
// order). Offsets in the comments are from the start of each structure; section numbers are
// ACPI 6.5 unless noted. The FADT is the revision-3 (ACPI 2.0) layout, 244 bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace minivmm::acpi {

// The 8-bit value that makes the byte sum of `data` zero when stored in a checksum field that
// currently holds 0 (§5.2.5.3, §5.2.6).
inline uint8_t checksum(std::span<const uint8_t> data) noexcept {
    uint8_t sum = 0;
    for (uint8_t b : data) sum = static_cast<uint8_t>(sum + b);
    return static_cast<uint8_t>(-sum);
}

#pragma pack(push, 1)

// §5.2.6 System Description Table Header.
struct TableHeader {
    char signature[4];         // 0
    uint32_t length;           // 4: whole table including this header
    uint8_t revision;          // 8
    uint8_t checksum;          // 9: whole table sums to zero
    char oem_id[6];            // 10
    char oem_table_id[8];      // 16
    uint32_t oem_revision;     // 24
    char creator_id[4];        // 28
    uint32_t creator_revision; // 32
};
static_assert(sizeof(TableHeader) == 36);

// §5.2.5.3 Root System Description Pointer, revision 2.
struct Rsdp {
    char signature[8];          // 0: "RSD PTR "
    uint8_t checksum;           // 8: bytes [0, 20) sum to zero
    char oem_id[6];             // 9
    uint8_t revision;           // 15: 2
    uint32_t rsdt_address;      // 16
    uint32_t length;            // 20: 36
    uint64_t xsdt_address;      // 24
    uint8_t extended_checksum;  // 32: bytes [0, 36) sum to zero
    uint8_t reserved[3];        // 33
};
static_assert(sizeof(Rsdp) == 36);
inline constexpr size_t kRsdpV1Size = 20;  // the part the first checksum covers

// §5.2.7 RSDT / §5.2.8 XSDT: a header followed by 32-bit / 64-bit table addresses.
inline constexpr size_t kRsdtEntrySize = 4;
inline constexpr size_t kXsdtEntrySize = 8;

// §5.2.3.2 Generic Address Structure.
struct Gas {
    uint8_t space_id;     // 0: 0 = SystemMemory, 1 = SystemIO
    uint8_t bit_width;    // 1
    uint8_t bit_offset;   // 2
    uint8_t access_size;  // 3: 0 undefined, 1 byte, 2 word, 3 dword, 4 qword
    uint64_t address;     // 4
};
static_assert(sizeof(Gas) == 12);
inline constexpr uint8_t kGasSystemIo = 1;
inline constexpr uint8_t kGasAccessByte = 1, kGasAccessWord = 2, kGasAccessDword = 3;

// §5.2.9 Fixed ACPI Description Table, revision 3 (ACPI 2.0/3.0 layout).
struct Fadt {
    TableHeader header;          // 0: "FACP", revision 3
    uint32_t firmware_ctrl;      // 36: FACS address
    uint32_t dsdt;               // 40: DSDT address (SeaBIOS reads only this one)
    uint8_t reserved0;           // 44: INT_MODEL in ACPI 1.0
    uint8_t preferred_pm_profile;// 45
    uint16_t sci_int;            // 46
    uint32_t smi_cmd;            // 48: 0 = ACPI is always enabled
    uint8_t acpi_enable;         // 52
    uint8_t acpi_disable;        // 53
    uint8_t s4bios_req;          // 54
    uint8_t pstate_cnt;          // 55
    uint32_t pm1a_evt_blk;       // 56
    uint32_t pm1b_evt_blk;       // 60
    uint32_t pm1a_cnt_blk;       // 64
    uint32_t pm1b_cnt_blk;       // 68
    uint32_t pm2_cnt_blk;        // 72
    uint32_t pm_tmr_blk;         // 76
    uint32_t gpe0_blk;           // 80
    uint32_t gpe1_blk;           // 84
    uint8_t pm1_evt_len;         // 88
    uint8_t pm1_cnt_len;         // 89
    uint8_t pm2_cnt_len;         // 90
    uint8_t pm_tmr_len;          // 91
    uint8_t gpe0_blk_len;        // 92
    uint8_t gpe1_blk_len;        // 93
    uint8_t gpe1_base;           // 94
    uint8_t cst_cnt;             // 95
    uint16_t p_lvl2_lat;         // 96
    uint16_t p_lvl3_lat;         // 98
    uint16_t flush_size;         // 100
    uint16_t flush_stride;       // 102
    uint8_t duty_offset;         // 104
    uint8_t duty_width;          // 105
    uint8_t day_alrm;            // 106
    uint8_t mon_alrm;            // 107
    uint8_t century;             // 108
    uint16_t iapc_boot_arch;     // 109
    uint8_t reserved1;           // 111
    uint32_t flags;              // 112
    Gas reset_reg;               // 116
    uint8_t reset_value;         // 128
    uint8_t reserved2[3];        // 129
    uint64_t x_firmware_ctrl;    // 132
    uint64_t x_dsdt;             // 140
    Gas x_pm1a_evt_blk;          // 148
    Gas x_pm1b_evt_blk;          // 160
    Gas x_pm1a_cnt_blk;          // 172
    Gas x_pm1b_cnt_blk;          // 184
    Gas x_pm2_cnt_blk;           // 196
    Gas x_pm_tmr_blk;            // 208
    Gas x_gpe0_blk;              // 220
    Gas x_gpe1_blk;              // 232
};
static_assert(sizeof(Fadt) == 244);
static_assert(offsetof(Fadt, firmware_ctrl) == 36 && offsetof(Fadt, dsdt) == 40);
static_assert(offsetof(Fadt, flags) == 112 && offsetof(Fadt, reset_reg) == 116);
static_assert(offsetof(Fadt, x_dsdt) == 140 && offsetof(Fadt, x_pm_tmr_blk) == 208);

// FADT fixed feature flags (§5.2.9 Table 5.10) and IA-PC boot architecture flags (Table 5.11).
inline constexpr uint32_t kFadtWbinvd = 1u << 0;
inline constexpr uint32_t kFadtProcC1 = 1u << 2;
inline constexpr uint32_t kFadtSlpButton = 1u << 5;
inline constexpr uint32_t kFadtRtcS4 = 1u << 7;
inline constexpr uint32_t kFadtTmrValExt = 1u << 8;
inline constexpr uint32_t kFadtResetRegSup = 1u << 10;
inline constexpr uint16_t kIapcLegacyDevices = 1u << 0;
inline constexpr uint16_t kIapc8042 = 1u << 1;
inline constexpr uint16_t kIapcVgaNotPresent = 1u << 2;

// §5.2.10 Firmware ACPI Control Structure (no checksum; must be 64-byte aligned).
struct Facs {
    char signature[4];                  // 0: "FACS"
    uint32_t length;                    // 4: 64
    uint32_t hardware_signature;        // 8
    uint32_t firmware_waking_vector;    // 12
    uint32_t global_lock;               // 16
    uint32_t flags;                     // 20
    uint64_t x_firmware_waking_vector;  // 24
    uint8_t version;                    // 32
    uint8_t reserved0[3];               // 33
    uint32_t ospm_flags;                // 36
    uint8_t reserved1[24];              // 40
};
static_assert(sizeof(Facs) == 64);

// §5.2.12 Multiple APIC Description Table and its interrupt controller structures.
struct Madt {
    TableHeader header;           // 0: "APIC"
    uint32_t local_apic_address;  // 36
    uint32_t flags;               // 40: bit 0 PCAT_COMPAT (dual 8259 present)
};
static_assert(sizeof(Madt) == 44);
inline constexpr uint32_t kMadtPcatCompat = 1;

struct MadtLocalApic {  // type 0, §5.2.12.2
    uint8_t type;          // 0
    uint8_t length;        // 1: 8
    uint8_t processor_uid; // 2
    uint8_t apic_id;       // 3
    uint32_t flags;        // 4: bit 0 enabled
};
static_assert(sizeof(MadtLocalApic) == 8);

struct MadtIoApic {  // type 1, §5.2.12.3
    uint8_t type;        // 0
    uint8_t length;      // 1: 12
    uint8_t io_apic_id;  // 2
    uint8_t reserved;    // 3
    uint32_t address;    // 4
    uint32_t gsi_base;   // 8
};
static_assert(sizeof(MadtIoApic) == 12);

struct MadtInterruptOverride {  // type 2, §5.2.12.5
    uint8_t type;    // 0
    uint8_t length;  // 1: 10
    uint8_t bus;     // 2: 0 = ISA
    uint8_t source;  // 3: ISA IRQ
    uint32_t gsi;    // 4
    uint16_t flags;  // 8: MPS INTI flags (Table 5.26): polarity bits 1:0, trigger bits 3:2
};
static_assert(sizeof(MadtInterruptOverride) == 10);

struct MadtLocalApicNmi {  // type 4, §5.2.12.7
    uint8_t type;           // 0
    uint8_t length;         // 1: 6
    uint8_t processor_uid;  // 2: 0xFF = all processors
    uint16_t flags;         // 3
    uint8_t lint;           // 5
};
static_assert(sizeof(MadtLocalApicNmi) == 6);

inline constexpr uint8_t kMadtTypeLocalApic = 0, kMadtTypeIoApic = 1, kMadtTypeOverride = 2,
                         kMadtTypeLocalApicNmi = 4;
inline constexpr uint16_t kMpsActiveHigh = 0x1, kMpsLevelTriggered = 0xC;

#pragma pack(pop)

}  // namespace minivmm::acpi
