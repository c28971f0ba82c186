#include "acpi/tpm_tables.hpp"

#include <cstddef>
#include <cstring>

#include "acpi/aml.hpp"
#include "acpi/table_builders.hpp"
#include "acpi/tpm_ppi_aml.hpp"
#include "devices/tpm_crb_regs.hpp"
#include "vmm/base/platform.hpp"

namespace minivmm {

namespace {

#pragma pack(push, 1)
// TCG ACPI Specification, "TPM2 ACPI table", revision 4 with the log area fields.
struct Tpm2Table {
    acpi::TableHeader header;      // 0: "TPM2", revision 4
    uint16_t platform_class;       // 36: 0 = client
    uint16_t reserved;             // 38
    uint64_t control_area;         // 40: 0 for the TIS/FIFO interface, the CRB control area
    uint32_t start_method;         // 48: 6 = TIS/FIFO (memory mapped), 7 = command response buffer
    uint8_t start_parameters[12];  // 52
    uint32_t log_area_min_length;  // 64: LAML
    uint64_t log_area_start;       // 68: LASA, patched by the table-loader
};
static_assert(sizeof(Tpm2Table) == 76);

// TCG ACPI Specification, "TCPA table" for clients, revision 2.
struct TcpaTable {
    acpi::TableHeader header;      // 0: "TCPA", revision 2
    uint16_t platform_class;       // 36: 0 = client
    uint32_t log_area_min_length;  // 38: LAML
    uint64_t log_area_start;       // 42: LASA, patched by the table-loader
};
static_assert(sizeof(TcpaTable) == 50);
#pragma pack(pop)

constexpr uint32_t kStartMethodTis = 6;
constexpr uint32_t kStartMethodCrb = 7;

template <typename T>
std::vector<uint8_t> bytes_of(const T& t) {
    std::vector<uint8_t> out(sizeof(T));
    std::memcpy(out.data(), &t, sizeof(T));
    return out;
}

}  // namespace

std::vector<uint8_t> build_tpm2_table(TpmInterface interface) {
    Tpm2Table t{};
    t.header = acpi::make_header("TPM2", 4, sizeof(Tpm2Table));
    if (interface == TpmInterface::crb) {
        t.start_method = kStartMethodCrb;
        t.control_area = platform::kTpmTisBase + crb::kControlArea;
    } else {
        t.start_method = kStartMethodTis;
    }
    t.log_area_min_length = kTpmLogSize;
    return bytes_of(t);
}

std::vector<uint8_t> build_tcpa_table() {
    TcpaTable t{};
    t.header = acpi::make_header("TCPA", 2, sizeof(TcpaTable));
    t.log_area_min_length = kTpmLogSize;
    return bytes_of(t);
}

std::vector<uint8_t> build_tpm_dsdt_device(TpmVersion version, TpmInterface interface, std::optional<uint8_t> irq,
                                           bool ppi) {
    // Linux binds tpm_tis to MSFT0101 (TPM 2.0, with a TPM2 table of start method 6) or to the
    // PNP id PNP0C31 (TPM 1.2), tpm_crb to MSFT0101 with start method 7. QEMU's _STR is left
    // out: iasl insists it be a Unicode buffer.
    const auto hid = version == TpmVersion::v2_0 ? aml::string("MSFT0101") : aml::eisa_id("PNP0C31");
    const uint32_t size = interface == TpmInterface::crb ? crb::kPageSize : static_cast<uint32_t>(platform::kTpmTisSize);
    std::vector<aml::Bytes> resources{
        aml::memory32_fixed(aml::Access::read_write, static_cast<uint32_t>(platform::kTpmTisBase), size)};
    // The CRB's command/response buffer (guest RAM outside the register page): Linux tpm_crb.c
    // crb_check_resource collects every memory resource of _CRS and crb_map_io maps the buffer
    // CTRL_CMD_PA/CTRL_RSP_PA name from the one that holds it.
    if (interface == TpmInterface::crb)
        resources.push_back(aml::memory32_fixed(aml::Access::read_write, static_cast<uint32_t>(platform::kTpmCrbBufferBase),
                                                static_cast<uint32_t>(platform::kTpmCrbBufferSize)));
    // The TIS interrupt is level-triggered (TCG PC Client PTP, TPM_INTF_CAPABILITY). The line is
    // driven with KVM_IRQ_LINE level 1 = asserted (KVM's IOAPIC takes 1 as asserted whatever the
    // pin's polarity: virt/kvm/ioapic.c ioapic_set_irq), and ACPI says ActiveHigh, as QEMU says for
    // all its level-triggered lines; the TPM's own "low level" is the LPC wire's.
    // The extended descriptor: Linux would take an IRQ () below 16 as an ISA edge interrupt.
    if (irq)
        resources.push_back(aml::interrupt(aml::Trigger::level, aml::Polarity::active_high, aml::Sharing::exclusive, {*irq}));
    const auto crs = aml::resource_template(resources);
    std::vector<aml::Bytes> terms{aml::name("_HID", hid), aml::name("_UID", aml::integer(1)),
                                  aml::name("_STA", aml::integer(0x0F)), aml::name("_CRS", crs)};
    if (ppi)
        for (aml::Bytes& t : build_tpm_ppi_aml(platform::kTpmPpiBase)) terms.push_back(std::move(t));
    return aml::device("TPM", terms);
}

void add_tpm_acpi(AcpiConfig& config, TpmVersion version, TpmInterface interface, std::optional<uint8_t> irq,
                  bool ppi) {
    AcpiConfig::ExtraTable table;
    if (version == TpmVersion::v2_0) {
        table.bytes = build_tpm2_table(interface);
        table.patches.push_back({static_cast<uint32_t>(offsetof(Tpm2Table, log_area_start)), 8, kTpmLogFile});
    } else {
        table.bytes = build_tcpa_table();
        table.patches.push_back({static_cast<uint32_t>(offsetof(TcpaTable, log_area_start)), 8, kTpmLogFile});
    }
    config.extra_tables.push_back(std::move(table));
    config.extra_dsdt_devices.push_back(build_tpm_dsdt_device(version, interface, irq, ppi));
    config.extra_allocations.push_back({kTpmLogFile, 1});
}

}  // namespace minivmm
