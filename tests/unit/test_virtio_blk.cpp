#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "devices/pci_host.hpp"
#include "devices/virtio_blk.hpp"
#include "devices/virtio_pci.hpp"
#include "vmm/bus.hpp"

using namespace minivmm;

namespace {

struct MemBackend final : BlockBackend {
    std::vector<uint8_t> bytes;
    bool ro = false;
    bool fail = false;
    int flushes = 0;
    explicit MemBackend(size_t size) : bytes(size) {
        for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(i / 512 + i);
    }
    uint64_t size() const noexcept override { return bytes.size(); }
    bool read_only() const noexcept override { return ro; }
    bool read(uint64_t off, std::span<uint8_t> d) noexcept override {
        if (fail || off + d.size() > bytes.size()) return false;
        std::memcpy(d.data(), bytes.data() + off, d.size());
        return true;
    }
    bool write(uint64_t off, std::span<const uint8_t> d) noexcept override {
        if (fail || ro || off + d.size() > bytes.size()) return false;
        std::memcpy(bytes.data() + off, d.data(), d.size());
        return true;
    }
    bool flush() noexcept override {
        ++flushes;
        return !fail;
    }
};

struct RecordingIrq final : IrqLine {
    bool level = false;
    int raises = 0;
    void set(bool l) noexcept override {
        if (l && !level) ++raises;
        level = l;
    }
};

struct RecordingMsi final : MsiSink {
    std::vector<std::pair<uint64_t, uint32_t>> messages;
    void signal(uint64_t address, uint32_t data) noexcept override { messages.emplace_back(address, data); }
};

constexpr uint64_t kBar0 = 0xFE00'0000, kBar1 = 0xFE00'4000;
constexpr uint64_t kDesc = 0x1000, kAvail = 0x2000, kUsed = 0x3000;
constexpr uint64_t kHeader = 0x10000, kData = 0x20000, kStatus = 0x30000;
constexpr uint16_t F_NEXT = 1, F_WRITE = 2;
constexpr unsigned kSlot = 1;

// Common config offsets (virtio 1.0 §4.1.4.3)
enum : uint32_t { DFSEL = 0x00, DF = 0x04, GFSEL = 0x08, GF = 0x0C, MSIXCFG = 0x10, NUMQ = 0x12, STATUS = 0x14,
                  GEN = 0x15, QSEL = 0x16, QSIZE = 0x18, QMSIX = 0x1A, QENABLE = 0x1C, QNOFF = 0x1E,
                  QDESC = 0x20, QAVAIL = 0x28, QUSED = 0x30 };

struct Seg {
    uint64_t addr;
    uint32_t len;
    bool write;
};

struct Machine {
    std::vector<uint8_t> ram = std::vector<uint8_t>(0x200000);
    GuestMemory mem{{{0, ram.size(), ram.data()}}};
    Bus pio{"pio"};
    Bus mmio{"mmio"};
    PciHost host{pio, mmio};
    MemBackend disk;
    RecordingIrq irq;
    RecordingMsi msi;
    VirtioBlk pci{mem, disk, irq, msi};
    uint16_t avail_idx = 0;
    uint16_t qsize = 16;

    explicit Machine(size_t disk_size = 128 * 512, bool ro = false) : disk(disk_size) {
        disk.ro = ro;
        pio.insert(PciHost::kPortBase, PciHost::kPortSize, host);
        host.add(kSlot, pci);
        cfg_write(0x10, 4, kBar0);
        cfg_write(0x14, 4, kBar1);
        cfg_write(0x04, 2, pci::kCommandMemory | pci::kCommandMaster);
    }
    // --- config space through 0xCF8/0xCFC ---
    void select(unsigned reg) {
        std::array<uint8_t, 4> a{};
        store_le(a, 0x8000'0000u | kSlot << 11 | (reg & 0xfc));
        pio.write(0xCF8, a);
    }
    uint32_t cfg_read(unsigned reg, size_t size) {
        select(reg);
        std::array<uint8_t, 4> d{};
        pio.read(0xCFC + (reg & 3), std::span<uint8_t>(d.data(), size));
        return static_cast<uint32_t>(load_le(std::span<const uint8_t>(d.data(), size)));
    }
    void cfg_write(unsigned reg, size_t size, uint32_t v) {
        select(reg);
        std::array<uint8_t, 4> d{};
        store_le(std::span<uint8_t>(d.data(), size), v);
        pio.write(0xCFC + (reg & 3), std::span<const uint8_t>(d.data(), size));
    }
    // --- MMIO ---
    uint64_t rd(uint64_t addr, size_t size) {
        std::array<uint8_t, 8> d{};
        mmio.read(addr, std::span<uint8_t>(d.data(), size));
        return load_le(std::span<const uint8_t>(d.data(), size));
    }
    void wr(uint64_t addr, size_t size, uint64_t v) {
        std::array<uint8_t, 8> d{};
        store_le(std::span<uint8_t>(d.data(), size), v);
        mmio.write(addr, std::span<const uint8_t>(d.data(), size));
    }
    uint64_t common(uint32_t off, size_t size) { return rd(kBar0 + off, size); }
    void set_common(uint32_t off, size_t size, uint64_t v) { wr(kBar0 + off, size, v); }
    uint8_t status() { return static_cast<uint8_t>(common(STATUS, 1)); }
    uint64_t device_features() {
        set_common(DFSEL, 4, 0);
        uint64_t f = common(DF, 4);
        set_common(DFSEL, 4, 1);
        return f | common(DF, 4) << 32;
    }
    void set_driver_features(uint64_t f) {
        set_common(GFSEL, 4, 0);
        set_common(GF, 4, f & 0xffffffff);
        set_common(GFSEL, 4, 1);
        set_common(GF, 4, f >> 32);
    }
    // Driver initialisation, virtio 1.0 §3.1.1. Returns false if FEATURES_OK was refused.
    bool init(uint64_t features = virtio::kFVersion1, bool driver_ok = true) {
        set_common(STATUS, 1, 0);
        set_common(STATUS, 1, virtio::kStatusAcknowledge);
        set_common(STATUS, 1, virtio::kStatusAcknowledge | virtio::kStatusDriver);
        set_driver_features(features);
        set_common(STATUS, 1, virtio::kStatusAcknowledge | virtio::kStatusDriver | virtio::kStatusFeaturesOk);
        if (!(status() & virtio::kStatusFeaturesOk)) return false;
        set_common(QSEL, 2, 0);
        set_common(QSIZE, 2, qsize);
        set_common(QDESC, 4, kDesc);  // lo/hi halves, as Linux writes them
        set_common(QDESC + 4, 4, 0);
        set_common(QAVAIL, 8, kAvail);
        set_common(QUSED, 4, kUsed);
        set_common(QUSED + 4, 4, 0);
        set_common(QENABLE, 2, 1);
        avail_idx = 0;
        if (driver_ok)
            set_common(STATUS, 1, virtio::kStatusAcknowledge | virtio::kStatusDriver | virtio::kStatusFeaturesOk |
                                      virtio::kStatusDriverOk);
        return true;
    }
    void notify() { wr(kBar0 + VirtioPci::kNotifyOffset, 2, 0); }
    // Puts a chain made of `segs` (descriptors 0..n-1) on the avail ring and notifies.
    void submit(const std::vector<Seg>& segs, bool kick = true) {
        for (size_t i = 0; i < segs.size(); ++i) {
            const uint64_t d = kDesc + 16 * i;
            mem.write_obj(d, segs[i].addr);
            mem.write_obj(d + 8, segs[i].len);
            mem.write_obj<uint16_t>(d + 12, (i + 1 < segs.size() ? F_NEXT : 0) | (segs[i].write ? F_WRITE : 0));
            mem.write_obj<uint16_t>(d + 14, static_cast<uint16_t>(i + 1));
        }
        mem.write_obj<uint16_t>(kAvail + 4 + 2 * (avail_idx % qsize), 0);
        ++avail_idx;
        mem.write_obj<uint16_t>(kAvail + 2, avail_idx);
        if (kick) notify();
    }
    void header(uint32_t type, uint64_t sector) {
        mem.write_obj(kHeader, type);
        mem.write_obj<uint32_t>(kHeader + 4, 0);
        mem.write_obj(kHeader + 8, sector);
        mem.write_obj<uint8_t>(kStatus, 0xEE);
    }
    uint8_t request(uint32_t type, uint64_t sector, uint32_t data_len, bool data_writable) {
        header(type, sector);
        std::vector<Seg> segs{{kHeader, 16, false}};
        if (data_len) segs.push_back({kData, data_len, data_writable});
        segs.push_back({kStatus, 1, true});
        submit(segs);
        return *mem.read_obj<uint8_t>(kStatus);
    }
    uint16_t used_idx() { return *mem.read_obj<uint16_t>(kUsed + 2); }
    uint32_t last_used_len() { return *mem.read_obj<uint32_t>(kUsed + 8 + 8 * ((used_idx() - 1) % qsize)); }
    uint8_t read_isr() { return static_cast<uint8_t>(rd(kBar0 + VirtioPci::kIsrOffset, 1)); }
    // Vendor capability of the given cfg_type, or 0.
    unsigned find_cap(uint8_t cfg_type) {
        for (unsigned cap = cfg_read(0x34, 1), n = 0; cap && n < 48; cap = cfg_read(cap + 1, 1), ++n)
            if (cfg_read(cap, 1) == pci::kCapVendor && cfg_read(cap + 3, 1) == cfg_type) return cap;
        return 0;
    }
    unsigned find_msix() {
        for (unsigned cap = cfg_read(0x34, 1), n = 0; cap && n < 48; cap = cfg_read(cap + 1, 1), ++n)
            if (cfg_read(cap, 1) == pci::kCapMsix) return cap;
        return 0;
    }
};

}  // namespace

TEST_CASE("virtio-blk PCI identity and capabilities") {
    Machine m;
    CHECK(m.cfg_read(0x00, 2) == 0x1AF4);
    CHECK(m.cfg_read(0x02, 2) == 0x1042);
    CHECK(m.cfg_read(0x08, 1) == 1);                    // revision 1: modern only
    CHECK((m.cfg_read(0x08, 4) >> 8) == 0x010000);      // mass storage
    CHECK(m.cfg_read(0x2C, 2) == 0x1AF4);
    CHECK(m.cfg_read(0x2E, 2) == 0x0002);
    CHECK(m.cfg_read(0x3D, 1) == 1);                    // INTA#
    // BARs: 32-bit non-prefetchable memory (SeaBIOS keeps these below 4 GiB -> plain MMIO mode).
    m.cfg_write(0x10, 4, 0xFFFF'FFFF);
    CHECK(m.cfg_read(0x10, 4) == static_cast<uint32_t>(~(VirtioPci::kConfigBarSize - 1)));
    m.cfg_write(0x10, 4, kBar0);
    m.cfg_write(0x14, 4, 0xFFFF'FFFF);
    CHECK(m.cfg_read(0x14, 4) == static_cast<uint32_t>(~(VirtioPci::kMsixBarSize - 1)));
    m.cfg_write(0x14, 4, kBar1);

    struct Expect {
        uint8_t type;
        uint32_t offset;
        uint32_t length;
    };
    for (const Expect& e : {Expect{1, 0x0000, 0x38}, Expect{2, 0x3000, 4}, Expect{3, 0x1000, 1},
                            Expect{4, 0x2000, virtio_blk::kConfigSize}, Expect{5, 0, 0}}) {
        CAPTURE(int{e.type});
        const unsigned cap = m.find_cap(e.type);
        REQUIRE(cap != 0);
        CHECK(m.cfg_read(cap + 4, 1) == 0);  // BAR0
        CHECK(m.cfg_read(cap + 8, 4) == e.offset);
        CHECK(m.cfg_read(cap + 12, 4) == e.length);
    }
    CHECK(m.cfg_read(m.find_cap(2) + 16, 4) == VirtioPci::kNotifyMultiplier);
    CHECK(m.cfg_read(m.find_cap(2) + 2, 1) == 20);
    const unsigned msix = m.find_msix();
    REQUIRE(msix != 0);
    CHECK(m.cfg_read(msix + 2, 2) == 1);  // table size 2 (config + 1 queue), disabled
    CHECK(m.cfg_read(msix + 4, 4) == (VirtioPci::kMsixTableOffset | 1));
    CHECK(m.cfg_read(msix + 8, 4) == (VirtioPci::kMsixPbaOffset | 1));
    // Capability bodies are read-only except the cfg-access window and MSI-X control.
    m.cfg_write(m.find_cap(1) + 8, 4, 0x1234);
    CHECK(m.cfg_read(m.find_cap(1) + 8, 4) == 0);
    m.cfg_write(msix + 2, 2, 0xFFFF);
    CHECK(m.cfg_read(msix + 2, 2) == 0xC001);
}

TEST_CASE("virtio-blk feature negotiation and device config") {
    Machine m;
    const uint64_t f = m.device_features();
    CHECK((f & virtio::kFVersion1));
    CHECK((f & virtio_blk::kFFlush));
    CHECK((f & virtio_blk::kFSegMax));
    CHECK((f & virtio_blk::kFBlkSize));
    CHECK_FALSE((f & virtio_blk::kFRo));
    m.set_common(DFSEL, 4, 7);
    CHECK(m.common(DF, 4) == 0);
    CHECK(m.common(NUMQ, 2) == 1);

    SUBCASE("FEATURES_OK refused without VERSION_1") { CHECK_FALSE(m.init(virtio_blk::kFFlush)); }
    SUBCASE("FEATURES_OK refused with a feature never offered") {
        CHECK_FALSE(m.init(virtio::kFVersion1 | uint64_t{1} << 40));
    }
    SUBCASE("accepted, then features are locked") {
        REQUIRE(m.init(virtio::kFVersion1 | virtio_blk::kFFlush));
        CHECK(m.pci.driver_features() == (virtio::kFVersion1 | virtio_blk::kFFlush));
        m.set_driver_features(0);
        CHECK(m.pci.driver_features() == (virtio::kFVersion1 | virtio_blk::kFFlush));
    }
    // Device config, read the ways SeaBIOS (8 bytes as 2x4) and Linux read it.
    const uint64_t cfg = kBar0 + VirtioPci::kDeviceOffset;
    CHECK(m.rd(cfg + 0, 4) == 128);  // capacity in sectors
    CHECK(m.rd(cfg + 4, 4) == 0);
    CHECK(m.rd(cfg + 0, 8) == 128);
    CHECK(m.rd(cfg + 12, 4) == virtio_blk::kQueueSize - 2);  // seg_max
    CHECK(m.rd(cfg + 20, 4) == 512);                          // blk_size
    CHECK(m.rd(cfg + 16, 2) == 0);                            // geometry (not offered)
    CHECK(m.rd(cfg + 34, 2) == 0);
    CHECK(m.rd(cfg + 36, 4) == 0);  // past the structure
    m.wr(cfg, 4, 0xFFFF);
    CHECK(m.rd(cfg, 4) == 128);  // read-only
}

TEST_CASE("virtio-blk queue configuration") {
    Machine m;
    m.set_common(QSEL, 2, 0);
    CHECK(m.common(QSIZE, 2) == virtio_blk::kQueueSize);
    CHECK(m.common(QENABLE, 2) == 0);
    CHECK(m.common(QNOFF, 2) == 0);
    CHECK(m.common(QMSIX, 2) == virtio::kNoVector);
    m.set_common(QSIZE, 2, 100);  // not a power of two: ignored
    CHECK(m.common(QSIZE, 2) == virtio_blk::kQueueSize);
    m.set_common(QSIZE, 2, 128);  // a driver may shrink the queue (SeaBIOS does if > MAX_QUEUE_NUM)
    CHECK(m.common(QSIZE, 2) == 128);
    m.set_common(QSEL, 2, 1);  // no such queue
    CHECK(m.common(QSIZE, 2) == 0);
    m.set_common(QENABLE, 2, 1);
    CHECK(m.common(QENABLE, 2) == 0);
    REQUIRE(m.init());
    CHECK(m.common(QENABLE, 2) == 1);
    CHECK(m.common(QDESC, 8) == kDesc);
    CHECK(m.common(QAVAIL, 4) == kAvail);
    CHECK(m.common(QUSED, 8) == kUsed);
    m.set_common(QDESC, 8, 0x9000);  // frozen while enabled
    CHECK(m.common(QDESC, 8) == kDesc);
    CHECK(m.status() == 0x0F);
}

TEST_CASE("virtio-blk requests end to end") {
    Machine m;
    REQUIRE(m.init(virtio::kFVersion1 | virtio_blk::kFFlush));

    // OUT: two sectors at sector 3.
    for (unsigned i = 0; i < 1024; ++i) m.ram[kData + i] = static_cast<uint8_t>(i * 7 + 1);
    CHECK(m.request(virtio_blk::kTOut, 3, 1024, false) == virtio_blk::kSOk);
    CHECK(std::memcmp(m.disk.bytes.data() + 3 * 512, m.ram.data() + kData, 1024) == 0);
    CHECK(m.used_idx() == 1);
    CHECK(m.last_used_len() == 1);

    // IN: read them back into a cleared buffer.
    std::memset(m.ram.data() + kData, 0, 1024);
    CHECK(m.request(virtio_blk::kTIn, 3, 1024, true) == virtio_blk::kSOk);
    CHECK(std::memcmp(m.disk.bytes.data() + 3 * 512, m.ram.data() + kData, 1024) == 0);
    CHECK(m.last_used_len() == 1025);

    // Last sector is fine, one past the end is not.
    CHECK(m.request(virtio_blk::kTIn, 127, 512, true) == virtio_blk::kSOk);
    CHECK(m.request(virtio_blk::kTIn, 127, 1024, true) == virtio_blk::kSIoErr);
    CHECK(m.request(virtio_blk::kTIn, 128, 512, true) == virtio_blk::kSIoErr);
    CHECK(m.request(virtio_blk::kTOut, ~uint64_t{0} / 512 + 5, 512, false) == virtio_blk::kSIoErr);  // sector*512 wraps
    CHECK(m.request(virtio_blk::kTIn, uint64_t{1} << 63, 512, true) == virtio_blk::kSIoErr);
    CHECK(m.request(virtio_blk::kTIn, 0, 100, true) == virtio_blk::kSIoErr);  // not whole sectors
    CHECK(m.request(virtio_blk::kTIn, 0, 0, true) == virtio_blk::kSOk);     // empty read is harmless

    // FLUSH, GET_ID, unknown type.
    CHECK(m.request(virtio_blk::kTFlush, 0, 0, true) == virtio_blk::kSOk);
    CHECK(m.disk.flushes == 1);
    std::memset(m.ram.data() + kData, 0xAA, 32);
    CHECK(m.request(virtio_blk::kTGetId, 0, 20, true) == virtio_blk::kSOk);
    CHECK(std::string(reinterpret_cast<const char*>(m.ram.data() + kData)) == "minivmm");
    CHECK(m.ram[kData + 19] == 0);
    CHECK(m.ram[kData + 20] == 0xAA);  // nothing beyond the buffer
    CHECK(m.last_used_len() == 21);
    CHECK(m.request(99, 0, 0, true) == virtio_blk::kSUnsupp);

    // Backend failure.
    m.disk.fail = true;
    CHECK(m.request(virtio_blk::kTIn, 0, 512, true) == virtio_blk::kSIoErr);
    CHECK(m.request(virtio_blk::kTFlush, 0, 0, true) == virtio_blk::kSIoErr);
}

TEST_CASE("virtio-blk odd but legal layouts and hostile chains") {
    Machine m;
    REQUIRE(m.init());
    SUBCASE("header split over two descriptors, data in several") {
        m.header(virtio_blk::kTIn, 1);
        m.submit({{kHeader, 5, false}, {kHeader + 5, 11, false}, {kData, 300, true}, {kData + 0x1000, 212, true},
                  {kStatus, 1, true}});
        CHECK(*m.mem.read_obj<uint8_t>(kStatus) == virtio_blk::kSOk);
        CHECK(std::memcmp(m.ram.data() + kData, m.disk.bytes.data() + 512, 300) == 0);
        CHECK(std::memcmp(m.ram.data() + kData + 0x1000, m.disk.bytes.data() + 812, 212) == 0);
    }
    SUBCASE("status shares the data descriptor") {
        m.header(virtio_blk::kTIn, 2);
        m.mem.write_obj<uint8_t>(kData + 512, 0xEE);
        m.submit({{kHeader, 16, false}, {kData, 513, true}});
        CHECK(*m.mem.read_obj<uint8_t>(kData + 512) == virtio_blk::kSOk);
        CHECK(std::memcmp(m.ram.data() + kData, m.disk.bytes.data() + 1024, 512) == 0);
    }
    SUBCASE("short header gets IOERR") {
        m.submit({{kHeader, 8, false}, {kStatus, 1, true}});
        CHECK(*m.mem.read_obj<uint8_t>(kStatus) == virtio_blk::kSIoErr);
    }
    SUBCASE("no writable byte: nothing to report, used len 0") {
        m.header(virtio_blk::kTOut, 0);
        m.submit({{kHeader, 16, false}, {kData, 512, false}});
        CHECK(m.used_idx() == 1);
        CHECK(m.last_used_len() == 0);
    }
    SUBCASE("buffer outside RAM: chain consumed with len 0, device untouched") {
        const auto before = m.disk.bytes;
        m.header(virtio_blk::kTIn, 0);
        m.submit({{kHeader, 16, false}, {0x1F'FF00, 512, true}, {kStatus, 1, true}});
        CHECK(m.used_idx() == 1);
        CHECK(m.last_used_len() == 0);
        CHECK(*m.mem.read_obj<uint8_t>(kStatus) == 0xEE);
        CHECK(m.disk.bytes == before);
        CHECK((m.status() & virtio::kStatusNeedsReset) == 0);
        CHECK(m.request(virtio_blk::kTIn, 0, 512, true) == virtio_blk::kSOk);  // queue still fine
    }
    SUBCASE("descriptor loop: consumed, len 0") {
        m.header(virtio_blk::kTIn, 0);
        m.mem.write_obj(kDesc, kHeader);
        m.mem.write_obj<uint32_t>(kDesc + 8, 16);
        m.mem.write_obj<uint16_t>(kDesc + 12, F_NEXT);
        m.mem.write_obj<uint16_t>(kDesc + 14, 0);
        m.mem.write_obj<uint16_t>(kAvail + 4, 0);
        m.mem.write_obj<uint16_t>(kAvail + 2, 1);
        m.notify();
        CHECK(m.used_idx() == 1);
        CHECK(m.last_used_len() == 0);
    }
    SUBCASE("avail idx jump: DEVICE_NEEDS_RESET and a config interrupt") {
        m.mem.write_obj<uint16_t>(kAvail + 2, 1000);
        m.notify();
        CHECK((m.status() & virtio::kStatusNeedsReset) != 0);
        CHECK(m.used_idx() == 0);
        CHECK(m.irq.level);
        CHECK(m.read_isr() == virtio::kIsrConfig);
        CHECK_FALSE(m.irq.level);
        // Nothing is processed until reset; reset clears NEEDS_RESET.
        m.notify();
        CHECK(m.used_idx() == 0);
        REQUIRE(m.init());
        CHECK((m.status() & virtio::kStatusNeedsReset) == 0);
        CHECK(m.request(virtio_blk::kTIn, 0, 512, true) == virtio_blk::kSOk);
    }
}

TEST_CASE("virtio-blk read-only backend") {
    Machine m(64 * 512, /*ro*/ true);
    CHECK((m.device_features() & virtio_blk::kFRo));
    REQUIRE(m.init(virtio::kFVersion1 | virtio_blk::kFRo));
    const auto before = m.disk.bytes;
    CHECK(m.request(virtio_blk::kTOut, 0, 512, false) == virtio_blk::kSIoErr);
    CHECK(m.disk.bytes == before);
    CHECK(m.request(virtio_blk::kTIn, 0, 512, true) == virtio_blk::kSOk);
}

TEST_CASE("virtio-blk does nothing before DRIVER_OK") {
    Machine m;
    REQUIRE(m.init(virtio::kFVersion1, /*driver_ok*/ false));
    m.header(virtio_blk::kTIn, 0);
    m.submit({{kHeader, 16, false}, {kData, 512, true}, {kStatus, 1, true}});
    CHECK(m.used_idx() == 0);
    CHECK(m.irq.raises == 0);
}

TEST_CASE("virtio-blk INTx interrupts") {
    Machine m;
    REQUIRE(m.init());
    CHECK_FALSE(m.irq.level);
    m.request(virtio_blk::kTIn, 0, 512, true);
    CHECK(m.irq.level);
    CHECK(m.irq.raises == 1);
    CHECK((m.cfg_read(0x06, 2) & pci::kStatusInterrupt) != 0);
    CHECK(m.pci.isr() == virtio::kIsrQueue);
    CHECK(m.read_isr() == virtio::kIsrQueue);  // read-and-clear
    CHECK_FALSE(m.irq.level);
    CHECK(m.read_isr() == 0);
    CHECK((m.cfg_read(0x06, 2) & pci::kStatusInterrupt) == 0);

    // VIRTQ_AVAIL_F_NO_INTERRUPT: used ring updated, no interrupt.
    m.mem.write_obj<uint16_t>(kAvail, 1);
    m.request(virtio_blk::kTIn, 0, 512, true);
    CHECK(m.used_idx() == 2);
    CHECK_FALSE(m.irq.level);
    m.mem.write_obj<uint16_t>(kAvail, 0);

    // COMMAND.INTX_DISABLE masks the line but not the ISR.
    m.cfg_write(0x04, 2, pci::kCommandMemory | pci::kCommandIntxDisable);
    m.request(virtio_blk::kTIn, 0, 512, true);
    CHECK_FALSE(m.irq.level);
    CHECK((m.cfg_read(0x06, 2) & pci::kStatusInterrupt) != 0);
    m.cfg_write(0x04, 2, pci::kCommandMemory);
    CHECK(m.irq.level);

    // Device reset deasserts.
    m.set_common(STATUS, 1, 0);
    CHECK_FALSE(m.irq.level);
    CHECK(m.status() == 0);
    CHECK(m.pci.isr() == 0);
    m.set_common(QSEL, 2, 0);
    CHECK(m.common(QENABLE, 2) == 0);
    CHECK(m.common(QSIZE, 2) == virtio_blk::kQueueSize);
    CHECK(m.common(QDESC, 8) == 0);
}

TEST_CASE("virtio-blk MSI-X delivery and masking") {
    Machine m;
    const unsigned cap = m.find_msix();
    // Table entry 1: address/data; entries start masked.
    m.wr(kBar1 + 16 + 0, 4, 0xFEE0'1000);
    m.wr(kBar1 + 16 + 4, 4, 0);
    m.wr(kBar1 + 16 + 8, 4, 0x4041);
    CHECK(m.rd(kBar1 + 16 + 12, 4) == 1);
    m.cfg_write(cap + 2, 2, 0x8000);  // enable
    REQUIRE(m.init());
    m.set_common(MSIXCFG, 2, 0);
    CHECK(m.common(MSIXCFG, 2) == 0);
    m.set_common(QSEL, 2, 0);
    m.set_common(QMSIX, 2, 5);  // no such vector: reads back NO_VECTOR
    CHECK(m.common(QMSIX, 2) == virtio::kNoVector);
    m.set_common(QMSIX, 2, 1);
    CHECK(m.common(QMSIX, 2) == 1);

    // Masked: pending bit instead of a message.
    m.request(virtio_blk::kTIn, 0, 512, true);
    CHECK(m.msi.messages.empty());
    CHECK(m.rd(kBar1 + VirtioPci::kMsixPbaOffset, 8) == 0b10);
    CHECK_FALSE(m.irq.level);  // never INTx while MSI-X is on
    CHECK(m.pci.isr() == 0);
    // Unmask: the pending message is delivered.
    m.wr(kBar1 + 16 + 12, 4, 0);
    REQUIRE(m.msi.messages.size() == 1);
    CHECK(m.msi.messages[0] == std::pair<uint64_t, uint32_t>{0xFEE0'1000, 0x4041});
    CHECK(m.rd(kBar1 + VirtioPci::kMsixPbaOffset, 8) == 0);
    m.request(virtio_blk::kTIn, 0, 512, true);
    CHECK(m.msi.messages.size() == 2);

    // Function mask holds messages back until cleared.
    m.cfg_write(cap + 2, 2, 0xC000);
    m.request(virtio_blk::kTIn, 0, 512, true);
    CHECK(m.msi.messages.size() == 2);
    CHECK(m.rd(kBar1 + VirtioPci::kMsixPbaOffset, 1) == 0b10);
    m.cfg_write(cap + 2, 2, 0x8000);
    CHECK(m.msi.messages.size() == 3);

    // NO_VECTOR: no interrupt at all.
    m.set_common(QMSIX, 2, virtio::kNoVector);
    m.request(virtio_blk::kTIn, 0, 512, true);
    CHECK(m.msi.messages.size() == 3);
    CHECK_FALSE(m.irq.level);

    // Disabling MSI-X falls back to INTx.
    m.cfg_write(cap + 2, 2, 0);
    m.request(virtio_blk::kTIn, 0, 512, true);
    CHECK(m.irq.level);
    CHECK(m.msi.messages.size() == 3);
}

TEST_CASE("virtio-blk through the PCI configuration access capability (SeaBIOS pcicfg mode)") {
    Machine m;
    const unsigned cap = m.find_cap(5);
    REQUIRE(cap != 0);
    auto window = [&](uint32_t off, uint32_t len) {
        m.cfg_write(cap + 4, 1, 0);  // BAR0
        m.cfg_write(cap + 8, 4, off);
        m.cfg_write(cap + 12, 4, len);
    };
    auto cfg_rd = [&](uint32_t off, uint32_t len) {
        window(off, len);
        return m.cfg_read(cap + 16, len);
    };
    auto cfg_wr = [&](uint32_t off, uint32_t len, uint32_t v) {
        window(off, len);
        m.cfg_write(cap + 16, len, v);
    };
    // Turn MMIO decode off: everything below goes through config space only.
    m.cfg_write(0x04, 2, 0);
    CHECK(m.mmio.find(kBar0, 4).device == nullptr);

    cfg_wr(DFSEL, 4, 1);
    CHECK((cfg_rd(DF, 4) & 1) == 1);  // VERSION_1 is bit 32
    cfg_wr(STATUS, 1, 0);
    cfg_wr(STATUS, 1, virtio::kStatusAcknowledge | virtio::kStatusDriver);
    cfg_wr(GFSEL, 4, 0);
    cfg_wr(GF, 4, 0);
    cfg_wr(GFSEL, 4, 1);
    cfg_wr(GF, 4, 1);
    cfg_wr(STATUS, 1, 0x0B);
    CHECK(cfg_rd(STATUS, 1) == 0x0B);
    cfg_wr(QSEL, 2, 0);
    cfg_wr(QSIZE, 2, m.qsize);
    cfg_wr(QDESC, 4, kDesc);
    cfg_wr(QAVAIL, 4, kAvail);
    cfg_wr(QUSED, 4, kUsed);
    cfg_wr(QENABLE, 2, 1);
    cfg_wr(STATUS, 1, 0x0F);
    CHECK(cfg_rd(VirtioPci::kDeviceOffset, 4) == 128);  // capacity low

    m.header(virtio_blk::kTIn, 5);
    m.submit({{kHeader, 16, false}, {kData, 512, true}, {kStatus, 1, true}}, /*kick*/ false);
    cfg_wr(VirtioPci::kNotifyOffset, 2, 0);  // vp_notify() in pcicfg mode
    CHECK(*m.mem.read_obj<uint8_t>(kStatus) == virtio_blk::kSOk);
    CHECK(std::memcmp(m.ram.data() + kData, m.disk.bytes.data() + 5 * 512, 512) == 0);
    CHECK(cfg_rd(VirtioPci::kIsrOffset, 1) == virtio::kIsrQueue);
    CHECK(cfg_rd(VirtioPci::kIsrOffset, 1) == 0);

    // Invalid windows are ignored: bad length, unaligned, past the BAR, missing BAR.
    window(STATUS, 3);
    m.cfg_write(cap + 16, 1, 0);
    CHECK(m.pci.device_status() == 0x0F);
    window(STATUS + 1, 2);
    m.cfg_write(cap + 16, 2, 0);
    CHECK(m.pci.device_status() == 0x0F);
    window(static_cast<uint32_t>(VirtioPci::kConfigBarSize - 2), 4);
    m.cfg_write(cap + 16, 4, 0);
    m.cfg_write(cap + 4, 1, 5);
    m.cfg_write(cap + 8, 4, 0);
    m.cfg_write(cap + 12, 4, 4);
    m.cfg_write(cap + 16, 4, 0);
    CHECK(m.pci.device_status() == 0x0F);
}

TEST_CASE("virtio-pci PCI reset") {
    Machine m;
    REQUIRE(m.init());
    m.request(virtio_blk::kTIn, 0, 512, true);
    CHECK(m.irq.level);
    m.host.reset();
    CHECK_FALSE(m.irq.level);
    CHECK(m.pci.device_status() == 0);
    CHECK(m.cfg_read(0x10, 4) == 0);
    CHECK(m.mmio.find(kBar0, 4).device == nullptr);
}

TEST_CASE("virtio-blk survives random guest input") {
    // Deterministic pseudo-random register writes, ring scribbles and notifications: nothing may
    // crash or touch memory outside guest RAM (run this under ASan/UBSan too), and afterwards a
    // reset brings the device back to a working state.
    Machine m;
    REQUIRE(m.init(virtio::kFVersion1 | virtio::kFRingIndirect));
    uint64_t state = 0x9E3779B97F4A7C15ull;
    auto next = [&] {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        return state;
    };
    const size_t sizes[] = {1, 2, 4, 8};
    for (int i = 0; i < 20000; ++i) {
        const uint64_t r = next();
        const size_t size = sizes[r % 4];
        switch ((r >> 8) % 8) {
        case 0: m.wr(kBar0 + ((r >> 16) % VirtioPci::kConfigBarSize & ~(size - 1)), size, next()); break;
        case 1: m.wr(kBar1 + ((r >> 16) % VirtioPci::kMsixBarSize & ~(size - 1)), size, next()); break;
        case 2: m.cfg_write((r >> 16) % 256 & ~(std::min<size_t>(size, 4) - 1), std::min<size_t>(size, 4), static_cast<uint32_t>(next())); break;
        case 3: m.rd(kBar0 + ((r >> 16) % VirtioPci::kConfigBarSize & ~(size - 1)), size); break;
        case 4: m.mem.write_obj<uint64_t>(kDesc + ((r >> 16) % 0x3000 & ~7ull), next()); break;
        case 5:
            m.mem.write_obj<uint16_t>(kAvail + 2, static_cast<uint16_t>(m.avail_idx + (r >> 16) % 3));
            m.notify();
            break;
        case 6: m.cfg_read((r >> 16) % 256 & ~3u, 4); break;
        default:
            if ((r >> 16) % 64 == 0) {
                m.cfg_write(0x04, 2, pci::kCommandMemory | pci::kCommandMaster);
                m.cfg_write(0x10, 4, kBar0);
                m.cfg_write(0x14, 4, kBar1);
                m.init(virtio::kFVersion1 | virtio::kFRingIndirect);
            }
            break;
        }
    }
    // Restore a sane state and check the device still works.
    m.cfg_write(0x10, 4, kBar0);
    m.cfg_write(0x14, 4, kBar1);
    m.cfg_write(0x04, 2, pci::kCommandMemory | pci::kCommandMaster);
    const unsigned cap = m.find_msix();
    m.cfg_write(cap + 2, 2, 0);
    std::memset(m.ram.data() + kDesc, 0, 0x3000);
    REQUIRE(m.init());
    CHECK(m.request(virtio_blk::kTIn, 1, 512, true) == virtio_blk::kSOk);
    CHECK(std::memcmp(m.ram.data() + kData, m.disk.bytes.data() + 512, 512) == 0);
}
