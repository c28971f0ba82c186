#include "vmm/kvm/ioctl_retry.hpp"
#include "vmm/kvm/kvm.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/core.h>

#include "vmm/base/error.hpp"
#include "vmm/base/log.hpp"

namespace minivmm {

namespace {

[[noreturn]] void fail(const char* what) {
    throw SetupError(kExitKvm, fmt::format("KVM: {} failed: {}", what, std::strerror(errno)));
}

// <linux/kvm.h> declares the entries of kvm_irq_routing and kvm_cpuid2 with
// __DECLARE_FLEX_ARRAY, which in C++ wraps them in a struct with an empty member: g++ puts them
// at offset 16 and sizes the header 16 bytes, while the kernel's layout is an 8-byte header
// ({u32 count; u32 flags/padding;}) followed by the entries. Build the request numbers and the
// buffers from the kernel's layout.
constexpr size_t kFlexHeader = 8;
constexpr unsigned long kSetGsiRouting = _IOW(KVMIO, 0x6a, uint64_t);
constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, uint64_t);
constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, uint64_t);
constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, uint64_t);  // struct kvm_msrs: 8 bytes and entries[]
constexpr unsigned long kGetMsrIndexList = _IOWR(KVMIO, 0x02, uint32_t);  // struct kvm_msr_list: u32 nmsrs, indices[]

template <typename Entry>
std::vector<uint8_t> flex_buffer(uint32_t count, const Entry* entries) {
    std::vector<uint8_t> buf(kFlexHeader + size_t{count} * sizeof(Entry), 0);
    std::memcpy(buf.data(), &count, sizeof count);
    if (entries) std::memcpy(buf.data() + kFlexHeader, entries, size_t{count} * sizeof(Entry));
    return buf;
}

}  // namespace

Kvm Kvm::open(const char* path) {
    int fd = ::open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            throw SetupError(kExitKvm, fmt::format("{} does not exist: KVM is not available on this host "
                                                   "(load kvm_intel/kvm_amd, or enable nested virtualization)", path));
        throw SetupError(kExitKvm, fmt::format("cannot open {}: {}", path, std::strerror(e)));
    }
    Kvm kvm{UniqueFd(fd)};
    int version = ::ioctl(fd, KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION)
        throw SetupError(kExitKvm, fmt::format("{}: KVM API version {} (expected {})", path, version, KVM_API_VERSION));
    for (long cap : {KVM_CAP_IRQCHIP, KVM_CAP_PIT2, KVM_CAP_USER_MEMORY, KVM_CAP_SET_TSS_ADDR,
                     KVM_CAP_EXT_CPUID, KVM_CAP_IRQ_ROUTING, KVM_CAP_SIGNAL_MSI, KVM_CAP_IMMEDIATE_EXIT}) {
        if (kvm.check_extension(cap) <= 0)
            throw SetupError(kExitKvm, fmt::format("{}: required KVM capability {} is missing", path, cap));
    }
    return kvm;
}

int Kvm::check_extension(long cap) const noexcept { return ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap); }

size_t Kvm::vcpu_mmap_size() const {
    int size = ::ioctl(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
    if (size <= 0) fail("KVM_GET_VCPU_MMAP_SIZE");
    return static_cast<size_t>(size);
}

std::vector<kvm_cpuid_entry2> Kvm::supported_cpuid() const {
    for (uint32_t n = 64; n <= 1024; n *= 2) {
        auto buf = flex_buffer<kvm_cpuid_entry2>(n, nullptr);
        if (::ioctl(fd_.get(), kGetSupportedCpuid, buf.data()) == 0) {
            uint32_t count;
            std::memcpy(&count, buf.data(), sizeof count);
            std::vector<kvm_cpuid_entry2> out(count);
            std::memcpy(out.data(), buf.data() + kFlexHeader, count * sizeof(kvm_cpuid_entry2));
            return out;
        }
        if (errno != E2BIG) fail("KVM_GET_SUPPORTED_CPUID");
    }
    fail("KVM_GET_SUPPORTED_CPUID (too many entries)");
}

std::vector<uint32_t> Kvm::msr_index_list() const {
    // Asked with room for none, KVM answers E2BIG and the count it needs.
    uint32_t count = 0;
    if (::ioctl(fd_.get(), kGetMsrIndexList, &count) == 0) return {};
    if (errno != E2BIG || count > 65536) fail("KVM_GET_MSR_INDEX_LIST");
    std::vector<uint32_t> buf(size_t{count} + 1);
    buf[0] = count;
    if (::ioctl(fd_.get(), kGetMsrIndexList, buf.data()) != 0) fail("KVM_GET_MSR_INDEX_LIST");
    return {buf.begin() + 1, buf.begin() + 1 + std::min(buf[0], count)};
}

Vm::Vm(const Kvm& kvm) {
    int fd = xioctl(kvm.fd(), KVM_CREATE_VM, 0);
    if (fd < 0) fail("KVM_CREATE_VM");
    fd_.reset(fd);
}

int Vm::check_extension(long cap) const noexcept { return ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap); }

int Vm::register_coalesced_mmio(uint64_t gpa, uint32_t size) noexcept {
    kvm_coalesced_mmio_zone zone{};
    zone.addr = gpa;
    zone.size = size;
    return xioctl(fd_.get(), KVM_REGISTER_COALESCED_MMIO, &zone) == 0 ? 0 : errno;
}

int Vm::ioeventfd(uint64_t gpa, uint32_t length, int fd, bool assign) noexcept {
    kvm_ioeventfd request{};
    request.addr = gpa;
    request.len = length;
    request.fd = fd;
    request.flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN;
    return xioctl(fd_.get(), KVM_IOEVENTFD, &request) == 0 ? 0 : errno;
}

void Vm::set_tss_addr(uint64_t addr) {
    if (xioctl(fd_.get(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(addr)) < 0) fail("KVM_SET_TSS_ADDR");
}

void Vm::set_identity_map_addr(uint64_t addr) {
    __u64 a = addr;
    if (xioctl(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, &a) < 0) fail("KVM_SET_IDENTITY_MAP_ADDR");
}

void Vm::create_irqchip() {
    if (xioctl(fd_.get(), KVM_CREATE_IRQCHIP, 0) < 0) fail("KVM_CREATE_IRQCHIP");
}

void Vm::create_pit() {
    kvm_pit_config cfg{};
    cfg.flags = KVM_PIT_SPEAKER_DUMMY;
    if (xioctl(fd_.get(), KVM_CREATE_PIT2, &cfg) < 0) fail("KVM_CREATE_PIT2");
}

void Vm::set_pc_gsi_routing(unsigned ioapic_pins) {
    std::vector<kvm_irq_routing_entry> entries;
    auto add = [&](uint32_t gsi, uint32_t chip, uint32_t pin) {
        kvm_irq_routing_entry e{};
        e.gsi = gsi;
        e.type = KVM_IRQ_ROUTING_IRQCHIP;
        e.u.irqchip.irqchip = chip;
        e.u.irqchip.pin = pin;
        entries.push_back(e);
    };
    for (uint32_t gsi = 0; gsi < 16; ++gsi) {
        if (gsi == 2) continue;  // the slave PIC cascade
        add(gsi, gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, gsi % 8);
    }
    for (uint32_t gsi = 0; gsi < ioapic_pins; ++gsi) add(gsi, KVM_IRQCHIP_IOAPIC, gsi == 0 ? 2 : gsi);
    auto buf = flex_buffer(static_cast<uint32_t>(entries.size()), entries.data());
    auto* r = buf.data();
    if (xioctl(fd_.get(), kSetGsiRouting, r) < 0) fail("KVM_SET_GSI_ROUTING");
}

void Vm::set_memory(uint32_t slot, uint64_t gpa, uint64_t size, void* host, bool read_only) {
    kvm_userspace_memory_region region{};
    region.slot = slot;
    region.flags = read_only ? KVM_MEM_READONLY : 0;
    region.guest_phys_addr = gpa;
    region.memory_size = size;
    region.userspace_addr = reinterpret_cast<uint64_t>(host);
    if (xioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region) < 0) fail("KVM_SET_USER_MEMORY_REGION");
}

bool Vm::irq_line(uint32_t gsi, bool level) noexcept {
    kvm_irq_level irq{};
    irq.irq = gsi;
    irq.level = level ? 1 : 0;
    return xioctl(fd_.get(), KVM_IRQ_LINE, &irq) == 0;
}

bool Vm::signal_msi(uint64_t address, uint32_t data) noexcept {
    kvm_msi msi{};
    msi.address_lo = static_cast<uint32_t>(address);
    msi.address_hi = static_cast<uint32_t>(address >> 32);
    msi.data = data;
    return xioctl(fd_.get(), KVM_SIGNAL_MSI, &msi) >= 0;
}

Vcpu::Vcpu(const Kvm& kvm, const Vm& vm, unsigned index) : index_(index) {
    int fd = xioctl(vm.fd(), KVM_CREATE_VCPU, static_cast<unsigned long>(index));
    if (fd < 0) fail("KVM_CREATE_VCPU");
    fd_.reset(fd);
    try {
        run_map_ = Mapping::of_fd(fd, kvm.vcpu_mmap_size());
    } catch (const std::runtime_error& e) {
        throw SetupError(kExitKvm, fmt::format("KVM: cannot map the kvm_run area of vCPU {}: {}", index, e.what()));
    }
}

void Vcpu::set_cpuid(const std::vector<kvm_cpuid_entry2>& entries) {
    auto buf = flex_buffer(static_cast<uint32_t>(entries.size()), entries.data());
    auto* c = buf.data();
    if (xioctl(fd_.get(), kSetCpuid2, c) < 0) fail("KVM_SET_CPUID2");
}

bool Vcpu::get_regs(kvm_regs& regs) const noexcept { return xioctl(fd_.get(), KVM_GET_REGS, &regs) == 0; }
bool Vcpu::get_sregs(kvm_sregs& sregs) const noexcept { return xioctl(fd_.get(), KVM_GET_SREGS, &sregs) == 0; }

void Vcpu::set_regs(const kvm_regs& regs) {
    if (xioctl(fd_.get(), KVM_SET_REGS, &regs) < 0) fail("KVM_SET_REGS");
}

void Vcpu::set_sregs(const kvm_sregs& sregs) {
    if (xioctl(fd_.get(), KVM_SET_SREGS, &sregs) < 0) fail("KVM_SET_SREGS");
}

int Vcpu::set_msrs(std::span<const std::pair<uint32_t, uint64_t>> msrs) noexcept {
    constexpr size_t kMax = 8;
    alignas(8) uint8_t buffer[kFlexHeader + kMax * sizeof(kvm_msr_entry)] = {};
    if (msrs.size() > kMax) return -E2BIG;
    const auto count = static_cast<uint32_t>(msrs.size());
    std::memcpy(buffer, &count, sizeof count);
    for (size_t i = 0; i < msrs.size(); ++i) {
        const kvm_msr_entry entry{msrs[i].first, 0, msrs[i].second};
        std::memcpy(buffer + kFlexHeader + i * sizeof entry, &entry, sizeof entry);
    }
    // KVM_SET_MSRS returns how many it set, in order: fewer means KVM refused the next one.
    const int set = xioctl(fd_.get(), kSetMsrs, buffer);
    return set < 0 ? -errno : set;
}

void Vcpu::set_lapic_virtual_wire() {
    // LVT LINT0 at 0x350, LINT1 at 0x360 (Intel SDM Vol. 3 §11.5.1): delivery mode in bits 10:8
    // (ExtINT 0x700, NMI 0x400), unmasked (bit 16 clear), edge-triggered.
    constexpr size_t kLint0 = 0x350, kLint1 = 0x360;
    constexpr uint32_t kExtInt = 0x700, kNmi = 0x400;
    kvm_lapic_state lapic{};
    if (xioctl(fd_.get(), KVM_GET_LAPIC, &lapic) < 0) fail("KVM_GET_LAPIC");
    std::memcpy(lapic.regs + kLint0, &kExtInt, 4);
    std::memcpy(lapic.regs + kLint1, &kNmi, 4);
    if (xioctl(fd_.get(), KVM_SET_LAPIC, &lapic) < 0) fail("KVM_SET_LAPIC");
}

bool Vcpu::translate(uint64_t linear, uint64_t& physical) const noexcept {
    kvm_translation t{};
    t.linear_address = linear;
    if (xioctl(fd_.get(), KVM_TRANSLATE, &t) != 0 || !t.valid) return false;
    physical = t.physical_address;
    return true;
}

void KvmIrqLine::set(bool level) noexcept {
    if (!vm_.irq_line(gsi_, level)) log::debug("KVM_IRQ_LINE gsi {} failed: {}", gsi_, std::strerror(errno));
}

void KvmMsiSink::signal(uint64_t address, uint32_t data) noexcept {
    if (!vm_.signal_msi(address, data))
        log::debug("KVM_SIGNAL_MSI {:#x}/{:#x} failed: {}", address, data, std::strerror(errno));
}

}  // namespace minivmm
