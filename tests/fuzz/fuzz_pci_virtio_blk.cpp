// libFuzzer target for the PCI host bridge, the virtio-pci transport, MSI-X and virtio-blk. The
// input is a configuration byte (disk size, read-only, failing backend) followed by operations:
// config-space accesses through 0xCF8/0xCFC of any size and register (BAR programming, COMMAND,
// MSI-X control, the PCI cfg access window), MMIO accesses of any size to both BARs through the
// MMIO bus, driver initialisation with any features and queue layout, raw guest-memory writes,
// descriptors with any address/length/flags/next (loops, overlaps, holes, indirect tables),
// avail-ring entries, whole block requests (well-formed or not), notifications, ISR reads,
// device resets (a machine reset builds new devices instead), and a second function with an I/O
// BAR and a 64-bit BAR programmed anywhere. Config bit 0x20 serves the queue as the VMM's I/O
// thread does (QueueNotifier, take / serve / finish), including a reset while a request is served.
// Guest RAM has holes and adjacent regions, each an exactly-sized heap block.
// Checks: the device writes guest memory only in the used ring and in buffers that some
// device-writable descriptor (direct or in an indirect table) names at some moment of the
// operation (the device's own writes may rewrite descriptors it uses next); the used index advances by
// at most a ring per operation and guest memory holds what the queue published; the backend is
// only asked for in-range I/O and never written when read-only; INTx is high only while the ISR
// is set and MSI-X/INTX_DISABLE are off; FEATURES_OK only with an acceptable feature set; identity
// registers stay read-only; a BAR is never left mapped at an address it no longer decodes; the
// notify address reported to the QueueNotifier is BAR0's on the bus; a completion of a request
// taken before a device reset never reaches the used ring.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "devices/pci_host.hpp"
#include "devices/virtio_blk.hpp"
#include "tests/fuzz/fuzz_support.hpp"
#include "tests/fuzz/pci_virtio_blk_fixtures.hpp"
#include "tests/fuzz/pci_virtio_blk_harness.hpp"
#include "tests/fuzz/write_confinement.hpp"
#include "devices/bus.hpp"
#include "vmm/base/platform.hpp"

using namespace minivmm;
using namespace minivmm::fuzz;
using namespace minivmm::fuzz::pci_blk;

namespace {

class Harness final : public HarnessBase {
public:
    using HarnessBase::HarnessBase;

    void step(Input& in) {
        const uint8_t op = in.u8();
        // Guest memory and queue state before the operation, for the write-confinement check.
        const bool queue_live = blk_.queue(0).enabled() && !blk_.queue(0).broken();
        tracking_ = queue_live;
        writes_.clear();
        if (queue_live) {
            ram_.snapshot(before_);
            writes_.allow_writable(blk_.queue(0));
        }
        const uint16_t count_before = blk_.queue(0).used_idx();

        switch (op % 16) {
        case 0: config_write(in, op); break;
        case 1: config_read(in, op); break;
        case 2: {
            const uint64_t b0 = (op & 0x10) ? pick_bar_address(in) : kDefaultBar0;
            const uint64_t b1 = (op & 0x20) ? pick_bar_address(in) : kDefaultBar1;
            program_bars(b0, b1, (op & 0x40) ? in.u16() : pci::kCommandMemory | pci::kCommandMaster);
            break;
        }
        case 3: case 4: mmio_access(in, op); break;
        case 5:
            driver_init(in, op);
            tracking_ = false;
            check_used(count_before);
            check_state();
            check_notify_base();
            return;
        case 6: {
            const uint64_t gpa = pick_gpa(in);
            std::vector<uint8_t> bytes = in.bytes(in.u8() % 32);
            poke(gpa, bytes);
            break;
        }
        case 7: put_descriptor(in, in.u16(), op); break;
        case 8: push_avail(in.u16()); break;
        case 9: notify((op & 0x10) ? in.u16() : 0); break;
        case 10: msix(in, op); break;
        case 11: cfg_window(in, op); break;
        case 12:
            switch ((op >> 4) & 3) {
            case 0: disk_.fail = !disk_.fail; break;
            case 1: common_write(STATUS, 1, 0); break;  // device reset (virtio 1.x §4.1.4.3.1)
            default: program_test_function(in, op); break;
            }
            break;
        case 13: case 14: request(in, op); break;
        default:
            if (served_elsewhere_ && (op & 0x10)) reset_during_service();
            else mmio_read(bar_base(0) + VirtioPci::kIsrOffset, 1);
            break;
        }
        serve_kicked();

        // allow_writable() before the operation (and after the harness's own writes) already
        // covers descriptors that the device rewrites during it (see bounds_of).
        if (queue_live) writes_.check_writes(before_);
        check_used(count_before);
        check_state();
        check_notify_base();
    }

private:
    // --- config space through the host bridge --------------------------------------------------

    uint32_t pick_address_register(Input& in) {
        const uint8_t sel = in.u8();
        const uint8_t slot = sel < 0xA0 ? kSlot : sel < 0xC0 ? TestFunction::kSlot : sel < 0xE0 ? 0 : sel & 0x1F;
        const uint8_t reg = in.u8();
        uint32_t a = 0x8000'0000u | uint32_t{slot} << 11 | reg;
        if (sel >= 0xF8) a = in.u32();  // anything: other buses, functions, enable off
        return a;
    }

    void config_write(Input& in, uint8_t op) {
        std::array<uint8_t, 4> a{};
        store_le(a, pick_address_register(in));
        pio_.write(platform::kPciConfigAddress, a);
        const size_t n = pick_access_size(op >> 4);
        const uint64_t port = platform::kPciConfigAddress + (in.u8() & 7);
        uint8_t v[8];
        in.fill(v);
        pio_.write(port, std::span<const uint8_t>(v, n));
    }

    void config_read(Input& in, uint8_t op) {
        std::array<uint8_t, 4> a{};
        const uint32_t address = pick_address_register(in);
        store_le(a, address);
        pio_.write(platform::kPciConfigAddress, a);
        const size_t n = pick_access_size(op >> 4);
        const uint64_t offset = in.u8() & 7;
        uint8_t got[8];
        guarded_read(pio_, platform::kPciConfigAddress + offset, n, got);
        // The identity of 00:01.0 is read-only whatever was written before.
        if (offset == 4 && n == 4 && (address & 0x80FF'FFFC) == (0x8000'0000u | uint32_t{kSlot} << 11))
            check(load_le(std::span<const uint8_t>(got, 4)) == ((0x1040u + virtio_blk::kDeviceType) << 16 | virtio::kPciVendor));
    }

    uint64_t pick_bar_address(Input& in) {
        switch (in.u8() % 8) {
        case 0: return 0;
        case 1: return kDefaultBar0;
        case 2: return kDefaultBar1;
        case 3: return platform::kTpmTisBase;            // collides with another device
        case 4: return 0xFFFF'F000;                       // BAR0 would cross 4 GiB
        case 5: return in.u32();
        default: return 0xFE00'0000 + 0x1000 * (in.u8() % 16);  // may overlap the other BAR
        }
    }

    // I/O BAR anywhere in (and past) the port space, 64-bit BAR anywhere, any COMMAND.
    void program_test_function(Input& in, uint8_t op) {
        const uint16_t command = (op & 0x40) ? in.u16() : pci::kCommandIo | pci::kCommandMemory;
        uint32_t io = in.u16() & ~uint32_t{0xF};
        if (op & 0x80) io = in.u32();
        uint64_t mem = (op & 0x80) ? in.u64() : uint64_t{in.u16()} << 32 | 0xFE01'0000;
        auto write = [&](uint16_t reg, size_t size, uint32_t v) {
            cfg_select(TestFunction::kSlot, reg);
            std::array<uint8_t, 4> d{};
            store_le(std::span<uint8_t>(d.data(), size), v);
            pio_.write(platform::kPciConfigData + (reg & 3), std::span<const uint8_t>(d.data(), size));
        };
        write(pci::kBar0, 4, io);
        write(pci::kBar0 + 8, 4, static_cast<uint32_t>(mem));
        write(pci::kBar0 + 12, 4, static_cast<uint32_t>(mem >> 32));
        write(pci::kCommand, 2, command);
        if (io_bases_.size() < 16) io_bases_.push_back(io & ~uint32_t{0xF});
        if (mem_bases_.size() < 16) mem_bases_.push_back(mem & ~uint64_t{0x1FFF});
    }

    // --- MMIO through the bus --------------------------------------------------------------------

    void mmio_access(Input& in, uint8_t op) {
        const int bar = (op >> 4) & 1;
        uint64_t offset = 0;
        const uint8_t sel = in.u8();
        if (bar == 0) {
            static constexpr uint64_t kRegions[4] = {VirtioPci::kCommonOffset, VirtioPci::kIsrOffset,
                                                     VirtioPci::kDeviceOffset, VirtioPci::kNotifyOffset};
            offset = kRegions[sel & 3] + ((sel & 4) ? in.u16() % VirtioPci::kRegionSize : (in.u8() % 0x40));
        } else {
            offset = (sel & 1) ? VirtioPci::kMsixPbaOffset + in.u8() % 16 : in.u8() % 0x40;
            if (sel & 2) offset = in.u16() % VirtioPci::kMsixBarSize;
        }
        if (sel >= 0xF8) offset = VirtioPci::kConfigBarSize - (sel & 7);  // past the end of the BAR
        const size_t n = pick_access_size(op >> 5);
        const uint64_t address = bar_base(bar) + offset;
        if (op & 0x80) mmio_write(address, n, in.u64());
        else mmio_read(address, n);
    }

    // Driver initialisation (virtio 1.0 §3.1.1), with fuzzed features and queue layout.
    void driver_init(Input& in, uint8_t op) {
        if (!blk_.bar_window(0)) program_bars(kDefaultBar0, kDefaultBar1, pci::kCommandMemory | pci::kCommandMaster);
        common_write(STATUS, 1, 0);
        common_write(STATUS, 1, virtio::kStatusAcknowledge | virtio::kStatusDriver);
        uint64_t features = virtio::kFVersion1 | ((op & 0x10) ? virtio::kFRingIndirect : 0);
        if (op & 0x20) features ^= in.u64();
        common_write(GFSEL, 4, 0);
        common_write(GF, 4, static_cast<uint32_t>(features));
        common_write(GFSEL, 4, 1);
        common_write(GF, 4, features >> 32);
        common_write(STATUS, 1, virtio::kStatusAcknowledge | virtio::kStatusDriver | virtio::kStatusFeaturesOk);
        common_write(QSEL, 2, (op & 0x40) ? in.u8() % 3 : 0);
        static constexpr uint16_t kSizes[8] = {256, 128, 16, 4, 1, 2, 3, 512};
        common_write(QSIZE, 2, kSizes[in.u8() & 7]);
        const bool custom = op & 0x80;
        common_write(QDESC, 8, custom ? pick_gpa(in) : kDesc);
        common_write(QAVAIL, 8, custom ? pick_gpa(in) : kAvail);
        const uint64_t used = custom ? pick_gpa(in) : kUsed;
        common_write(QUSED, 8, used);
        const uint8_t zero[2] = {0, 0};
        ram_.poke(used + 2, zero);  // a driver starts from a zeroed used ring
        common_write(QMSIX, 2, in.u8() % 4);
        common_write(MSIXCFG, 2, in.u8() % 4);
        common_write(QENABLE, 2, 1);
        common_write(STATUS, 1,
                     virtio::kStatusAcknowledge | virtio::kStatusDriver | virtio::kStatusFeaturesOk | virtio::kStatusDriverOk);
        avail_idx_ = 0;
    }

    // --- guest memory: descriptors, rings, requests -----------------------------------------------

    void put_descriptor(Input& in, uint16_t index, uint8_t op) {
        const Virtqueue& q = blk_.queue(0);
        const uint64_t table = (op & 0x10) ? pick_gpa(in) : q.desc_addr();
        const uint16_t slot = (op & 0x20) ? index : index % q.size();
        uint16_t flags = in.u8() & 7;
        if (op & 0x40) flags = in.u16();
        const uint16_t next = (op & 0x80) ? in.u16() : static_cast<uint16_t>((slot + 1) % q.size());
        const uint64_t addr = pick_gpa(in);  // separate statements: argument order is unspecified
        write_desc(table, slot, addr, pick_len(in), flags, next);
    }

    // A whole request: header, optional data, status; direct or through an indirect table, with
    // optional defects (a loop, a readable descriptor after a writable one, a bad index).
    void request(Input& in, uint8_t op) {
        const Virtqueue& q = blk_.queue(0);
        static constexpr uint32_t kTypes[8] = {virtio_blk::kTIn, virtio_blk::kTOut, virtio_blk::kTFlush, virtio_blk::kTGetId,
                                               virtio_blk::kTIn, virtio_blk::kTOut, 7, 0xFFFF'FFFF};
        const uint8_t shape = in.u8();
        const uint32_t type = kTypes[shape & 7];
        uint64_t sector = 0;
        switch ((shape >> 3) & 3) {
        case 0: sector = in.u8(); break;
        case 1: sector = blk_.model().capacity_sectors() - (in.u8() % 4); break;
        case 2: sector = in.u64(); break;
        default: sector = 0; break;
        }
        const bool defaults = !(shape & 0x20);
        const uint64_t header = defaults ? kHeader : pick_gpa(in);
        const uint64_t data = defaults ? kData + 512 * (in.u8() % 8) : pick_gpa(in);
        const uint32_t data_len = (shape & 0x40) ? pick_len(in) : 512 * (in.u8() % 5);
        const uint64_t status = defaults ? kStatus : pick_gpa(in);
        uint8_t hdr[16] = {};
        store_le(std::span<uint8_t>(hdr, 4), type);
        store_le(std::span<uint8_t>(hdr + 8, 8), sector);
        poke(header, hdr);

        const bool data_writable = type != virtio_blk::kTOut;
        struct D { uint64_t addr; uint32_t len; uint16_t flags; };
        std::vector<D> chain{{header, 16, 0}};
        if (data_len) chain.push_back({data, data_len, static_cast<uint16_t>(data_writable ? kWrite : 0)});
        chain.push_back({status, 1, kWrite});
        const uint8_t defect = in.u8();
        if (defect == 1) chain.back().flags = 0;  // status readable after a writable buffer

        const uint16_t head = in.u8() % q.size();
        const bool indirect = op & 0x10;
        const uint64_t table = indirect ? ((op & 0x20) ? pick_gpa(in) : kIndirectTable) : q.desc_addr();
        const uint16_t entries = indirect ? static_cast<uint16_t>(chain.size()) : q.size();
        for (size_t i = 0; i < chain.size(); ++i) {
            const uint16_t index = static_cast<uint16_t>((indirect ? i : head + i) % entries);
            uint16_t next = static_cast<uint16_t>((index + 1) % entries);
            uint16_t flags = chain[i].flags;
            if (i + 1 < chain.size()) flags |= kNext;
            if (defect == 2 && i + 1 == chain.size()) { flags |= kNext; next = static_cast<uint16_t>(indirect ? 0 : head); }  // loop
            if (defect == 3 && i + 1 < chain.size()) next = static_cast<uint16_t>(entries + i);  // out of range
            write_desc(table, index, chain[i].addr, chain[i].len, flags, next);
        }
        if (indirect) {
            uint32_t table_len = static_cast<uint32_t>(16 * chain.size());
            if (defect == 4) table_len += 8;  // not a whole number of descriptors
            uint16_t flags = kIndirect | (defect == 5 ? kNext : 0);
            write_desc(q.desc_addr(), head, table, table_len, flags, 0);
        }
        push_avail(head);
        if (tracking_) writes_.allow_writable(q);  // the buffers the new descriptors name
        notify(0);
    }

    // --- MSI-X and the PCI cfg access window --------------------------------------------------------
    void msix(Input& in, uint8_t op) {
        const uint8_t cap = blk_.msix_cap_offset();
        if (op & 0x10) {
            uint16_t control = 0x8000;  // enable
            if (op & 0x20) control |= 0x4000;  // function mask
            cfg_write(cap + 2, 2, control | (op & 0x40 ? in.u16() : 0));
        } else {
            const uint64_t entry = bar_base(1) + VirtioPci::kMsixTableOffset + 16ull * (in.u8() % 3);
            mmio_write(entry, 8, 0xFEE0'0000u | in.u8());
            mmio_write(entry + 8, 4, in.u32());
            mmio_write(entry + 12, 4, in.u8() & 1);
        }
    }

    void cfg_window(Input& in, uint8_t op) {
        const uint8_t cap = blk_.pci_cfg_cap_offset();
        cfg_write(cap + 4, 1, (op & 0x10) ? in.u8() : in.u8() % 2);
        static constexpr uint32_t kLengths[4] = {1, 2, 4, 3};
        cfg_write(cap + 12, 4, (op & 0x20) ? in.u32() : kLengths[in.u8() & 3]);
        uint32_t offset = in.u16();
        if (op & 0x40) offset = VirtioPci::kNotifyOffset;
        cfg_write(cap + 8, 4, offset);
        if (op & 0x80) cfg_write(cap + 16, 4, in.u32());
        else cfg_read(cap + 16, 4);
    }

    // --- invariants ---------------------------------------------------------------------------------

};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Input in(data, size);
    // Guest RAM and the snapshot buffer are allocated once (fresh pages for every input would
    // cost more than the input itself); the harness re-initialises their contents.
    static GuestRam ram(kLayout);
    static std::vector<uint8_t> snapshot;
    Harness h(ram, snapshot, in.u8());
    for (unsigned ops = 0; !in.empty() && ops < 512; ++ops) h.step(in);
    return 0;
}
