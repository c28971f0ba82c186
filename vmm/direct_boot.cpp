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
#include "firmware/pvh.hpp"
#include "firmware/smbios.hpp"
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
// The SMBIOS entry point: the F-segment's first 16-byte slot (an OS scans 0xF0000-0xFFFFF for it,
// DSP0134 §5.2.1); the table loader's F-segment zone (the RSDP) ends below it.
constexpr uint64_t kSmbiosAnchorAddr = 0xF0000;

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
                      std::span<const std::pair<std::string, std::vector<uint8_t>>> config_files) {
    const TpmVersion version = b.tpm->version();
    std::optional<tcg_log::Layout> layout = tcg_log::start(area, version, b.banks);
    if (!layout) throw SetupError(kExitTpm, "-bios none: the TPM's PCR banks cannot be listed in an event log");
    for (const tcg_log::Algorithm& bank : b.banks)
        if (bank.id != tcg_log::kAlgSha1 && bank.id != tcg_log::kAlgSha256 && bank.id != tcg_log::kAlgSha384 &&
            bank.id != tcg_log::kAlgSha512)
            throw SetupError(kExitTpm, fmt::format("-bios none: the TPM has an active PCR bank of algorithm {:#06x}, which "
                                                   "minivmm cannot compute (SHA-1, SHA-256, SHA-384 and SHA-512 only); "
                                                   "reconfigure its banks (swtpm_setup --pcr-banks)", bank.id));
    for (const FirmwareEvent& e : firmware_events(MINIVMM_VERSION, config_files)) {
        std::vector<tcg_log::Digest> digests;
        for (const tcg_log::Algorithm& bank : b.banks)  // the active banks only (all computable: checked above)
            if (std::optional<tcg_log::Digest> d = tcg_digest(e.measured, bank.id)) digests.push_back(std::move(*d));
        if (!tcg_log::append(area, *layout, e.pcr, e.type, digests, e.data))
            internal("the firmware's events do not fit the TPM event log");
        b.tpm->submit_platform(pcr_extend_command(version, e.pcr, digests),
                               fmt::format("-bios none: extending PCR {} (event type {:#x})", e.pcr, e.type));
    }
}

kvm_segment flat_segment(uint16_t selector, uint8_t type, bool long_code) {
    kvm_segment seg{};
    seg.base = 0;
    seg.limit = 0xFFFF'FFFF;
    seg.selector = selector;
    seg.type = type;
    seg.present = 1;
    seg.s = 1;
    seg.g = 1;
    seg.l = long_code ? 1 : 0;
    seg.db = long_code ? 0 : 1;
    return seg;
}

// vCPU 0 at the kernel's entry: `pvh_entry` in 32-bit protected mode with paging off (Xen
// docs/misc/pvh.pandoc), else the bzImage's 64-bit entry in long mode (boot.rst).
void enter_kernel(Vcpu& bsp, std::optional<uint32_t> pvh_entry) {
    kvm_sregs s{};
    if (!bsp.get_sregs(s)) throw SetupError(kExitKvm, "KVM: KVM_GET_SREGS failed on vCPU 0");
    kvm_regs r{};
    r.rflags = 0x2;  // reserved bit 1; interrupts off, as both protocols require
    s.gdt.base = linux_boot64::kGdtAddr;
    s.idt = {};
    if (pvh_entry) {
        s.cs = flat_segment(pvh::kCodeSelector, 0xB, false);
        for (kvm_segment* seg : {&s.ds, &s.es, &s.fs, &s.gs, &s.ss}) *seg = flat_segment(pvh::kDataSelector, 0x3, false);
        s.tr = kvm_segment{};
        s.tr.selector = pvh::kTssSelector;
        s.tr.limit = 0x67;
        s.tr.type = 0xB;  // busy 32-bit TSS
        s.tr.present = 1;
        s.gdt.limit = static_cast<uint16_t>(pvh::gdt().size() - 1);
        s.cr0 = 0x1 | 0x10;  // PE | ET; paging off
        s.cr4 = 0;
        s.efer = 0;
        r.rip = *pvh_entry;
        r.rbx = pvh::kStartInfoAddr;
    } else {
        s.cs = flat_segment(linux_boot64::kCodeSelector, 0xB, true);  // execute/read, accessed
        for (kvm_segment* seg : {&s.ds, &s.es, &s.fs, &s.gs, &s.ss}) *seg = flat_segment(linux_boot64::kDataSelector, 0x3, false);
        s.gdt.limit = static_cast<uint16_t>(linux_boot64::gdt().size() - 1);
        // PE | ET | NE | PG; PAE; long mode enabled and active (Intel SDM Vol. 3 §9.8.5).
        s.cr0 = 0x1 | 0x10 | 0x20 | 0x8000'0000;
        s.cr3 = linux_boot64::kPageTablesAddr;
        s.cr4 = 0x20;
        s.efer = 0x100 | 0x400;
        r.rip = linux_boot64::entry_point();
        r.rsi = linux_boot64::kBootParamsAddr;
        r.rsp = linux_boot64::kStackTop;
    }
    bsp.set_sregs(s);
    bsp.set_regs(r);
    const std::pair<uint32_t, uint64_t> msrs[] = {{kMsrMtrrDefType, kMtrrEnabledWriteBack}};
    // A KVM that refuses it (kvm_pvm does) leaves the MTRRs off; Linux then maps everything
    // write-back itself ("MTRRs disabled"), so this is worth a line, not a failed boot.
    if (const int set = bsp.set_msrs(msrs); set != static_cast<int>(std::size(msrs)))
        log::info("-bios none: KVM did not take IA32_MTRR_DEF_TYPE ({}): the guest runs with MTRRs disabled",
                  set < 0 ? std::strerror(-set) : "refused");
    bsp.set_lapic_virtual_wire();
}

// The kernel (its ELF through PVH, or the bzImage), the command line and the initrd into RAM, and the
// kernel's measurements after the firmware's, when there is a log.
void place_kernel(const DirectBoot& b, std::optional<uint64_t> log_address) {
    const bool placed = b.pvh ? b.pvh->load_into(b.memory) && b.kernel.boot_pvh(b.memory, log_address, kTpmLogSize, b.tpm)
                              : b.kernel.boot(b.memory, log_address, kTpmLogSize, b.tpm);
    if (!placed) internal("the kernel could not be placed");
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
    const LoaderZones zones{below - kFirmwareArea, below, kE820FsegBase, kSmbiosAnchorAddr};
    const LoaderResult loaded = run_table_loader(b.acpi.loader, files, zones, b.memory);
    if (!loaded.ok) internal(loaded.error);
    const uint64_t rsdp = loaded.addresses.at(kAcpiRsdpFile), tables = loaded.addresses.at(kAcpiTablesFile);

    // SMBIOS: the structure table after the loader's files in the firmware area, the entry point
    // in the F-segment (both reserved in the e820 map).
    const SmbiosBlobs smbios = build_smbios(MINIVMM_VERSION, true);
    const uint64_t smbios_tables = (zones.high_base + loaded.high_used + 15) & ~uint64_t{15};
    if (smbios_tables + smbios.tables.size() > zones.high_end) internal("the SMBIOS tables do not fit the firmware area");
    write(b.memory, smbios_tables, smbios.tables, "SMBIOS table");
    write(b.memory, kSmbiosAnchorAddr, smbios_anchor_at(smbios.anchor, static_cast<uint32_t>(smbios_tables)),
          "SMBIOS entry point");

    // The firmware's measurements first (the tables as installed), then the kernel's (it loads it).
    if (b.tpm) {
        const uint64_t log_address = loaded.addresses.at(kTpmLogFile);
        const std::pair<std::string, std::vector<uint8_t>> config_files[] = {
            {kAcpiRsdpFile, installed(b.memory, rsdp, b.acpi.rsdp.size())},
            {kAcpiTablesFile, installed(b.memory, tables, b.acpi.tables.size())},
            {kSmbiosTablesFile, installed(b.memory, smbios_tables, smbios.tables.size())}};
        measure_firmware(b, *b.memory.span(log_address, kTpmLogSize), config_files);
        place_kernel(b, log_address);
        std::array<uint8_t, 32> random{};
        if (::getrandom(random.data(), random.size(), 0) != static_cast<ssize_t>(random.size()))
            throw SetupError(kExitInternal, "-bios none: getrandom failed");
        for (std::vector<uint8_t>& command : firmware_lock_commands(b.tpm->version(), random))
            b.tpm->submit_platform(std::move(command), "-bios none: locking the platform hierarchy");
        if (!b.tpm->wait_idle(kTpmDeadline))
            throw SetupError(kExitTpm, fmt::format("-bios none: the TPM did not take the firmware's measurements within {} s",
                                                   kTpmDeadline.count()));
    } else {
        place_kernel(b, std::nullopt);
    }

    const std::vector<E820Entry> e820 =
        build_direct_boot_e820(below, b.spec.ram_above_4g(), b.spec.tpm_crb(), kFirmwareArea);
    if (b.pvh) {
        const linux_boot::Plan& plan = b.kernel.plan();
        const std::optional<pvh::Module> initrd =
            plan.initrd_size ? std::optional(pvh::Module{plan.initrd_addr, plan.initrd_size}) : std::nullopt;
        write(b.memory, pvh::kStartInfoAddr, pvh::start_info(linux_boot::kCmdlineAddr, initrd, rsdp, e820), "start_info");
        write(b.memory, linux_boot64::kGdtAddr, pvh::gdt(), "GDT");
        enter_kernel(bsp, b.pvh->image().pvh_entry);
        return;
    }
    write(b.memory, linux_boot64::kBootParamsAddr, linux_boot64::boot_params(b.kernel.plan(), e820, rsdp), "zero page");
    write(b.memory, linux_boot64::kGdtAddr, linux_boot64::gdt(), "GDT");
    write(b.memory, linux_boot64::kPageTablesAddr, linux_boot64::page_tables(), "page tables");
    enter_kernel(bsp, std::nullopt);
}

}  // namespace minivmm
