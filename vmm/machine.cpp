#include "vmm/machine.hpp"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/core.h>

#include "vmm/kvm/cpuid.hpp"
#include "vmm/base/error.hpp"
#include "vmm/base/log.hpp"
#include "vmm/direct_boot.hpp"
#include "vmm/machine_devices.hpp"
#include "vmm/base/platform.hpp"
#include "devices/tpm_crb_regs.hpp"
#include "vmm/host/boot_timer.hpp"
#include "vmm/host/sandbox.hpp"
#include "vmm/kvm/vcpu.hpp"

namespace minivmm {

namespace {

enum MemorySlot : uint32_t {
    kSlotLowRam = 0, kSlotFlash = 1, kSlotHighRam = 2, kSlotTpmCrbBuffer = 3, kSlotTpmCrbRegisters = 4
};

}  // namespace

Machine::Machine(const MachineOptions& options) : options_(options), vm_(options.kvm) {
    // TSS and identity map for Intel's real-mode support: fixed addresses reserved in e820.
    vm_.set_identity_map_addr(platform::kKvmIdentityMapAddr);
    vm_.set_tss_addr(platform::kKvmTssAddr);
    // Every memory slot before the in-kernel irqchip (Firecracker's order too): on a paravirtual
    // KVM (kvm_pvm) the first slot change after KVM_CREATE_IRQCHIP takes ~7.5 ms, before it 0.3 ms
    // (a VM with 512 MiB, two slots, the irqchip and PIT, measured in both orders).
    if (options_.restore) map_restored_memory();
    map_memory();
    map_tpm_crb_buffer();
    vm_.create_irqchip();
    vm_.set_pc_gsi_routing(platform::kIoApicPins);
    vm_.create_pit();
    devices_ = std::make_unique<MachineDevices>(MachineDevices::Wiring{
        options_.spec, vm_, memory_, events_, pio_, mmio_, device_lock_, options_.disk, options_.serial_out,
        options_.debug_out, options_.tpm, options_.kernel, tpm_crb_memory_, std::span<uint8_t>(tpm_crb_registers_.data(), tpm_crb_registers_.size())});
    create_vcpus();
    if (options_.restore) log::debug("restore: the machine is built, {:.1f} ms after start", ms_since_start());
    else if (!options_.spec.firmware) enter_without_firmware();
    coalesce_tpm_fifo();
    if (options_.spec.exit_stats) exit_stats_.resize(vcpus_.size());
}

Machine::~Machine() {
    stop_vcpus();
}

void Machine::map_memory() {
    ram_below_4g_ = options_.spec.ram_below_4g();
    ram_above_4g_ = options_.spec.ram_above_4g();
    const bool restored = low_ram_.size() != 0;  // map_restored_memory() mapped the snapshot's RAM
    try {
        if (!restored) low_ram_ = Mapping::anonymous(ram_below_4g_);
        if (ram_above_4g_ && !restored) high_ram_ = Mapping::anonymous(ram_above_4g_);
        if (options_.bios) flash_ = Mapping::anonymous(options_.bios->size());
    } catch (const std::runtime_error& e) {
        throw SetupError(kExitKvm, e.what());
    }
    vm_.set_memory(kSlotLowRam, 0, ram_below_4g_, low_ram_.data(), false);
    if (options_.bios) {
        // The BIOS as flash at the top of 4 GiB (read-only: SeaBIOS's reboot path checks that the
        // flash copy is pristine) and its last 256 KiB in RAM below 1 MiB (firmware/bios_image.hpp).
        const BiosImage& bios = *options_.bios;
        std::memcpy(flash_.data(), bios.bytes().data(), bios.size());
        if (!restored) std::memcpy(low_ram_.data() + bios.shadow_base(), bios.shadow_bytes(), bios.shadow_size());
        bool readonly = options_.kvm.check_extension(KVM_CAP_READONLY_MEM) > 0;
        if (!readonly) log::info("KVM has no read-only memory slots; the BIOS flash alias is writable");
        vm_.set_memory(kSlotFlash, bios.flash_base(), bios.size(), flash_.data(), readonly);
    }
    std::vector<GuestRegion> regions{{0, ram_below_4g_, low_ram_.data()}};
    if (ram_above_4g_) {
        vm_.set_memory(kSlotHighRam, platform::kHighMemoryBase, ram_above_4g_, high_ram_.data(), false);
        regions.push_back({platform::kHighMemoryBase, ram_above_4g_, high_ram_.data()});
    }
    memory_ = GuestMemory(std::move(regions));
}

// -restore: guest RAM (and the CRB's buffer) mapped MAP_PRIVATE from the snapshot's regions, which
// must be exactly this machine's (vmm/snapshot_file.hpp); map_memory() then registers them.
void Machine::map_restored_memory() {
    std::vector<std::pair<uint64_t, uint64_t>> expected{{0, options_.spec.ram_below_4g()}};
    if (options_.spec.ram_above_4g()) expected.emplace_back(platform::kHighMemoryBase, options_.spec.ram_above_4g());
    if (options_.spec.tpm_crb()) {
        const MachineSpec::Placement buffer = options_.spec.place(MachineSpec::Device::tpm_crb_buffer);
        expected.emplace_back(buffer.base, buffer.size);
    }
    const std::vector<SnapshotRamRegion>& regions = options_.restore->header().ram;
    if (regions.size() != expected.size())
        throw SnapshotError(fmt::format("the snapshot has {} RAM regions, this machine {}", regions.size(), expected.size()));
    std::vector<Mapping> maps;
    for (size_t i = 0; i < regions.size(); ++i) {
        if (regions[i].gpa != expected[i].first || regions[i].size != expected[i].second)
            throw SnapshotError(fmt::format("the snapshot's RAM region {} ({:#x}, {} bytes) is not this machine's", i,
                                            regions[i].gpa, regions[i].size));
        try {
            maps.push_back(Mapping::private_file(options_.restore->fd(), regions[i].size, regions[i].file_offset));
        } catch (const std::runtime_error& e) {
            throw SetupError(kExitKvm, e.what());
        }
    }
    low_ram_ = std::move(maps[0]);
    size_t next = 1;
    if (options_.spec.ram_above_4g()) high_ram_ = std::move(maps[next++]);
    if (options_.spec.tpm_crb()) tpm_crb_buffer_ = std::move(maps[next]);
}

// -tpm-interface crb: the command/response buffer is RAM of its own slot (devices/tpm_crb.hpp), so
// the guest fills and reads it without exits; it is not part of memory_ (no DMA of other devices
// reaches it), only the TPM device sees it, through tpm_crb_memory_.
void Machine::map_tpm_crb_buffer() {
    static_assert(platform::kTpmCrbBufferSize <= crb::kMaxBufferSize && platform::kTpmCrbBufferSize % crb::kPageSize == 0);
    if (!options_.spec.tpm_crb()) return;
    const MachineSpec::Placement buffer = options_.spec.place(MachineSpec::Device::tpm_crb_buffer);
    const MachineSpec::Placement registers = options_.spec.place(MachineSpec::Device::tpm);
    try {
        if (tpm_crb_buffer_.size() != buffer.size) tpm_crb_buffer_ = Mapping::anonymous(buffer.size);  // else restored
    } catch (const std::runtime_error& e) {
        throw SetupError(kExitKvm, e.what());
    }
    vm_.set_memory(kSlotTpmCrbBuffer, buffer.base, buffer.size, tpm_crb_buffer_.data(), false);
    tpm_crb_memory_ = GuestMemory({{buffer.base, buffer.size, tpm_crb_buffer_.data()}});
    // The register page too, read-only: the guest's register reads (Linux polls LOC_STATE,
    // CTRL_REQ and CTRL_START after each write) are served from this page without an exit; its
    // writes exit as MMIO and the TPM's RegisterMirror re-renders the page (devices/register_mirror.hpp).
    if (options_.kvm.check_extension(KVM_CAP_READONLY_MEM) <= 0) {
        log::info("KVM has no read-only memory slots: every CRB register read exits");
        return;
    }
    try {
        tpm_crb_registers_ = Mapping::anonymous(registers.size);
    } catch (const std::runtime_error& e) {
        throw SetupError(kExitKvm, e.what());
    }
    vm_.set_memory(kSlotTpmCrbRegisters, registers.base, registers.size, tpm_crb_registers_.data(), true);
}

// -bios none: minivmm does the firmware's work and starts vCPU 0 in the kernel (vmm/direct_boot.hpp).
void Machine::enter_without_firmware() {
    {
        std::lock_guard lock(device_lock_);
        if (std::string error = devices_->assign_pci_resources(direct_boot_pci_windows(options_.spec)); !error.empty())
            throw SetupError(kExitInternal, "-bios none: " + error);
    }
    TpmSlot::Attachment* tpm = devices_->tpm();
    boot_without_firmware({options_.spec, *options_.kernel, memory_, devices_->acpi(), tpm ? &tpm->worker() : nullptr,
                           options_.tpm.firmware_banks(), options_.pvh},
                          *vcpus_.at(0));
}

void Machine::create_vcpus() {
    const unsigned cpus = options_.spec.cpus;
    auto supported = options_.kvm.supported_cpuid();
    for (unsigned i = 0; i < cpus; ++i) {
        auto vcpu = std::make_unique<Vcpu>(options_.kvm, vm_, i);
        vcpu->set_cpuid(cpuid_for(supported, i, cpus));
        vcpus_.push_back(std::move(vcpu));
    }
}

// Linux and SeaBIOS send a TPM command one byte per DATA_FIFO write (TIS), each an exit; with
// those ranges as coalesced zones the writes wait in KVM's ring until the next exit (a read of STS,
// a write of STS.go), which replays them first (vmm/kvm/coalesced_mmio.hpp). The CRB's register writes
// (LOC_CTRL, CTRL_REQ, CTRL_CANCEL, CTRL_START) wait there too, until the read that follows each,
// where the register page is MMIO (no read-only slots); served from memory, they must exit.
void Machine::coalesce_tpm_fifo() {
    if (!devices_->tpm() || vcpus_.empty()) return;
    const int pages = options_.kvm.check_extension(KVM_CAP_COALESCED_MMIO);
    const long page_size = ::sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page_size <= 0) {
        log::debug("KVM has no coalesced MMIO: every TPM FIFO write exits");
        return;
    }
    const size_t offset = static_cast<size_t>(pages) * static_cast<size_t>(page_size);
    if (offset + static_cast<size_t>(page_size) > vcpus_[0]->run_size())
        throw SetupError(kExitKvm, fmt::format("KVM: the coalesced MMIO page {} lies outside the {}-byte vCPU mapping",
                                               pages, vcpus_[0]->run_size()));
    // The ring first: a zone that was registered before a later one failed still fills it.
    auto* base = reinterpret_cast<uint8_t*>(&vcpus_[0]->run());
    coalesced_.emplace(std::span<uint8_t>(base + offset, static_cast<size_t>(page_size)));
    for (const TpmSlot::Attachment::MmioZone& zone : devices_->tpm()->coalescible_zones()) {
        if (int err = vm_.register_coalesced_mmio(zone.base, zone.size)) {  // a slower TPM, nothing worse
            log::info("KVM_REGISTER_COALESCED_MMIO failed ({}): TPM writes at {:#x} and up exit", std::strerror(err),
                      zone.base);
            return;
        }
    }
}

void Machine::start_vcpus() {
    devices_->start_io();  // before the vCPUs: their notifications wake it
    if (devices_->tpm()) devices_->tpm()->worker().cut_stalls(false);
    // Every AP must be inside KVM_RUN so that SeaBIOS's INIT-SIPI-SIPI finds it (§1.7 smp_scan).
    for (auto& vcpu : vcpus_) {
        Vcpu* v = vcpu.get();
        ExitStats* stats = exit_stats_.empty() ? nullptr : &exit_stats_[v->index()];
        threads_.emplace_back([this, v, stats] {
            sigset_t set;
            sigemptyset(&set);
            sigaddset(&set, kVcpuKickSignal);
            pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
            // The vCPU's own, narrower seccomp filter (vmm/host/README.md "Sandbox") before any guest code runs.
            if (int err = sandbox::enter_vcpu_thread(v->index()); err != 0) {
                events_.post(MachineEvents::Kind::fatal, fmt::format("vCPU {}: cannot load its sandbox filter: {}",
                                                                     v->index(), std::strerror(err)));
                return;
            }
            VcpuContext ctx{*v,     pio_,  mmio_, device_lock_, events_, memory_, options_.bios,
                            stop_, devices_->tpm(), coalesced_ ? &*coalesced_ : nullptr, stats};
            run_vcpu(ctx);
        });
    }
}

Machine::Result Machine::run(int signal_fd, RunControl* control) {
    start_vcpus();
    Result result;
    std::vector<pollfd> fds;
    while (true) {
        fds.assign({{events_.fd(), POLLIN, 0}, {signal_fd, POLLIN, 0}});
        if (control) control->add_poll_fds(fds);
        int n = ::poll(fds.data(), fds.size(), -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            result = {MachineEvents::Kind::fatal, fmt::format("poll failed: {}", std::strerror(errno)), 0};
            break;
        }
        if (fds[0].revents) {
            result = {events_.kind(), events_.message(), 0};
            break;
        }
        if (signal_fd >= 0 && fds[1].revents) {
            signalfd_siginfo info{};
            if (::read(signal_fd, &info, sizeof info) == sizeof info) {
                result = {MachineEvents::Kind::quit, fmt::format("terminated by signal {}", info.ssi_signo),
                          static_cast<int>(info.ssi_signo)};
                break;
            }
        }
        if (control && control->serve(std::span(fds).subspan(2), *this)) {
            result = {MachineEvents::Kind::quit, "quit from the control socket", 0};
            break;
        }
    }
    stop_vcpus();
    return result;
}

void Machine::stop_vcpus() noexcept {
    stop_.store(true, std::memory_order_release);
    for (size_t i = 0; i < threads_.size(); ++i) {
        vcpus_[i]->run().immediate_exit = 1;
        if (threads_[i].joinable()) pthread_kill(threads_[i].native_handle(), kVcpuKickSignal);
    }
    if (devices_ && devices_->tpm()) devices_->tpm()->worker().cut_stalls(true);  // a vCPU stalled on the TPM
    for (auto& t : threads_)
        if (t.joinable()) t.join();
    threads_.clear();
    if (devices_) devices_->stop_io();  // no vCPU is left to notify it
}

std::vector<std::string> Machine::exit_stats_lines(unsigned boot) const {
    if (exit_stats_.empty()) return {};
    ExitStats all;
    for (const ExitStats& s : exit_stats_) all.merge(s);
    return all.lines(boot);
}

std::optional<TpmWorker::Stats> Machine::tpm_stats() const noexcept {
    return devices_->tpm() ? std::optional(devices_->tpm()->stats()) : std::nullopt;
}

const std::vector<std::pair<std::string, std::vector<uint8_t>>>& Machine::acpi_dumps() const noexcept {
    return devices_->acpi_dumps();
}

size_t Machine::serial_input(std::span<const uint8_t> bytes) noexcept {
    std::lock_guard lock(device_lock_);
    return devices_->serial_input(bytes);
}

}  // namespace minivmm
