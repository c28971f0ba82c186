#include "vmm/direct_boot.hpp"

#include <sys/random.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <string>

#include <fmt/core.h>

#include "acpi/tpm_tables.hpp"
#include "firmware/e820.hpp"
#include "firmware/firmware_events.hpp"
#include "firmware/linux_boot64.hpp"
#include "firmware/table_loader_run.hpp"
#include "vmm/base/error.hpp"
#include "vmm/base/log.hpp"
#include "vmm/base/platform.hpp"
#include "vmm/tpm/tpm_firmware.hpp"

namespace minivmm {

namespace {

constexpr uint32_t kMsrMtrrDefType = 0x2FF;       // IA32_MTRR_DEF_TYPE (Intel SDM Vol. 3 §11.11.2.1)
constexpr uint64_t kMtrrEnabledWriteBack = 0x806;  // E (bit 11) set, default type 6 = write-back
// How long the firmware's TPM commands may take in all before the boot is given up.
constexpr std::chrono::seconds kTpmDeadline{20};

[[noreturn]] void internal(const std::string& what) { throw SetupError(kExitInternal, "-bios none: " + what); }

void write(const GuestMemory& memory, uint64_t gpa, std::span<const uint8_t> bytes, const char* what) {
    if (!memory.write(gpa, bytes)) internal(fmt::format("the {} does not fit guest RAM at {:#x}", what, gpa));
}

std::vector<uint8_t> installed(const GuestMemory& memory, uint64_t gpa, size_t size) {
    std::vector<uint8_t> bytes(size);
    if (!memory.read(gpa, bytes)) internal("an ACPI file is outside guest RAM");
    return bytes;
}

// The firmware's events (PCRs 0-7) into a new log, each extended through the worker.
void measure_firmware(const DirectBoot& b, std::span<uint8_t> area,
                      std::span<const std::pair<std::string, std::vector<uint8_t>>> acpi_files) {
    const TpmVersion version = b.tpm->version();
    std::optional<tcg_log::Layout> layout = tcg_log::start(area, version, b.banks);
    if (!layout) throw SetupError(kExitTpm, "-bios none: the TPM's PCR banks cannot be listed in an event log");
    for (const tcg_log::Algorithm& bank : b.banks)
        if (bank.id != tcg_log::kAlgSha1 && bank.id != tcg_log::kAlgSha256 && bank.id != tcg_log::kAlgSha384 &&
            bank.id != tcg_log::kAlgSha512)
            throw SetupError(kExitTpm, fmt::format("-bios none: the TPM has an active PCR bank of algorithm {:#06x}, which "
                                                   "minivmm cannot compute (SHA-1, SHA-256, SHA-384 and SHA-512 only); "
                                                   "reconfigure its banks (swtpm_setup --pcr-banks)", bank.id));
    for (const FirmwareEvent& e : firmware_events(MINIVMM_VERSION, acpi_files)) {
        std::vector<tcg_log::Digest> digests;
        for (tcg_log::Digest& d : tcg_digests(e.measured))
            if (std::any_of(b.banks.begin(), b.banks.end(), [&](const tcg_log::Algorithm& a) { return a.id == d.algorithm; }))
                digests.push_back(std::move(d));
        if (!tcg_log::append(area, *layout, e.pcr, e.type, digests, e.data))
            internal("the firmware's events do not fit the TPM event log");
        b.tpm->submit_platform(pcr_extend_command(version, e.pcr, digests),
                               fmt::format("-bios none: extending PCR {} (event type {:#x})", e.pcr, e.type));
    }
}

void enter_kernel(Vcpu& bsp) {
    kvm_sregs s{};
    if (!bsp.get_sregs(s)) throw SetupError(kExitKvm, "KVM: KVM_GET_SREGS failed on vCPU 0");
    auto flat = [](kvm_segment& seg, uint16_t selector, uint8_t type, bool code) {
        seg = kvm_segment{};
        seg.base = 0;
        seg.limit = 0xFFFF'FFFF;
        seg.selector = selector;
        seg.type = type;
        seg.present = 1;
        seg.s = 1;
        seg.g = 1;
        seg.l = code ? 1 : 0;
        seg.db = code ? 0 : 1;
    };
    flat(s.cs, linux_boot64::kCodeSelector, 0xB, true);  // execute/read, accessed
    for (kvm_segment* seg : {&s.ds, &s.es, &s.fs, &s.gs, &s.ss}) flat(*seg, linux_boot64::kDataSelector, 0x3, false);
    s.gdt.base = linux_boot64::kGdtAddr;
    s.gdt.limit = static_cast<uint16_t>(linux_boot64::gdt().size() - 1);
    s.idt = {};
    // PE | ET | NE | PG; PAE; long mode enabled and active (Intel SDM Vol. 3 §9.8.5).
    s.cr0 = 0x1 | 0x10 | 0x20 | 0x8000'0000;
    s.cr3 = linux_boot64::kPageTablesAddr;
    s.cr4 = 0x20;
    s.efer = 0x100 | 0x400;
    bsp.set_sregs(s);
    kvm_regs r{};
    r.rip = linux_boot64::entry_point();
    r.rsi = linux_boot64::kBootParamsAddr;
    r.rsp = linux_boot64::kStackTop;
    r.rflags = 0x2;  // reserved bit 1; interrupts off, as boot.rst requires
    bsp.set_regs(r);
    const std::pair<uint32_t, uint64_t> msrs[] = {{kMsrMtrrDefType, kMtrrEnabledWriteBack}};
    // A KVM that refuses it (kvm_pvm does) leaves the MTRRs off; Linux then maps everything
    // write-back itself ("MTRRs disabled"), so this is worth a line, not a failed boot.
    if (const int set = bsp.set_msrs(msrs); set != static_cast<int>(std::size(msrs)))
        log::info("-bios none: KVM did not take IA32_MTRR_DEF_TYPE ({}): the guest runs with MTRRs disabled",
                  set < 0 ? std::strerror(-set) : "refused");
    bsp.set_lapic_virtual_wire();
}

}  // namespace

PciWindows direct_boot_pci_windows(const MachineSpec& spec) {
    // The DSDT's _CRS (acpi/dsdt.cpp): memory from the end of low RAM to the IOAPIC; I/O ports
    // 0xC000-0xFFFF, where SeaBIOS puts I/O BARs (src/fw/pciinit.c).
    return {spec.ram_below_4g(), platform::kPciMmioWindowEnd, 0xC000, 0x10000};
}

void boot_without_firmware(const DirectBoot& b, Vcpu& bsp) {
    const uint64_t below = b.spec.ram_below_4g();
    // The ACPI files, as the table loader installs them for SeaBIOS.
    std::map<std::string, std::vector<uint8_t>> files{{kAcpiTablesFile, b.acpi.tables}, {kAcpiRsdpFile, b.acpi.rsdp}};
    if (b.tpm) files.emplace(kTpmLogFile, std::vector<uint8_t>(kTpmLogSize, 0));
    const LoaderZones zones{below - kFirmwareArea, below, kE820FsegBase, platform::kBiosShadowEnd};
    const LoaderResult loaded = run_table_loader(b.acpi.loader, files, zones, b.memory);
    if (!loaded.ok) internal(loaded.error);
    const uint64_t rsdp = loaded.addresses.at(kAcpiRsdpFile), tables = loaded.addresses.at(kAcpiTablesFile);

    // The firmware's measurements first (the tables as installed), then the kernel's (it loads it).
    if (b.tpm) {
        const uint64_t log_address = loaded.addresses.at(kTpmLogFile);
        const std::pair<std::string, std::vector<uint8_t>> acpi_files[] = {
            {kAcpiRsdpFile, installed(b.memory, rsdp, b.acpi.rsdp.size())},
            {kAcpiTablesFile, installed(b.memory, tables, b.acpi.tables.size())}};
        measure_firmware(b, *b.memory.span(log_address, kTpmLogSize), acpi_files);
        if (!b.kernel.boot(b.memory, log_address, kTpmLogSize, b.tpm)) internal("the kernel could not be placed");
        std::array<uint8_t, 32> random{};
        if (::getrandom(random.data(), random.size(), 0) != static_cast<ssize_t>(random.size()))
            throw SetupError(kExitInternal, "-bios none: getrandom failed");
        for (std::vector<uint8_t>& command : firmware_lock_commands(b.tpm->version(), random))
            b.tpm->submit_platform(std::move(command), "-bios none: locking the platform hierarchy");
        if (!b.tpm->wait_idle(kTpmDeadline))
            throw SetupError(kExitTpm, fmt::format("-bios none: the TPM did not take the firmware's measurements within {} s",
                                                   kTpmDeadline.count()));
    } else if (!b.kernel.boot(b.memory, std::nullopt, 0, nullptr)) {
        internal("the kernel could not be placed");
    }

    const std::vector<E820Entry> e820 =
        build_direct_boot_e820(below, b.spec.ram_above_4g(), b.spec.tpm_crb(), kFirmwareArea);
    write(b.memory, linux_boot64::kBootParamsAddr, linux_boot64::boot_params(b.kernel.plan(), e820, rsdp), "zero page");
    write(b.memory, linux_boot64::kGdtAddr, linux_boot64::gdt(), "GDT");
    write(b.memory, linux_boot64::kPageTablesAddr, linux_boot64::page_tables(), "page tables");
    enter_kernel(bsp);
}

}  // namespace minivmm
