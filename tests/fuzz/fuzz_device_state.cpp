// libFuzzer target for the snapshot blobs of device state (devices/device_state.hpp): a snapshot
// is a file a user may be handed. The first byte picks the device (UART, CMOS/RTC, ACPI PM block,
// reset control, A20 gate, fw_cfg, boot marker, -kernel boot port, PCI host, MSI-X table,
// virtqueue, virtio-blk), the rest is the blob given to a fresh device's load_state. For the PCI
// host and virtio-blk, whose blobs hold a 256-byte config image, an odd second byte instead XORs
// the rest onto a blob the device saved after a guest drove it (bit 1: cut it to the input's
// length), so the fuzzer starts from valid blobs.
// Checks: a refused blob leaves the device exactly as it was (its own saved state unchanged, no IRQ
// edge); an accepted blob saves back byte for byte (the encoding has one spelling per state), and
// the device then survives register accesses of every kind (ASan/UBSan watch the indexes the blob
// set: the FIFO head and count, the CMOS index, the held date).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "devices/acpi_pm.hpp"
#include "devices/boot_marker.hpp"
#include "devices/bus.hpp"
#include "devices/cmos.hpp"
#include "devices/device_state.hpp"
#include "devices/fw_cfg.hpp"
#include "devices/linux_boot_port.hpp"
#include "devices/msix.hpp"
#include "devices/pci_host.hpp"
#include "devices/reset_control.hpp"
#include "devices/uart16550.hpp"
#include "devices/virtio_blk.hpp"
#include "devices/virtqueue.hpp"

using namespace minivmm;

namespace {

struct CountingIrq : IrqLine {
    int edges = 0;
    void set(bool) noexcept override { ++edges; }
};

struct NullSink : ByteSink {
    void write(std::span<const uint8_t>) noexcept override {}
};

struct CountingSystem : SystemControl {
    int requests = 0;
    void request_reset() noexcept override { ++requests; }
    void request_poweroff() noexcept override { ++requests; }
};

struct CountingMsi : MsiSink {
    int messages = 0;
    void signal(uint64_t, uint32_t) noexcept override { ++messages; }
};

struct CountingMark : BootMarkSink {
    int marks = 0;
    void guest_marked() noexcept override { ++marks; }
};

struct ZeroDisk : BlockBackend {
    uint64_t size() const noexcept override { return 64 * 512; }
    bool read_only() const noexcept override { return false; }
    bool read(uint64_t, std::span<uint8_t> d) noexcept override {
        std::fill(d.begin(), d.end(), uint8_t{0});
        return true;
    }
    bool write(uint64_t, std::span<const uint8_t>) noexcept override { return true; }
    bool flush() noexcept override { return true; }
};

// Guest RAM for the devices that reach it: 64 KiB at 0 and 64 KiB at 4 GiB (a DMA high half).
struct Ram {
    std::vector<uint8_t> low = std::vector<uint8_t>(0x10000), high = std::vector<uint8_t>(0x10000);
    GuestMemory memory{{{0, low.size(), low.data()}, {0x1'0000'0000, high.size(), high.data()}}};
};

void check(bool ok) {
    if (!ok) std::abort();
}

void fuzz_uart(std::span<const uint8_t> blob) {
    CountingIrq irq;
    NullSink out;
    Uart16550 u(irq, &out);
    const std::vector<uint8_t> before = saved_state(u);
    if (!u.load_state(blob)) {
        check(saved_state(u) == before && irq.edges == 0);
        return;
    }
    check(saved_state(u) == std::vector<uint8_t>(blob.begin(), blob.end()));
    uint8_t v = 0;
    for (int round = 0; round < 20; ++round)
        for (uint64_t off = 0; off < Uart16550::kSize; ++off) u.read(off, std::span(&v, 1));
    const uint8_t input[] = {'a', 'b', 'c'};
    u.receive(input);
    u.write(0, std::span<const uint8_t>(input, 1));
}

void fuzz_cmos(std::span<const uint8_t> blob) {
    Cmos cmos({512ull << 20, 0, 1}, [] { return int64_t{1'700'000'000}; });
    const std::vector<uint8_t> before = saved_state(cmos);
    if (!cmos.load_state(blob)) {
        check(saved_state(cmos) == before);
        return;
    }
    check(saved_state(cmos) == std::vector<uint8_t>(blob.begin(), blob.end()));
    uint8_t v = 0;
    cmos.read(1, std::span(&v, 1));  // the restored index
    for (uint8_t index = 0; index < cmos::kRamSize; ++index) {
        cmos.write(0, std::span<const uint8_t>(&index, 1));
        cmos.read(1, std::span(&v, 1));
    }
    // SET off then on: the held date is encoded, and the offset turned into a time.
    const uint8_t b = cmos::kStatusB, set = cmos::kRegBSet | cmos::kRegB24Hour, run = cmos::kRegB24Hour;
    for (uint8_t value : {set, run, set}) {
        cmos.write(0, std::span<const uint8_t>(&b, 1));
        cmos.write(1, std::span<const uint8_t>(&value, 1));
        for (uint8_t index : {cmos::kSeconds, cmos::kHours, cmos::kDayOfMonth, cmos::kMonth, cmos::kYear, cmos::kCentury}) {
            cmos.write(0, std::span<const uint8_t>(&index, 1));
            cmos.read(1, std::span(&v, 1));
        }
    }
}

// A device with no side channel: refused leaves it as it was, accepted saves back the same bytes,
// and loading never resets or powers off the machine; then every register is read and written.
template <typename D>
void fuzz_simple(D& device, CountingSystem& system, std::span<const uint8_t> blob, uint64_t size) {
    const std::vector<uint8_t> before = saved_state(device);
    if (!device.load_state(blob)) {
        check(saved_state(device) == before);
    } else {
        check(saved_state(device) == std::vector<uint8_t>(blob.begin(), blob.end()));
        uint8_t v[4] = {};
        for (uint64_t off = 0; off < size; ++off) device.read(off, std::span(v, 1));
        if (size >= 4) device.read(0, std::span(v, 4));
    }
    check(system.requests == 0);
}

// The blob to load: the input as is, or (odd first byte) XORed onto `valid`.
std::vector<uint8_t> blob_from(std::span<const uint8_t> in, const std::vector<uint8_t>& valid) {
    if (in.empty() || !(in[0] & 1)) return {in.begin(), in.end()};
    std::vector<uint8_t> out = valid;
    const auto patch = in.subspan(1);
    for (size_t i = 0; i < patch.size() && !out.empty(); ++i) out[i % out.size()] ^= patch[i];
    if ((in[0] & 2) && patch.size() < out.size()) out.resize(patch.size());
    return out;
}

void fuzz_fw_cfg(std::span<const uint8_t> blob) {
    Ram ram;
    FwCfg fw(ram.memory);
    fw.add_item(fw_cfg::kNbCpus, {1, 0});
    fw.add_file("etc/ro", {1, 2, 3});
    const uint16_t rw = fw.add_writable_file("etc/rw", 8);
    const std::vector<uint8_t> before = saved_state(fw);
    if (!fw.load_state(blob)) {
        check(saved_state(fw) == before);
        return;
    }
    check(saved_state(fw) == std::vector<uint8_t>(blob.begin(), blob.end()));
    uint8_t v = 0;
    for (int i = 0; i < 16; ++i) fw.read(fw_cfg::kDataOffset, std::span(&v, 1));  // from the loaded offset
    // A DMA write of the writable file from the loaded offset, then a descriptor at the loaded high half.
    const uint32_t control = fw_cfg::kDmaWrite, length = 4;
    const uint8_t desc[16] = {uint8_t(control >> 24), uint8_t(control >> 16), uint8_t(control >> 8), uint8_t(control),
                              0, 0, 0, uint8_t(length), 0, 0, 0, 0, 0, 0, 0x10, 0};
    std::copy(std::begin(desc), std::end(desc), ram.low.begin() + 0x100);
    std::copy(std::begin(desc), std::end(desc), ram.high.begin() + 0x100);
    const uint8_t lo[4] = {0, 0, 1, 0};
    fw.write(fw_cfg::kDmaLowOffset, lo);
    check(fw.contents(rw).size() == 8);
}

void fuzz_pci_host(std::span<const uint8_t> in) {
    Bus pio("pio"), mmio("mmio");
    std::vector<uint8_t> valid;
    {
        PciHost driven(pio, mmio);
        const uint8_t cmd[4] = {0x07, 0, 0, 0}, addr[4] = {0x3C, 0, 0, 0x80};
        driven.write(0, std::span<const uint8_t>(addr, 4));
        driven.write(4, std::span<const uint8_t>(cmd, 1));  // interrupt line
        valid = saved_state(driven);
    }
    PciHost host(pio, mmio);
    const std::vector<uint8_t> blob = blob_from(in, valid), before = saved_state(host);
    if (!host.load_state(blob)) {
        check(saved_state(host) == before);
        return;
    }
    check(saved_state(host) == blob);
    uint8_t v[4] = {};
    for (uint64_t off = 0; off < PciHost::kPortSize; ++off) host.read(off, std::span(v, 1));
    host.read(4, std::span(v, 4));
}

void fuzz_msix(std::span<const uint8_t> blob) {
    CountingMsi msi;
    MsixTable table(3, msi);
    const std::vector<uint8_t> before = saved_state(table);
    if (!table.load_state(blob)) {
        check(saved_state(table) == before && msi.messages == 0);
        return;
    }
    check(saved_state(table) == std::vector<uint8_t>(blob.begin(), blob.end()) && msi.messages == 0);
    uint8_t v[8] = {};
    table.read_pba(0, v);
    for (uint16_t vec = 0; vec < 4; ++vec) table.notify(vec);
    table.set_control(true, false);
    const uint8_t unmask[4] = {};
    for (uint64_t e = 0; e < 3; ++e) table.write_table(e * MsixTable::kEntrySize + 12, unmask);
}

void fuzz_virtqueue(std::span<const uint8_t> blob) {
    Ram ram;
    Virtqueue vq(ram.memory, 64);
    const std::vector<uint8_t> before = saved_state(vq);
    if (!vq.load_state(blob)) {
        check(saved_state(vq) == before);
        return;
    }
    check(saved_state(vq) == std::vector<uint8_t>(blob.begin(), blob.end()));
    ram.low[0x2002] = 1;  // avail idx 1, in case the loaded ring is there
    Virtqueue::Chain chain;
    for (int i = 0; i < 4; ++i)
        if (vq.pop(chain) == Virtqueue::PopStatus::chain) vq.push(chain.head, 0);
    vq.interrupt_suppressed();
}

void fuzz_virtio_blk(std::span<const uint8_t> in) {
    Ram ram;
    ZeroDisk disk;
    CountingIrq irq;
    CountingMsi msi;
    std::vector<uint8_t> valid;
    {
        VirtioBlk driven(ram.memory, disk, irq, msi);
        const uint8_t bar0[4] = {0, 0, 0, 0xFE}, msix_on[2] = {0, 0x80}, cmd[2] = {0x06, 0};
        driven.config_write(pci::kBar0, bar0);
        driven.config_write(pci::kCommand, cmd);
        driven.config_write(static_cast<uint16_t>(driven.msix_cap_offset() + 2), msix_on);
        valid = saved_state(driven);
        irq.edges = msi.messages = 0;
    }
    VirtioBlk blk(ram.memory, disk, irq, msi);
    const std::vector<uint8_t> blob = blob_from(in, valid), before = saved_state(blk);
    if (!blk.load_state(blob)) {
        check(saved_state(blk) == before && irq.edges == 0 && msi.messages == 0);
        return;
    }
    check(saved_state(blk) == blob && msi.messages == 0);
    blk.resume_queues();  // serves whatever the loaded rings hold, over zeroed RAM
    uint8_t v[4] = {};
    for (uint16_t reg = 0; reg < PciFunction::kConfigSize; reg += 4) blk.config_read(reg, std::span(v, 4));
    const uint8_t off[2] = {0, 0};
    blk.config_write(static_cast<uint16_t>(blk.msix_cap_offset() + 2), off);  // MSI-X off: INTx from the ISR
    blk.config_write(pci::kCommand, off);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const std::span<const uint8_t> blob(data + 1, size - 1);
    CountingSystem system;
    uint64_t clock = 5'000'000'000;
    switch (data[0] % 12) {
    case 0: fuzz_uart(blob); break;
    case 1: fuzz_cmos(blob); break;
    case 2: {
        AcpiPm pm(system, [&] { return clock; });
        fuzz_simple(pm, system, blob, AcpiPm::kSize);
        clock += 3'000'000'000;  // the timer goes on from the loaded ticks without overflow
        uint8_t v[4] = {};
        pm.read(0, std::span(v, 4));
        pm.read(AcpiPm::kTimerOffset, std::span(v, 4));
        break;
    }
    case 3: {
        ResetControl cf9(system);
        fuzz_simple(cf9, system, blob, ResetControl::kSize);
        break;
    }
    case 4: {
        A20Gate a20(system);
        fuzz_simple(a20, system, blob, A20Gate::kSize);
        break;
    }
    case 5: fuzz_fw_cfg(blob); break;
    case 6: {
        CountingMark sink;
        BootMarker marker(sink);
        fuzz_simple(marker, system, blob, BootMarker::kSize);
        const bool loaded_marked = marker.marked();
        const uint8_t mark = BootMarker::kValue;
        marker.write(0, std::span(&mark, 1));
        check(sink.marks == (loaded_marked ? 0 : 1));  // a loaded mark is not reported again
        break;
    }
    case 7: {
        int loads = 0;
        LinuxBootPort port([&] { return ++loads == 1; });
        fuzz_simple(port, system, blob, LinuxBootPort::kSize);
        const uint8_t request = LinuxBootPort::kRequest;
        port.write(0, std::span(&request, 1));
        check(loads <= 1);
        break;
    }
    case 8: fuzz_pci_host(blob); break;
    case 9: fuzz_msix(blob); break;
    case 10: fuzz_virtqueue(blob); break;
    default: fuzz_virtio_blk(blob); break;
    }
    return 0;
}
