// FACS, FADT, MADT, RSDT/XSDT and RSDP for minivmm's legacy-PC platform (not hardware-reduced):
// the values follow QEMU's (hw/i386/acpi-build.c build_fadt_rev1/build_fadt, hw/i386/acpi-common.c
// acpi_build_madt) with minivmm's port layout.
#include <cstring>

#include "acpi/table_builders.hpp"

namespace minivmm::acpi {

namespace {

template <typename T>
void put(Bytes& out, size_t offset, const T& value) {
    std::memcpy(out.data() + offset, &value, sizeof value);
}

template <size_t N>
void set_chars(char (&dst)[N], std::string_view src) {
    std::memset(dst, ' ', N);
    std::memcpy(dst, src.data(), src.size() < N ? src.size() : N);
}

Gas system_io(uint16_t port, uint8_t length, uint8_t access_size) {
    return Gas{kGasSystemIo, static_cast<uint8_t>(length * 8), 0, access_size, port};
}

}  // namespace

TableHeader make_header(std::string_view signature, uint8_t revision, uint32_t length) {
    TableHeader h{};
    std::memcpy(h.signature, signature.data(), 4);
    h.length = length;
    h.revision = revision;
    set_chars(h.oem_id, "MINVMM");
    set_chars(h.oem_table_id, "MINIVMM");
    h.oem_revision = 1;
    set_chars(h.creator_id, "MVMM");
    h.creator_revision = 1;
    return h;
}

Bytes build_facs() {
    // §5.2.10: QEMU leaves everything but signature and length zero (hw/acpi/aml-build.c build_facs).
    Facs facs{};
    std::memcpy(facs.signature, "FACS", 4);
    facs.length = sizeof(Facs);
    Bytes out(sizeof facs);
    put(out, 0, facs);
    return out;
}

Bytes build_fadt(uint32_t facs_offset, uint32_t dsdt_offset) {
    using namespace platform;
    Fadt f{};
    f.header = make_header("FACP", 3, sizeof(Fadt));
    f.firmware_ctrl = facs_offset;
    f.dsdt = dsdt_offset;        // SeaBIOS's DSDT parser reads this one, not X_DSDT (src/fw/dsdt_parser.c acpi_dsdt_parse)
    f.x_dsdt = dsdt_offset;
    f.preferred_pm_profile = 0;  // unspecified
    f.sci_int = kSciIrq;
    f.smi_cmd = 0;  // no SMI command port: the OS treats ACPI mode as already enabled
    f.pm1a_evt_blk = kAcpiPm1aEvt;
    f.pm1a_cnt_blk = kAcpiPm1aCnt;
    f.pm_tmr_blk = kAcpiPmTimer;
    f.pm1_evt_len = 4;
    f.pm1_cnt_len = 2;
    f.pm_tmr_len = 4;
    // 24-bit PM timer: TMR_VAL_EXT stays clear. No C2/C3: latencies above 100/1000 us mean
    // "not supported"; 0xFFF as QEMU.
    f.p_lvl2_lat = 0xFFF;
    f.p_lvl3_lat = 0xFFF;
    f.flags = kFadtWbinvd | kFadtProcC1 | kFadtSlpButton | kFadtRtcS4 | kFadtResetRegSup;
    // No 8042 (Linux then skips the i8042 probe), no VGA, no other legacy ISA devices to probe.
    f.iapc_boot_arch = kIapcVgaNotPresent;
    // §4.8.3.6 reset register: an 8-bit write of kResetValue to the reset control port.
    f.reset_reg = system_io(kResetControlPort, 1, kGasAccessByte);
    f.reset_value = kResetValue;
    f.x_pm1a_evt_blk = system_io(kAcpiPm1aEvt, 4, kGasAccessWord);  // status + enable, 16 bits each
    f.x_pm1a_cnt_blk = system_io(kAcpiPm1aCnt, 2, kGasAccessWord);
    f.x_pm_tmr_blk = system_io(kAcpiPmTimer, 4, kGasAccessDword);
    Bytes out(sizeof f);
    put(out, 0, f);
    return out;
}

Bytes build_madt(unsigned cpus) {
    // §5.2.12, laid out as QEMU's acpi_build_madt (hw/i386/acpi-common.c).
    Bytes out(sizeof(Madt));
    auto add = [&out](const auto& entry) {
        const size_t at = out.size();
        out.resize(at + sizeof entry);
        put(out, at, entry);
    };
    for (unsigned i = 0; i < cpus; ++i) {
        add(MadtLocalApic{kMadtTypeLocalApic, sizeof(MadtLocalApic), static_cast<uint8_t>(i), static_cast<uint8_t>(i), 1});
    }
    add(MadtIoApic{kMadtTypeIoApic, sizeof(MadtIoApic), 0, 0, static_cast<uint32_t>(platform::kIoApicBase), 0});
    // The PIT's IRQ0 is wired to IOAPIC pin 2; the SCI is level-triggered, active high.
    add(MadtInterruptOverride{kMadtTypeOverride, sizeof(MadtInterruptOverride), 0, 0, 2, 0});
    add(MadtInterruptOverride{kMadtTypeOverride, sizeof(MadtInterruptOverride), 0, platform::kSciIrq,
                              platform::kSciIrq, kMpsLevelTriggered | kMpsActiveHigh});
    add(MadtLocalApicNmi{kMadtTypeLocalApicNmi, sizeof(MadtLocalApicNmi), 0xFF, 0, 1});

    Madt madt{};
    madt.header = make_header("APIC", 1, static_cast<uint32_t>(out.size()));
    madt.local_apic_address = static_cast<uint32_t>(platform::kLocalApicBase);
    madt.flags = kMadtPcatCompat;
    put(out, 0, madt);
    return out;
}

Bytes build_sdt(std::string_view signature, size_t entry_size, const std::vector<uint32_t>& offsets) {
    // §5.2.7 RSDT, §5.2.8 XSDT: revision 1, header + one address per table.
    Bytes out(sizeof(TableHeader) + entry_size * offsets.size(), 0);
    const TableHeader header = make_header(signature, 1, static_cast<uint32_t>(out.size()));
    put(out, 0, header);
    for (size_t i = 0; i < offsets.size(); ++i) {
        const size_t at = sizeof(TableHeader) + i * entry_size;
        if (entry_size == kXsdtEntrySize) put(out, at, uint64_t{offsets[i]});
        else put(out, at, offsets[i]);
    }
    return out;
}

Bytes build_rsdp(uint32_t rsdt_offset, uint32_t xsdt_offset) {
    Rsdp r{};
    std::memcpy(r.signature, "RSD PTR ", 8);
    set_chars(r.oem_id, "MINVMM");
    r.revision = 2;
    r.rsdt_address = rsdt_offset;
    r.length = sizeof(Rsdp);
    r.xsdt_address = xsdt_offset;
    Bytes out(sizeof r);
    put(out, 0, r);
    return out;
}

}  // namespace minivmm::acpi
