// MachineSpec (vmm/machine_spec.hpp): machines described as data, without parsing arguments:
// what each one holds and where, that no two devices overlap, and what validate() refuses.
#include <doctest/doctest.h>

#include <set>
#include <stdexcept>

#include "vmm/base/error.hpp"
#include "vmm/base/platform.hpp"
#include "vmm/cli.hpp"
#include "vmm/machine_spec.hpp"

using namespace minivmm;
using Device = MachineSpec::Device;
using Space = MachineSpec::Space;

namespace {

MachineSpec disk_only() {
    MachineSpec s;
    s.disk = true;
    return s;
}

MachineSpec everything(TpmInterface interface) {
    MachineSpec s = disk_only();
    s.kernel = true;
    s.debugcon = true;
    s.tpm = MachineSpec::Tpm{TpmVersion::v2_0, interface, true, true};
    return s;
}

std::set<Device> ids(const MachineSpec& s) {
    std::set<Device> out;
    for (const auto& p : s.devices()) out.insert(p.device);
    return out;
}

// Ports and addresses share one space each; the CRB's buffer is RAM in the MMIO address space.
bool overlap_free(const std::vector<MachineSpec::Placement>& list) {
    for (size_t i = 0; i < list.size(); ++i)
        for (size_t j = i + 1; j < list.size(); ++j) {
            const auto& a = list[i];
            const auto& b = list[j];
            const bool same_space = a.space == b.space || (a.space != Space::port_io && a.space != Space::pci_slot &&
                                                           b.space != Space::port_io && b.space != Space::pci_slot);
            if (same_space && a.base < b.base + b.size && b.base < a.base + a.size) return false;
        }
    return true;
}

int validate_code(const MachineSpec& s) {
    try {
        s.validate();
    } catch (const SetupError& e) {
        return e.code();
    }
    return -1;
}

}  // namespace

TEST_CASE("a disk-only machine: the legacy devices and virtio-blk, no TPM, no debug console, no boot port") {
    const MachineSpec s = disk_only();
    CHECK(ids(s) == std::set<Device>{Device::cmos, Device::a20, Device::com1, Device::fw_cfg, Device::acpi_pm,
                                     Device::pci_config, Device::boot_marker, Device::virtio_blk});
    CHECK(s.place(Device::boot_marker).base == 0x3F0);  // where Firecracker's guests write it
    CHECK(s.place(Device::com1).base == platform::kCom1Port);
    CHECK(s.place(Device::com1).irq == platform::kCom1Irq);
    CHECK(s.place(Device::virtio_blk).space == Space::pci_slot);
    CHECK(s.place(Device::virtio_blk).irq == platform::pci_intx_gsi(platform::kVirtioBlkSlot, 0));
    CHECK_THROWS_AS(s.place(Device::tpm), std::logic_error);
    CHECK(overlap_free(s.devices()));
}

TEST_CASE("a TIS machine: five localities with IRQ 13, the PPI mailbox right after them") {
    MachineSpec s = everything(TpmInterface::tis);
    CHECK(ids(s).size() == 12);  // every device but the CRB's buffer
    const auto tis = s.place(Device::tpm);
    CHECK(tis.base == 0xFED40000);
    CHECK(tis.size == 0x5000);
    CHECK(tis.irq == 13u);
    CHECK(s.place(Device::tpm_ppi).base == tis.base + tis.size);
    CHECK(overlap_free(s.devices()));
    s.tpm->irq = false;  // -tpm-irq off: polled, no IRQ in the list (nor in _CRS)
    CHECK_FALSE(s.tpm_irq());
    CHECK_FALSE(s.place(Device::tpm).irq.has_value());
    s.tpm->ppi = false;
    CHECK(ids(s).count(Device::tpm_ppi) == 0);
}

TEST_CASE("a CRB machine: the register page as MMIO, the buffer as RAM after it, no interrupt") {
    const MachineSpec s = everything(TpmInterface::crb);
    CHECK(ids(s).size() == 13);
    const auto regs = s.place(Device::tpm);
    const auto buffer = s.place(Device::tpm_crb_buffer);
    CHECK(regs.space == Space::mmio);
    CHECK(regs.size == 0x1000);
    CHECK_FALSE(regs.irq.has_value());
    CHECK_FALSE(s.tpm_irq());  // the -tpm-irq default does not give the CRB one
    CHECK(buffer.space == Space::ram);
    CHECK(buffer.base == regs.base + regs.size);
    CHECK(buffer.size == 0x2000);
    CHECK(overlap_free(s.devices()));
}

TEST_CASE("the overlap check finds an overlap: the TIS's five pages would cover the CRB's buffer") {
    auto list = everything(TpmInterface::crb).devices();
    CHECK(overlap_free(list));
    std::erase_if(list, [](const MachineSpec::Placement& p) { return p.device == Device::tpm; });  // the registers
    CHECK(overlap_free(list));
    list.push_back(everything(TpmInterface::tis).place(Device::tpm));
    CHECK_FALSE(overlap_free(list));
    auto ports = disk_only().devices();  // and among ports: a second COM1 one port up
    auto com1 = disk_only().place(Device::com1);
    com1.base += 1;
    ports.push_back(com1);
    CHECK_FALSE(overlap_free(ports));
}

TEST_CASE("RAM is split at 3 GiB; the rest goes above 4 GiB") {
    MachineSpec s = disk_only();
    s.ram_bytes = 4ull << 30;
    CHECK(s.ram_below_4g() == platform::kLowMemoryLimit);
    CHECK(s.ram_above_4g() == (1ull << 30));
    s.ram_bytes = 512ull << 20;
    CHECK(s.ram_below_4g() == s.ram_bytes);
    CHECK(s.ram_above_4g() == 0);
}

TEST_CASE("validate refuses what no machine can be, as a usage error") {
    CHECK(validate_code(disk_only()) == -1);
    CHECK(validate_code(everything(TpmInterface::crb)) == -1);
    MachineSpec s = disk_only();
    s.disk = false;
    CHECK(validate_code(s) == -1);  // nothing to boot is a machine too: SeaBIOS says so
    s.kernel = true;
    CHECK(validate_code(s) == -1);
    s = disk_only();
    s.cpus = kMaxCpus;
    s.ram_bytes = kMaxRam;
    CHECK(validate_code(s) == -1);
    s.ram_bytes = kMinRam;
    CHECK(validate_code(s) == -1);
    s.ram_bytes = kMaxRam + kRamGranularity;
    CHECK(validate_code(s) == kExitUsage);
    s = disk_only();
    s.cpus = 0;
    CHECK(validate_code(s) == kExitUsage);
    s.cpus = kMaxCpus + 1;
    CHECK(validate_code(s) == kExitUsage);
    s = disk_only();
    s.ram_bytes = kMinRam - kRamGranularity;
    CHECK(validate_code(s) == kExitUsage);
    s.ram_bytes = kMinRam + 4096;  // not whole MiB
    CHECK(validate_code(s) == kExitUsage);
    s = everything(TpmInterface::crb);
    s.tpm->version = TpmVersion::v1_2;
    CHECK(validate_code(s) == kExitUsage);
}

TEST_CASE("machine_spec: from the CLI's Config and the TPM actually opened") {
    Config c;
    c.disk = "a.img";
    c.cpus = 2;
    c.ram_bytes = 1ull << 30;
    c.serial.kind = CharTarget::Kind::none;
    c.tpm_socket = "/tmp/s";
    c.tpm_interface = TpmInterface::tis;
    c.tpm_irq = false;
    MachineSpec s = machine_spec(c, TpmVersion::v1_2);  // swtpm said it is a TPM 1.2
    CHECK(s.cpus == 2);
    CHECK_FALSE(s.serial);
    REQUIRE(s.tpm.has_value());
    CHECK(s.tpm->version == TpmVersion::v1_2);
    CHECK_FALSE(s.tpm_irq());
    CHECK(s.tpm->ppi);
    CHECK_FALSE(machine_spec(c, std::nullopt).tpm.has_value());
}

TEST_CASE("every command line the CLI accepts makes a valid machine") {
    const std::vector<std::vector<std::string>> lines{
        {"a.img"}, {""}, {"-kernel", "bz"}, {"-m", "32M", "-smp", "64", "a.img"}, {"-m", "1T", "a.img"},
        {"-serial", "none", "-debugcon", "file:d", "a.img"}, {"-tpm-state", "d", "-tpm-interface", "crb", "a.img"},
        {"-tpm-state", "d", "-tpm-version", "1.2", "-tpm-irq", "off", "-tpm-ppi", "off", "a.img"},
        {"-tpm-sock", "s", "-kernel", "bz", "-initrd", "i", "-append", "x"}};
    for (const auto& args : lines) {
        const Config c = parse_cli(args).config;
        const bool tpm = c.tpm_socket || c.tpm_state;
        CAPTURE(args.size());
        CHECK_NOTHROW(machine_spec(c, tpm ? std::optional(c.tpm_version) : std::nullopt));
    }
}
