// libFuzzer target for fw_cfg (port and DMA interface), populated by populate_fw_cfg with the
// files SeaBIOS reads (e820, bootorder, ACPI tables, table-loader, an extra file). The input is
// a configuration byte, then operations: port reads and writes of any size at any offset of
// the window (through the PIO bus), selector writes, DMA descriptors placed anywhere (straddling region ends, in holes, at the top of the address space) with any
// control word, length and buffer address, and raw guest-memory writes.
// Guest RAM has holes and two adjacent regions; each region is an exactly-sized heap block.
// A reference model of the selected item, data offset and DMA high half predicts every byte the
// guest reads, the data a DMA read must leave in the buffer and the control word written back
// (0 or ERROR only). Nothing outside the buffer and the control word may change.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "devices/fw_cfg.hpp"
#include "firmware/fw_cfg_setup.hpp"
#include "tests/fuzz/fuzz_support.hpp"
#include "devices/bus.hpp"
#include "vmm/base/platform.hpp"
#include "vmm/base/bytes.hpp"

using namespace minivmm;
using namespace minivmm::fuzz;

namespace {

constexpr GuestRam::Layout kLayout[] = {
    {0x0, 0x1000},                     // two adjacent regions: transfers continue across
    {0x1000, 0x800},
    {0x4000, 0x100},                   // an island between holes
    {0xFFFF'FFFF'FFFF'F000, 0xFF0},    // the top of the address space
};

void put_be(uint8_t* p, uint64_t v, size_t n) { store_be({p, n}, v); }
uint64_t get_be(const uint8_t* p, size_t n) { return load_be({p, n}); }

uint64_t pick_gpa(Input& in) {
    static constexpr uint64_t kAddrs[] = {0x0, 0x10, 0xFF0, 0xFF8, 0xFFC, 0x1000, 0x17F0, 0x17F8, 0x17FC, 0x1800,
                                          0x2000, 0x3FF8, 0x4000, 0x40F0, 0x40F8, 0x40FC, 0x4100,
                                          0xFFFF'FFFF'FFFF'F000, 0xFFFF'FFFF'FFFF'FFE0, 0xFFFF'FFFF'FFFF'FFEC,
                                          0xFFFF'FFFF'FFFF'FFF0, 0xFFFF'FFFF'FFFF'FFF8};
    constexpr size_t n = sizeof kAddrs / sizeof kAddrs[0];
    const uint8_t sel = in.u8();
    if (sel < n) return kAddrs[sel];
    if (sel < 2 * n) return kAddrs[sel - n] + (in.u8() & 0x3F) - 0x20;
    if (sel < 0xF0) return in.u16() % 0x1900;
    return in.u64();
}

struct Model {
    const FwCfg& fw;
    uint16_t key = fw_cfg::kSignature;
    const std::vector<uint8_t>* item = nullptr;
    uint64_t offset = 0;
    uint64_t dma_high = 0;

    void select(uint16_t k) {
        key = k & static_cast<uint16_t>(~fw_cfg::kWriteChannel);
        item = fw.item(key);
        offset = 0;
    }
    uint8_t next_byte() {
        if (!item || offset >= item->size()) return 0;
        return (*item)[offset++];
    }
};

uint16_t pick_key(Input& in, const FwCfg& fw) {
    static constexpr uint16_t kKeys[] = {fw_cfg::kSignature, fw_cfg::kId, fw_cfg::kFileDir, fw_cfg::kNbCpus,
                                         fw_cfg::kMaxCpus, fw_cfg::kIrq0Override, fw_cfg::kE820Table,
                                         fw_cfg::kBootMenu, 0x4019, 0xC002};
    constexpr size_t n = sizeof kKeys / sizeof kKeys[0];
    const uint8_t sel = in.u8();
    if (sel < n) return kKeys[sel];
    if (sel < 0xC0) {
        const uint16_t k = static_cast<uint16_t>(fw_cfg::kFileFirst + (sel - n) % 12);
        return fw.item(k) || (sel & 1) ? k : fw_cfg::kFileDir;
    }
    return in.u16();
}

class Harness {
public:
    Harness(GuestRam& ram, std::vector<uint8_t>& snapshot, uint8_t config)
        : ram_(ram), fw_(ram_.memory), model_{fw_}, before_(snapshot) {
        FwCfgSetup setup;
        setup.ram_below_4g = 512u << 20;
        setup.ram_above_4g = (config & 1) ? uint64_t{1} << 32 : 0;
        setup.cpus = 1 + (config >> 1) % 4;
        if (config & 8) setup.boot_menu_wait_ms = 2500;
        setup.serial_console = (config & 0x10) != 0;
        setup.acpi_tables = pattern(700, 1);
        setup.acpi_rsdp = pattern(20, 2);
        setup.table_loader = pattern(128 * 4, 3);
        setup.extra_files.emplace_back("etc/tpm/log", pattern(0x1900, 4));  // larger than any region
        populate_fw_cfg(fw_, setup);
        bus_.insert(platform::kFwCfgPort, platform::kFwCfgPortSize, fw_);
        model_.select(fw_cfg::kSignature);
        ram_.fill_pattern(config);
    }

    void step(Input& in) {
        const uint8_t op = in.u8();
        switch (op % 8) {
        case 0: case 1: port_read(in, op); break;
        case 2: port_write(in, op); break;
        case 3: select(pick_key(in, fw_)); break;
        case 4: case 5: dma(in, op); break;
        case 6: {  // raw guest-memory bytes anywhere
            const uint64_t gpa = pick_gpa(in);
            std::vector<uint8_t> bytes = in.bytes(in.u8() % 24);
            ram_.poke(gpa, bytes);
            break;
        }
        default: {  // byte-wise read of several data bytes, as SeaBIOS's port path does
            const unsigned n = in.u8();
            for (unsigned i = 0; i < n; ++i) access_read(i & 1, 1);
            break;
        }
        }
    }

private:
    static std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
        std::vector<uint8_t> v(n);
        for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed * 31 + i * 7 + (i >> 8));
        return v;
    }

    void select(uint16_t key) {
        uint8_t b[2] = {static_cast<uint8_t>(key), static_cast<uint8_t>(key >> 8)};
        bus_.write(platform::kFwCfgPort, b);
        model_.select(key);
    }

    uint64_t pick_offset(Input& in) {
        const uint8_t sel = in.u8();
        return sel < 0xF0 ? sel % 12 : sel % 16;  // mostly inside the window, sometimes past it
    }

    void access_read(uint64_t offset, size_t n) {
        uint8_t got[8];
        guarded_read(bus_, platform::kFwCfgPort + offset, n, got);
        for (size_t i = 0; i < n; ++i) check(got[i] == expected_read(offset, n, i));
    }

    uint8_t expected_read(uint64_t offset, size_t n, size_t i) {
        if (offset + n > platform::kFwCfgPortSize) return 0xFF;  // not on the bus
        if (n == 1 && offset <= fw_cfg::kDataOffset) return model_.next_byte();
        if (offset >= fw_cfg::kDmaOffset) {
            const uint64_t byte = offset - fw_cfg::kDmaOffset + i;
            return static_cast<uint8_t>(fw_cfg::kDmaSignature >> (8 * (7 - byte)));
        }
        return 0xFF;
    }

    void port_read(Input& in, uint8_t op) { access_read(pick_offset(in), pick_access_size(op >> 3)); }

    void port_write(Input& in, uint8_t op) {
        const uint64_t offset = pick_offset(in);
        const size_t n = pick_access_size(op >> 3);
        uint8_t buf[8];
        in.fill(buf);
        access_write(offset, std::span<const uint8_t>(buf, n));
    }

    void access_write(uint64_t offset, std::span<const uint8_t> data) {
        const size_t n = data.size();
        if (offset + n > platform::kFwCfgPortSize) {
            check(!bus_.write(platform::kFwCfgPort + offset, data));
            return;
        }
        // A transfer may follow: compute its expected effects before the device runs.
        std::optional<uint64_t> descriptor;
        if (offset == fw_cfg::kSelectorOffset && n == 2) {
            model_.select(static_cast<uint16_t>(data[0] | data[1] << 8));
        } else if (offset == fw_cfg::kDmaOffset && n == 4) {
            model_.dma_high = get_be(data.data(), 4) << 32;
        } else if (offset == fw_cfg::kDmaLowOffset && n == 4) {
            descriptor = model_.dma_high | get_be(data.data(), 4);
            model_.dma_high = 0;
        } else if (offset == fw_cfg::kDmaOffset && n == 8) {
            descriptor = get_be(data.data(), 8);
            model_.dma_high = 0;
        }
        if (!descriptor) {
            check(bus_.write(platform::kFwCfgPort + offset, data));
            return;
        }
        transfer(*descriptor, [&] { bus_.write(platform::kFwCfgPort + offset, data); });
    }

    // Places a descriptor and starts it through the two-write or the one-write sequence.
    void dma(Input& in, uint8_t op) {
        const uint64_t at = pick_gpa(in);
        const uint8_t bits = in.u8();
        uint32_t control = bits & 0x1F;
        if (bits & 0x20) control |= uint32_t{pick_key(in, fw_)} << 16;
        if (bits & 0x40) control = in.u32();
        uint32_t length = 0;
        switch (in.u8() % 6) {
        case 0: length = 0; break;
        case 1: length = in.u8(); break;
        case 2: length = in.u16() % 0x2000; break;
        case 3: length = model_.item ? static_cast<uint32_t>(model_.item->size()) : 4; break;
        case 4: length = in.u32(); break;
        default: length = 16; break;
        }
        const uint64_t address = pick_gpa(in);
        uint8_t desc[16];
        put_be(desc, control, 4);
        put_be(desc + 4, length, 4);
        put_be(desc + 8, address, 8);
        ram_.poke(at, desc);

        uint8_t raw[8];
        put_be(raw, at, 8);
        if (op & 0x10) {
            access_write(fw_cfg::kDmaOffset, std::span<const uint8_t>(raw, 8));
        } else {
            if (!(op & 0x20)) access_write(fw_cfg::kDmaOffset, std::span<const uint8_t>(raw, 4));
            access_write(fw_cfg::kDmaLowOffset, std::span<const uint8_t>(raw + 4, 4));
        }
    }

    // fw_cfg.rst "DMA interface", as the model sees it; `kick` starts the transfer on the device.
    template <typename Kick>
    void transfer(uint64_t desc_addr, Kick&& kick) {
        const GuestMemory& mem = ram_.memory;
        ram_.snapshot(before_);
        uint8_t raw[16];
        const bool desc_ok = ram_.covers(desc_addr, 16) && mem.read(desc_addr, raw);
        uint32_t status = fw_cfg::kDmaError;
        uint64_t buf_addr = 0, buf_len = 0;  // the part of guest RAM the transfer may write
        std::vector<uint8_t> expected;
        if (desc_ok) {
            const uint32_t control = static_cast<uint32_t>(get_be(raw, 4));
            const uint32_t length = static_cast<uint32_t>(get_be(raw + 4, 4));
            const uint64_t address = get_be(raw + 8, 8);
            if (control & fw_cfg::kDmaSelect) model_.select(static_cast<uint16_t>(control >> 16));
            const bool read = control & fw_cfg::kDmaRead;
            const bool write = !read && (control & fw_cfg::kDmaWrite);
            const bool skip = !read && !write && (control & fw_cfg::kDmaSkip);
            const uint64_t avail =
                model_.item && model_.offset < model_.item->size() ? model_.item->size() - model_.offset : 0;
            const uint64_t from_item = std::min<uint64_t>(length, avail);
            status = 0;
            if ((!read && !write && !skip) || length == 0) {
                // select only
            } else if (write) {
                status = fw_cfg::kDmaError;
            } else if (skip) {
                model_.offset += from_item;
            } else if (!ram_.covers(address, length)) {
                status = fw_cfg::kDmaError;
            } else {
                buf_addr = address;
                buf_len = length;
                expected.assign(length, 0);
                if (from_item > 0) std::memcpy(expected.data(), model_.item->data() + model_.offset, from_item);
                model_.offset += from_item;
            }
        }
        kick();

        // Only the buffer and the control word may change.
        ram_.for_each_change(before_, [&](uint64_t gpa, size_t) {
            const bool in_buf = gpa - buf_addr < buf_len;
            const bool in_control = gpa - desc_addr < 4;
            check(in_buf || in_control);
        });
        // The buffer holds item bytes then zeros, except where the control word overwrote it.
        for (uint64_t i = 0; i < buf_len; ++i)
            if (buf_addr + i - desc_addr >= 4) check(*ram_.byte(buf_addr + i) == expected[i]);
        // The control word is written back as 0 or ERROR, whenever it is RAM.
        if (ram_.covers(desc_addr, 4) && ram_.byte(desc_addr) + 3 == ram_.byte(desc_addr + 3)) {
            check(get_be(ram_.byte(desc_addr), 4) == status);
        } else {
            check(!desc_ok);
        }
    }

    GuestRam& ram_;
    FwCfg fw_;
    Bus bus_{"pio"};
    Model model_;
    std::vector<uint8_t>& before_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Input in(data, size);
    const uint8_t config = in.u8();
    // Guest RAM and the snapshot buffer are allocated once; the harness re-initialises them.
    static GuestRam ram(kLayout);
    static std::vector<uint8_t> snapshot;
    Harness h(ram, snapshot, config);
    for (unsigned ops = 0; !in.empty() && ops < 1024; ++ops) h.step(in);
    return 0;
}
