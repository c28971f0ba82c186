// The Linux boot protocol side of -kernel (firmware/linux_boot.hpp) on synthetic bzImages, and the
// boot ROM (firmware/linux_boot_rom.S) as SeaBIOS checks it (src/optionroms.c is_valid_rom,
// get_pnp_rom) and as the BEV must behave. No KVM.
#include <doctest/doctest.h>

#include <cstring>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "devices/device.hpp"
#include "devices/linux_boot_port.hpp"
#include "firmware/linux_boot.hpp"
#include "firmware/linux_boot_rom.hpp"
#include "vmm/base/platform.hpp"

using namespace minivmm;
namespace lb = minivmm::linux_boot;

namespace {

// A bzImage as boot.rst describes it: `sects` setup sectors after the boot sector, the header
// fields a loader reads, then `payload` bytes of protected-mode kernel.
// Relocatable, running at pref_address 16 MiB aligned to 2 MiB, as x86-64 kernels are built.
std::vector<uint8_t> bzimage(uint16_t protocol = 0x020F, uint8_t sects = 27, size_t payload = 0x40000,
                             uint32_t init_size = 0x100000, uint32_t initrd_max = 0x7FFFFFFF,
                             uint64_t pref = 16ull << 20, uint8_t relocatable = 1) {
    const size_t setup = ((sects == 0 ? 4u : sects) + 1u) * 512;  // setup_sects 0 means 4
    std::vector<uint8_t> k(setup + payload, 0);
    auto put = [&](size_t at, size_t n, uint64_t v) { store_le(std::span(k).subspan(at, n), v); };
    k[lb::hdr::kSetupSects] = sects;
    put(lb::hdr::kBootFlag, 2, 0xAA55);
    put(lb::hdr::kHeader, 4, 0x53726448);  // "HdrS"
    put(lb::hdr::kVersion, 2, protocol);
    k[lb::hdr::kLoadFlags] = lb::hdr::kLoadedHigh;
    put(lb::hdr::kInitrdAddrMax, 4, initrd_max);
    put(lb::hdr::kCmdlineSize, 4, 2047);
    put(lb::hdr::kInitSize, 4, init_size);
    put(lb::hdr::kSysSize, 4, payload / 16);
    put(lb::hdr::kPrefAddress, 8, pref);
    put(lb::hdr::kKernelAlignment, 4, 2u << 20);
    k[lb::hdr::kRelocatableKernel] = relocatable;
    for (size_t i = setup; i < k.size(); ++i) k[i] = static_cast<uint8_t>(i * 7);
    return k;
}

uint64_t field(const std::vector<uint8_t>& setup, size_t at, size_t n) { return load_le(std::span(setup).subspan(at, n)); }

std::string error_of(const std::vector<uint8_t>& kernel, uint64_t initrd, const std::string& cmdline, uint64_t ram) {
    try {
        lb::plan(kernel, initrd, cmdline, ram);
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "";
}

constexpr uint64_t kRam = 512ull << 20;

}  // namespace

TEST_CASE("a bzImage is placed as the boot protocol says and its header filled in") {
    const auto k = bzimage();
    const lb::Plan p = lb::plan(k, 5'000'000, "console=ttyS0", kRam);
    CHECK(p.protocol == 0x020F);
    CHECK(p.setup.size() == 28 * 512);
    CHECK(p.kernel_offset == 28 * 512);
    CHECK(p.kernel_size == 0x40000);
    CHECK(p.kernel_end == (16u << 20) + 0x100000);  // init_size from the runtime start, pref_address
    // The initrd: page-aligned, ending below SeaBIOS's 16 MiB of tables, as high as possible.
    CHECK(p.initrd_addr % 4096 == 0);
    CHECK(p.initrd_addr + p.initrd_size <= kRam - lb::kFirmwareReserve);
    CHECK(p.initrd_addr + p.initrd_size > kRam - lb::kFirmwareReserve - 4096);
    CHECK(p.initrd_size == 5'000'000);
    CHECK(p.setup[lb::hdr::kTypeOfLoader] == lb::kLoaderType);
    CHECK(p.setup[lb::hdr::kLoadFlags] == (lb::hdr::kLoadedHigh | lb::hdr::kCanUseHeap));
    CHECK(field(p.setup, lb::hdr::kHeapEndPtr, 2) == 0xFE00);
    CHECK(field(p.setup, lb::hdr::kCmdLinePtr, 4) == lb::kCmdlineAddr);
    CHECK(field(p.setup, lb::hdr::kCode32Start, 4) == lb::kKernelAddr);
    CHECK(field(p.setup, lb::hdr::kRamdiskImage, 4) == p.initrd_addr);
    CHECK(field(p.setup, lb::hdr::kRamdiskSize, 4) == p.initrd_size);
    // Without an initrd both fields are 0; setup_sects 0 means 4.
    const lb::Plan none = lb::plan(bzimage(0x020F, 0), 0, "", kRam);
    CHECK(none.setup.size() == 5 * 512);
    CHECK(none.initrd_addr == 0);
    CHECK(field(none.setup, lb::hdr::kRamdiskImage, 4) == 0);
}

TEST_CASE("init_size counts from the kernel's runtime start (boot.rst)") {
    // Relocatable with pref_address below the alignment: the load address 1 MiB aligned up to 2 MiB.
    CHECK(lb::plan(bzimage(0x020F, 27, 0x40000, 0x300000, 0x7FFFFFFF, 0x100000), 0, "", kRam).kernel_end == 0x500000);
    // Not relocatable: it runs at pref_address.
    CHECK(lb::plan(bzimage(0x020F, 27, 0x40000, 0x300000, 0x7FFFFFFF, 0x1000000, 0), 0, "", kRam).kernel_end ==
          0x1300000);
    // Before 2.10 there is no init_size: the file's kernel is what counts.
    CHECK(lb::plan(bzimage(0x0209), 0, "", kRam).kernel_end == lb::kKernelAddr + 0x40000);
    // A payload larger than init_size still counts whole.
    CHECK(lb::plan(bzimage(0x020F, 27, 0x2000000, 0x100000, 0x7FFFFFFF, 0x100000), 0, "", kRam).kernel_end ==
          lb::kKernelAddr + 0x2000000);
}

TEST_CASE("the initrd respects the kernel's initrd_addr_max") {
    const lb::Plan p = lb::plan(bzimage(0x020F, 27, 0x40000, 0x100000, 0x0FFFFFFF), 0x200000, "", 1ull << 30);
    CHECK(p.initrd_addr + p.initrd_size <= 0x10000000);
    CHECK(p.initrd_addr == 0x10000000 - 0x200000);
}

TEST_CASE("kernels the boot protocol does not allow get one clear line") {
    auto k = bzimage();
    auto no_hdrs = k;
    no_hdrs[lb::hdr::kHeader] = 'X';
    CHECK(error_of(no_hdrs, 0, "", kRam).find("not a Linux bzImage") != std::string::npos);
    CHECK(error_of(std::vector<uint8_t>(100, 0), 0, "", kRam).find("not a Linux bzImage") != std::string::npos);
    CHECK(error_of(bzimage(0x0205), 0, "", kRam) ==
          "the kernel's boot protocol 2.05 is older than 2.06, the oldest minivmm boots");
    auto zimage = k;
    zimage[lb::hdr::kLoadFlags] = 0;
    CHECK(error_of(zimage, 0, "", kRam).find("a zImage") != std::string::npos);
    auto truncated = k;
    truncated.resize(20 * 512);
    CHECK(error_of(truncated, 0, "", kRam).find("ends inside its") != std::string::npos);
    auto short_kernel = k;
    short_kernel.resize(short_kernel.size() - 16);  // syssize says 16 bytes more
    CHECK(error_of(short_kernel, 0, "", kRam) ==
          "the kernel file is truncated: its header says 262144 bytes of kernel, the file has 262128");
    auto big_setup = bzimage(0x020F, 70);
    CHECK(error_of(big_setup, 0, "", kRam).find("more than 32 KiB") != std::string::npos);
    // cmdline_size is the longest line without its NUL.
    CHECK(error_of(k, 0, std::string(2048, 'a'), kRam).find("this kernel accepts at most 2047") != std::string::npos);
    CHECK(error_of(k, 0, std::string(2047, 'a'), kRam).empty());
    CHECK(error_of(k, 0, std::string("a\0b", 3), kRam) == "the command line contains a NUL byte");
}

TEST_CASE("a kernel or initrd too large for the guest's RAM is refused") {
    // 64 MiB of RAM: 16 MiB for SeaBIOS leaves 48; the kernel runs at 16 MiB and needs 1 MiB there.
    constexpr uint64_t small = 64ull << 20;
    const std::string kernel = error_of(bzimage(0x020F, 27, 0x40000, 40u << 20), 0, "", small);
    CHECK(kernel.find("the kernel needs 55.0 MiB from 1 MiB up, more than the guest's 47.0 MiB") != std::string::npos);
    CHECK(kernel.find("-m") != std::string::npos);
    const std::string initrd = error_of(bzimage(), 32ull << 20, "", small);
    CHECK(initrd.find("the initrd (32.0 MiB) does not fit") != std::string::npos);
    CHECK(initrd.find("-m") != std::string::npos);
    CHECK(error_of(bzimage(), 31ull << 20, "", small).empty());  // 48 MiB usable - 17 MiB kernel end
    CHECK(error_of(bzimage(), 1, "", 16ull << 20).find("too little RAM") != std::string::npos);
}

TEST_CASE("load_into puts every piece where the plan says, and refuses ranges outside RAM") {
    const auto k = bzimage();
    const std::vector<uint8_t> initrd(300'000, 0x5A);
    const lb::Plan p = lb::plan(k, initrd.size(), "root=/dev/vda quiet", 64ull << 20);
    std::vector<uint8_t> ram(64ull << 20, 0xEE);
    const GuestMemory memory({{0, ram.size(), ram.data()}});
    REQUIRE(lb::load_into(memory, p, k, initrd, "root=/dev/vda quiet"));
    CHECK(std::memcmp(ram.data() + lb::kRealModeAddr, p.setup.data(), p.setup.size()) == 0);
    CHECK(std::string(reinterpret_cast<const char*>(ram.data() + lb::kCmdlineAddr)) == "root=/dev/vda quiet");
    CHECK(std::memcmp(ram.data() + lb::kKernelAddr, k.data() + p.kernel_offset, p.kernel_size) == 0);
    CHECK(std::memcmp(ram.data() + p.initrd_addr, initrd.data(), initrd.size()) == 0);
    // A smaller guest than planned for, or other files than planned with: nothing is claimed loaded.
    std::vector<uint8_t> tiny(1 << 20);
    CHECK_FALSE(lb::load_into(GuestMemory({{0, tiny.size(), tiny.data()}}), p, k, initrd, ""));
    CHECK_FALSE(lb::load_into(memory, p, k, std::vector<uint8_t>(10), ""));
}

TEST_CASE("the boot ROM is a valid PnP option ROM whose BEV asks minivmm's port and enters the kernel") {
    const auto rom = linux_boot_rom();
    REQUIRE(rom.size() >= 512);
    CHECK(rom.size() % 512 == 0);
    CHECK(rom[0] == 0x55);
    CHECK(rom[1] == 0xAA);
    CHECK(rom[2] * 512u == rom.size());
    CHECK(std::accumulate(rom.begin(), rom.end(), 0u) % 256 == 0);
    CHECK(rom[3] == 0xCB);  // the init entry returns at once (lret)
    const uint16_t pnp = static_cast<uint16_t>(load_le(rom.subspan(0x1A, 2)));
    REQUIRE(pnp + 32u <= rom.size());
    CHECK(std::memcmp(rom.data() + pnp, "$PnP", 4) == 0);
    CHECK(std::accumulate(rom.begin() + pnp, rom.begin() + pnp + 32, 0u) % 256 == 0);
    const uint16_t bev = static_cast<uint16_t>(load_le(rom.subspan(pnp + 0x1A, 2)));
    const uint16_t product = static_cast<uint16_t>(load_le(rom.subspan(pnp + 0x10, 2)));
    CHECK(std::string(reinterpret_cast<const char*>(rom.data() + product)) == "Linux kernel (-kernel)");
    REQUIRE(bev + 32u < rom.size());
    // cli; cld; mov $0x520,%dx; mov $1,%al; out %al,(%dx); in (%dx),%al
    const std::vector<uint8_t> ask = {0xFA, 0xFC, 0xBA, platform::kLinuxBootPort & 0xFF, platform::kLinuxBootPort >> 8,
                                      0xB0, LinuxBootPort::kRequest, 0xEE, 0xEC};
    CHECK(std::equal(ask.begin(), ask.end(), rom.begin() + bev));
    // ... test %al; jnz failed; DS = ES = FS = GS = SS = 0x1000, SP 0xFFF0, far jump to 0x1020:0000
    // (boot.rst "RUNNING THE KERNEL"); failed: sti; lret (SeaBIOS tries the next boot entry).
    const std::vector<uint8_t> enter = {0x84, 0xC0, 0x75, 0x15, 0xB8, 0x00, 0x10, 0x8E, 0xD8, 0x8E, 0xC0, 0x8E, 0xE0,
                                        0x8E, 0xE8, 0x8E, 0xD0, 0xBC, 0xF0, 0xFF, 0xEA, 0x00, 0x00, 0x20, 0x10,
                                        0xFB, 0xCB};
    CHECK(std::equal(enter.begin(), enter.end(), rom.begin() + bev + static_cast<ptrdiff_t>(ask.size())));
}

TEST_CASE("the boot port loads once per power-on and reports the result") {
    int loads = 0;
    bool result = true;
    LinuxBootPort port([&] {
        ++loads;
        return result;
    });
    uint8_t v = 0;
    port.read(0, std::span(&v, 1));
    CHECK(v == LinuxBootPort::kIdle);
    const uint8_t other = 7, request = LinuxBootPort::kRequest;
    port.write(0, std::span(&other, 1));
    CHECK(loads == 0);
    port.write(0, std::span(&request, 1));
    port.read(0, std::span(&v, 1));
    CHECK(loads == 1);
    CHECK(v == LinuxBootPort::kLoaded);
    port.write(0, std::span(&request, 1));  // the OS, or the ROM entered again: refused, nothing reloaded
    port.read(0, std::span(&v, 1));
    CHECK(loads == 1);
    CHECK(v == LinuxBootPort::kRefused);

    LinuxBootPort failing([] { return false; });
    failing.write(0, std::span(&request, 1));
    failing.read(0, std::span(&v, 1));
    CHECK(v == LinuxBootPort::kFailed);
}

TEST_CASE("the boot port's state: a restored port reports the result and refuses a second load") {
    int loads = 0;
    LinuxBootPort port([&] { return ++loads > 0; });
    const uint8_t request = LinuxBootPort::kRequest;
    port.write(0, std::span(&request, 1));
    LinuxBootPort restored([&] { return ++loads > 0; });
    REQUIRE(restored.load_state(saved_state(port)));
    uint8_t v = 0;
    restored.read(0, std::span(&v, 1));
    CHECK(v == LinuxBootPort::kLoaded);
    restored.write(0, std::span(&request, 1));
    restored.read(0, std::span(&v, 1));
    CHECK(v == LinuxBootPort::kRefused);
    CHECK(loads == 1);

    // Idle with a request, a result without one, bad version, short, trailing: refused, unchanged.
    LinuxBootPort fresh([&] { return ++loads > 0; });
    for (const auto& bad : {std::vector<uint8_t>{1, 1, LinuxBootPort::kIdle}, std::vector<uint8_t>{1, 0, LinuxBootPort::kLoaded},
                            std::vector<uint8_t>{1, 1, 0x03}, std::vector<uint8_t>{2, 1, 0}, std::vector<uint8_t>{1, 1},
                            std::vector<uint8_t>{1, 0, LinuxBootPort::kIdle, 0}, std::vector<uint8_t>{1, 2, 0}}) {
        CHECK_FALSE(fresh.load_state(bad));
        CHECK(saved_state(fresh) == std::vector<uint8_t>{1, 0, LinuxBootPort::kIdle});
    }
    CHECK(fresh.load_state(std::vector<uint8_t>{1, 1, LinuxBootPort::kFailed}));
    fresh.read(0, std::span(&v, 1));
    CHECK(v == LinuxBootPort::kFailed);
    CHECK(loads == 1);
}

TEST_CASE("an ELF vmlinux's plan: the initrd as high as below the firmware reserve, above the kernel") {
    const lb::Plan p = lb::plan_elf(0x4A0'0000, 0x100'0123, "console=ttyS0", kRam);
    CHECK(p.setup.empty());
    CHECK(p.initrd_size == 0x100'0123);
    CHECK(p.initrd_addr % 0x1000 == 0);
    CHECK(p.initrd_addr + p.initrd_size <= kRam - lb::kFirmwareReserve);
    CHECK(p.initrd_addr >= 0x4A0'0000);
    CHECK(lb::plan_elf(0x4A0'0000, 0, std::string(lb::kElfCmdlineMax, 'x'), kRam).initrd_addr == 0);
    auto error = [](uint64_t end, uint64_t initrd, const std::string& line, uint64_t ram) {
        try {
            lb::plan_elf(end, initrd, line, ram);
        } catch (const std::invalid_argument& e) {
            return std::string(e.what());
        }
        return std::string();
    };
    CHECK(error(0x4A0'0000, 0, std::string(lb::kElfCmdlineMax + 1, 'x'), kRam).find("at most 2047") != std::string::npos);
    CHECK(error(0x4A0'0000, kRam, "", kRam).find("the initrd") == 0);
    CHECK(error(kRam, 0, "", kRam).find("more than the guest's") != std::string::npos);
    CHECK(error(0x4A0'0000, 0, std::string("a\0b", 3), kRam).find("NUL") != std::string::npos);
}
