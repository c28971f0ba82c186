// libFuzzer target for the vCPU exit handler and the PIO/MMIO buses. The input is a run-area
// size followed by exits: port I/O of any direction, size, port, count and data offset; MMIO of
// any address, length and direction; every other exit reason with any sub-code; and raw bytes
// written anywhere into the kvm_run area. The kvm_run area is a heap block of exactly the
// announced size, so AddressSanitizer catches any access past it. The buses hold recording
// devices (at odd sizes, at the top of the port and address spaces) and the real UART, CMOS,
// fw_cfg and PCI host.
// Checks: a device only sees 1..8-byte accesses wholly inside its range; an I/O exit reaches a
// device exactly `count` times or not at all; reads from unmapped space are all-ones; nothing in
// the kvm_run area changes outside the data of an input exit; malformed exits are fatal.
#include <linux/kvm.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "devices/cmos.hpp"
#include "devices/fw_cfg.hpp"
#include "devices/pci_host.hpp"
#include "devices/uart16550.hpp"
#include "tests/fuzz/fuzz_support.hpp"
#include "vmm/kvm/exit_handler.hpp"

using namespace minivmm;
using namespace minivmm::fuzz;

namespace {

// Reads produce a byte stream that depends on how many bytes this device has produced so far,
// so the fuzzer can predict exactly what an input exit must carry back.
class Recorder final : public Device {
public:
    explicit Recorder(uint64_t size) : size_(size) {}
    std::string_view name() const noexcept override { return "recorder"; }
    void read(uint64_t offset, std::span<uint8_t> data) noexcept override {
        accept(offset, data.size());
        for (uint8_t& b : data) b = next_byte(produced++);
    }
    void write(uint64_t offset, std::span<const uint8_t> data) noexcept override {
        accept(offset, data.size());
        volatile uint8_t sink = 0;
        for (uint8_t b : data) sink = sink ^ b;  // let ASan see every byte
    }
    static uint8_t next_byte(uint64_t n) { return static_cast<uint8_t>(0x5A ^ (n * 13)); }

    uint64_t accesses = 0;
    uint64_t produced = 0;

private:
    void accept(uint64_t offset, size_t n) {
        check(n >= 1 && n <= 8);
        check(offset < size_ && n <= size_ - offset);
        ++accesses;
    }
    uint64_t size_;
};

struct Machine {
    Bus pio{"pio"}, mmio{"mmio"};
    Recorder pio_low{1}, pio_odd{5}, pio_top{8};
    Recorder mem_low{0x10}, mem_tis{0x5000}, mem_top{0xFFF};
    EdgeCheckingIrq com_irq;
    Uart16550 uart{com_irq, nullptr};
    Cmos cmos{CmosConfig{512u << 20, 0, 1}, [] { return int64_t{1700000000}; }};
    std::vector<uint8_t> ram = std::vector<uint8_t>(0x1000);
    GuestMemory memory{{GuestRegion{0, 0x1000, ram.data()}}};
    FwCfg fw_cfg{memory};
    PciHost pci{pio, mmio};
    std::vector<Recorder*> recorders{&pio_low, &pio_odd, &pio_top, &mem_low, &mem_tis, &mem_top};

    Machine() {
        pio.insert(0x0, 1, pio_low);
        pio.insert(0x60, 5, pio_odd);
        pio.insert(0xFFF8, 8, pio_top);
        pio.insert(platform::kCom1Port, Uart16550::kSize, uart);
        pio.insert(platform::kCmosPort, 2, cmos);
        pio.insert(platform::kFwCfgPort, platform::kFwCfgPortSize, fw_cfg);
        pio.insert(PciHost::kPortBase, PciHost::kPortSize, pci);
        mmio.insert(0x0, 0x10, mem_low);
        mmio.insert(platform::kTpmTisBase, platform::kTpmTisSize, mem_tis);
        mmio.insert(0xFFFF'FFFF'FFFF'F000, 0xFFF, mem_top);
    }
    Recorder* recorder(Device* d) {
        for (Recorder* r : recorders)
            if (r == d) return r;
        return nullptr;
    }
};

uint16_t pick_port(Input& in) {
    static constexpr uint16_t kPorts[] = {0x0, 0x60, 0x63, 0x64, 0xFFF8, 0xFFFC, 0xFFFE, 0xFFFF,
                                          0x3F8, 0x3FD, 0x3FF, 0x70, 0x71, 0x510, 0x511, 0x514,
                                          0x518, 0x51B, 0xCF8, 0xCF9, 0xCFC, 0xCFE, 0xCFF, 0x402};
    constexpr size_t n = sizeof kPorts / sizeof kPorts[0];
    const uint8_t sel = in.u8();
    if (sel < n) return kPorts[sel];
    if (sel < 2 * n) return static_cast<uint16_t>(kPorts[sel - n] + (in.u8() & 7) - 4);
    return in.u16();
}

uint64_t pick_mmio(Input& in) {
    static constexpr uint64_t kAddrs[] = {0x0, 0x8, 0xF, 0xFED40000, 0xFED44FF8, 0xFED44FFF, 0xFED3FFFF,
                                          0xFFFF'FFFF'FFFF'F000, 0xFFFF'FFFF'FFFF'FFF8, 0xFFFF'FFFF'FFFF'FFFF,
                                          0xFFFF'FFFF'FFFF'FFFE, 0xFFFF'FFFF'FFFF'EFFF};
    constexpr size_t n = sizeof kAddrs / sizeof kAddrs[0];
    const uint8_t sel = in.u8();
    if (sel < n) return kAddrs[sel];
    if (sel < 2 * n) return kAddrs[sel - n] + in.u16();
    return in.u64();
}

uint64_t pick_data_offset(Input& in, size_t run_size) {
    const uint8_t sel = in.u8();
    switch (sel % 8) {
    case 0: case 1: case 2: return 4096;
    case 3: return sizeof(kvm_run);
    case 4: return run_size - (in.u8() % 16);
    case 5: return in.u16();
    case 6: return in.u64();
    default: return 4096 + in.u8();
    }
}

uint32_t pick_count(Input& in) {
    const uint8_t sel = in.u8();
    if (sel < 0xC0) return sel % 4 + (sel < 0x10 ? 0 : 1);
    if (sel < 0xF0) return in.u16();
    return in.u32();
}

void set_io_exit(kvm_run& run, size_t run_size, Input& in) {
    const uint8_t shape = in.u8();
    run.exit_reason = KVM_EXIT_IO;
    run.io.direction = (shape & 0x80) ? in.u8() : (shape & 1);
    static constexpr uint8_t kSizes[8] = {1, 2, 4, 1, 2, 4, 0, 3};
    run.io.size = (shape & 0x40) ? in.u8() : kSizes[(shape >> 1) & 7];
    run.io.port = pick_port(in);
    run.io.count = pick_count(in);
    run.io.data_offset = pick_data_offset(in, run_size);
    // OUT data from the input when it lies in the area.
    const uint64_t bytes = uint64_t{run.io.size} * run.io.count;
    if (run.io.data_offset <= run_size && bytes <= run_size - run.io.data_offset)
        in.fill(std::span<uint8_t>(reinterpret_cast<uint8_t*>(&run) + run.io.data_offset,
                                   static_cast<size_t>(std::min<uint64_t>(bytes, 64))));
}

void set_mmio_exit(Input& in, kvm_run& run) {
    const uint8_t shape = in.u8();
    run.exit_reason = KVM_EXIT_MMIO;
    run.mmio.phys_addr = pick_mmio(in);
    static constexpr uint32_t kLens[8] = {1, 2, 4, 8, 3, 0, 9, 8};
    run.mmio.len = (shape & 0x80) ? in.u32() : kLens[shape & 7];
    run.mmio.is_write = (shape & 0x40) ? in.u8() : ((shape >> 3) & 1);
    in.fill(std::span<uint8_t>(run.mmio.data, sizeof run.mmio.data));
}

void set_other_exit(Input& in, kvm_run& run) {
    static constexpr uint32_t kReasons[] = {KVM_EXIT_HLT, KVM_EXIT_INTR, KVM_EXIT_SHUTDOWN, KVM_EXIT_SYSTEM_EVENT,
                                            KVM_EXIT_INTERNAL_ERROR, KVM_EXIT_FAIL_ENTRY, KVM_EXIT_UNKNOWN,
                                            KVM_EXIT_EXCEPTION, KVM_EXIT_DEBUG, KVM_EXIT_HYPERCALL};
    const uint8_t sel = in.u8();
    run.exit_reason = sel < sizeof kReasons / sizeof kReasons[0] ? kReasons[sel] : in.u32();
    run.system_event.type = in.u8() % 6;
    run.internal.suberror = in.u8() % 6;
}

// Which bytes of the area an exit may change: the data of an input exit.
struct Window {
    uint64_t begin = 0, end = 0;
};

Window writable_window(const kvm_run& run, size_t run_size) {
    if (run.exit_reason == KVM_EXIT_IO && run.io.direction != KVM_EXIT_IO_OUT) {
        const uint64_t bytes = uint64_t{run.io.size} * run.io.count;
        if (run.io.data_offset <= run_size && bytes <= run_size - run.io.data_offset)
            return {run.io.data_offset, run.io.data_offset + bytes};
    }
    if (run.exit_reason == KVM_EXIT_MMIO && !run.mmio.is_write) {
        const uint64_t at = offsetof(kvm_run, mmio.data);
        return {at, at + std::min<uint64_t>(run.mmio.len, sizeof run.mmio.data)};
    }
    return {};
}

void check_io(const kvm_run& before, const uint8_t* area, ExitOutcome out, uint64_t accesses_before,
              uint64_t produced_before, Recorder* target) {
    const auto& io = before.io;
    const bool size_ok = io.size == 1 || io.size == 2 || io.size == 4;
    if (!size_ok) {
        check(out.action == ExitAction::fatal);
        return;
    }
    if (out.action != ExitAction::resume) {
        check(out.action == ExitAction::fatal && io.count != 0);
        return;
    }
    if (!target) return;
    // Every element reaches the device, one access each, in order.
    check(target->accesses - accesses_before == io.count);
    if (io.direction != KVM_EXIT_IO_OUT) {
        for (uint64_t i = 0; i < uint64_t{io.size} * io.count; ++i)
            check(area[io.data_offset + i] == Recorder::next_byte(produced_before + i));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Input in(data, size);
    static constexpr size_t kRunSizes[4] = {4096, 8192, 12288, sizeof(kvm_run)};
    const uint8_t config = in.u8();
    const size_t run_size = kRunSizes[config & 3] + ((config & 4) ? in.u8() : 0);
    auto area = std::make_unique<uint8_t[]>(run_size);
    auto snapshot = std::make_unique<uint8_t[]>(run_size);
    in.fill(std::span<uint8_t>(area.get(), std::min<size_t>(run_size, 64)));
    kvm_run& run = *reinterpret_cast<kvm_run*>(area.get());
    Machine m;

    for (unsigned exits = 0; !in.empty() && exits < 256; ++exits) {
        const uint8_t op = in.u8();
        switch (op % 8) {
        case 0: case 1: case 2: set_io_exit(run, run_size, in); break;
        case 3: case 4: set_mmio_exit(in, run); break;
        case 5: set_other_exit(in, run); break;
        default: {  // raw bytes anywhere in the area; the exit is whatever they make it
            const size_t at = in.u16() % run_size;
            const size_t n = std::min<size_t>(in.u8() % 32, run_size - at);
            in.fill(std::span<uint8_t>(area.get() + at, n));
            break;
        }
        }
        std::memcpy(snapshot.get(), area.get(), run_size);
        const kvm_run before = run;

        // The device an I/O or MMIO exit addresses, if it is a recorder (predictable reads).
        Recorder* target = nullptr;
        if (run.exit_reason == KVM_EXIT_IO && (run.io.size == 1 || run.io.size == 2 || run.io.size == 4))
            target = m.recorder(m.pio.find(run.io.port, run.io.size).device);
        if (run.exit_reason == KVM_EXIT_MMIO && run.mmio.len >= 1 && run.mmio.len <= 8)
            target = m.recorder(m.mmio.find(run.mmio.phys_addr, run.mmio.len).device);
        uint64_t total_before = 0;
        for (Recorder* r : m.recorders) total_before += r->accesses;
        const uint64_t accesses_before = target ? target->accesses : 0;
        const uint64_t produced_before = target ? target->produced : 0;

        const ExitOutcome out = handle_exit(run, run_size, m.pio, m.mmio);

        check(out.reason != nullptr);
        check(out.action == ExitAction::resume || out.reason[0] != '\0');
        check(exit_reason_name(before.exit_reason) != nullptr);
        uint64_t total_after = 0;
        for (Recorder* r : m.recorders) total_after += r->accesses;
        const Window w = writable_window(before, run_size);
        if (w.begin == w.end) {
            check(std::memcmp(area.get(), snapshot.get(), run_size) == 0);
        } else {
            check(std::memcmp(area.get(), snapshot.get(), w.begin) == 0);
            check(std::memcmp(area.get() + w.end, snapshot.get() + w.end, run_size - w.end) == 0);
        }

        if (before.exit_reason == KVM_EXIT_IO) {
            check_io(before, area.get(), out, accesses_before, produced_before, target);
            if (!target || out.action != ExitAction::resume) check(total_after == total_before);
            // Unmapped input reads are all-ones.
            if (out.action == ExitAction::resume && before.io.direction != KVM_EXIT_IO_OUT &&
                !m.pio.find(before.io.port, before.io.size).device) {
                for (uint64_t i = w.begin; i < w.end; ++i) check(area[i] == 0xFF);
            }
        } else if (before.exit_reason == KVM_EXIT_MMIO) {
            const bool len_ok = before.mmio.len >= 1 && before.mmio.len <= 8;
            check(len_ok ? out.action == ExitAction::resume : out.action == ExitAction::fatal);
            check(total_after - total_before == (target && len_ok ? 1u : 0u));
            if (len_ok && !before.mmio.is_write) {
                for (uint32_t i = 0; i < before.mmio.len; ++i) {
                    const uint8_t expected = target ? Recorder::next_byte(produced_before + i) : 0xFF;
                    if (target || !m.mmio.find(before.mmio.phys_addr, before.mmio.len).device)
                        check(run.mmio.data[i] == expected);
                }
            }
        } else {
            check(total_after == total_before);
            switch (before.exit_reason) {
            case KVM_EXIT_HLT: case KVM_EXIT_INTR: check(out.action == ExitAction::resume); break;
            case KVM_EXIT_SHUTDOWN: check(out.action == ExitAction::reset); break;
            case KVM_EXIT_SYSTEM_EVENT: check(out.action != ExitAction::resume); break;
            default: check(out.action == ExitAction::fatal); break;
            }
        }
    }
    return 0;
}
