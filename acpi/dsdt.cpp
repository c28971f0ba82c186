// The DSDT (ACPI 6.5 §5.2.11.1): PCI host bridge, COM1, RTC, fw_cfg, the caller's extra devices
// and \_S5. Everything SeaBIOS's DSDT parser must see (_HID, _STA, _CRS) is a Name() object under
// Scope(\_SB), because that parser skips methods (SeaBIOS src/fw/dsdt_parser.c, "method op"). No PNP0303/PNP0F13: there is
// no i8042, and their absence also makes SeaBIOS skip PS/2 set-up.
#include <cstring>

#include "acpi/aml.hpp"
#include "acpi/table_builders.hpp"

namespace minivmm::acpi {

namespace {

constexpr uint8_t kRtcIrq = 8;  // ISA IRQ of the MC146818 RTC (PC/AT)
// 64-bit PCI window that SeaBIOS places 64-bit BARs in (SB src/fw/pciinit.c,
// BUILD_PCIMEM64_START/END): [512 GiB, 1 TiB).
constexpr uint64_t kPciMmio64Start = 0x80'0000'0000;
constexpr uint64_t kPciMmio64Size = 0x80'0000'0000;
constexpr unsigned kPciSlots = 32;
constexpr unsigned kPciPins = 4;

aml::Bytes pci_host_bridge(const AcpiConfig& config) {
    using namespace aml;
    const Bytes crs = resource_template({
        word_bus_number(0x00, 0xFF),
        io(Decode::decode16, platform::kPciConfigAddress, platform::kPciConfigAddress, 0x01, 0x08),
        word_io(0x0000, platform::kPciConfigAddress - 1),
        word_io(0x0D00, 0xFFFF),
        dword_memory(Cache::cacheable, Access::read_write, platform::kLegacyHoleStart, 0xBFFFF),  // VGA window
        dword_memory(Cache::non_cacheable, Access::read_write, static_cast<uint32_t>(config.pci_mmio32_start),
                     static_cast<uint32_t>(platform::kPciMmioWindowEnd - 1)),
        qword_memory(Cache::cacheable, Access::read_write, kPciMmio64Start, kPciMmio64Start + kPciMmio64Size - 1),
    });
    // _PRT (§6.2.13): {Address = slot << 16 | 0xFFFF (any function), Pin, Source = 0 (a GSI, not a
    // link device), Source Index = GSI}. Slot 0 is the host bridge itself.
    std::vector<Bytes> routes;
    for (unsigned slot = 1; slot < kPciSlots; ++slot) {
        for (unsigned pin = 0; pin < kPciPins; ++pin) {
            routes.push_back(package({integer((uint64_t{slot} << 16) | 0xFFFF), integer(pin), integer(0),
                                      integer(platform::pci_intx_gsi(slot, pin))}));
        }
    }
    return device("PCI0", {
        name("_HID", eisa_id("PNP0A03")),
        name("_ADR", integer(0)),
        name("_UID", integer(0)),
        name("_BBN", integer(0)),
        name("_CRS", crs),
        name("_PRT", package(routes)),
    });
}

aml::Bytes com1() {
    using namespace aml;
    return device("COM1", {
        name("_HID", eisa_id("PNP0501")),
        name("_UID", integer(1)),
        name("_STA", integer(0x0F)),
        name("_CRS", resource_template({io(Decode::decode16, platform::kCom1Port, platform::kCom1Port, 0x01, 0x08),
                                        irq_no_flags({platform::kCom1Irq})})),
    });
}

aml::Bytes rtc() {
    using namespace aml;
    return device("RTC", {
        name("_HID", eisa_id("PNP0B00")),
        name("_CRS", resource_template({io(Decode::decode16, platform::kCmosPort, platform::kCmosPort, 0x01, 0x02),
                                        irq_no_flags({kRtcIrq})})),
    });
}

aml::Bytes fw_cfg() {
    using namespace aml;
    // QEMU docs/specs/fw_cfg.rst: "QEMU0002"; _STA 0x0B = present, enabled, functioning, hidden from UI.
    return device("FWCF", {
        name("_HID", string("QEMU0002")),
        name("_STA", integer(0x0B)),
        name("_CRS", resource_template({io(Decode::decode16, platform::kFwCfgPort, platform::kFwCfgPort, 0x01,
                                           static_cast<uint8_t>(platform::kFwCfgPortSize))})),
    });
}

}  // namespace

Bytes build_dsdt(const AcpiConfig& config) {
    using namespace aml;
    std::vector<Bytes> sb{pci_host_bridge(config), com1(), rtc(), fw_cfg()};
    for (const auto& dev : config.extra_dsdt_devices) sb.push_back(dev);
    Bytes body = scope("\\_SB", sb);
    // \_S5 (§7.4.2): {SLP_TYPa, SLP_TYPb, reserved, reserved}. Linux offers ACPI power-off only
    // when it exists (drivers/acpi/sleep.c acpi_sleep_init: pm_power_off only if S5 is supported).
    append(body, name("\\_S5", package({integer(platform::kSleepTypeS5), integer(platform::kSleepTypeS5),
                                        integer(0), integer(0)})));

    // Revision 2: 64-bit integers (the QWordMemory window and Ones need them).
    const TableHeader header = make_header("DSDT", 2, static_cast<uint32_t>(sizeof(TableHeader) + body.size()));
    Bytes table(sizeof(TableHeader));
    std::memcpy(table.data(), &header, sizeof header);
    append(table, body);
    return table;
}

}  // namespace minivmm::acpi
