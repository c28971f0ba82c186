// libFuzzer target for the ACPI PM block (PM1a_EVT, PM1a_CNT, PM_TMR at 0x600-0x60B). The input is
// a configuration byte (where the clock starts) followed by operations through the PIO bus: reads
// and writes of every size (1..8) at every port from 0x5FC to 0x60F, so accesses straddling the
// block's ends are included, and clock steps (a few ticks, across a TMR_STS period, huge jumps).
// A model of the guest-visible registers (ACPI 6.x §4.8.3) predicts every byte read:
// PM1_STS holds only TMR_STS, set after each change of timer bit 23 and cleared by writing 1
// (write-1-to-clear per byte lane); PM1_EN keeps the implemented enables; PM1_CNT reads SCI_EN=1,
// BM_RLD and SLP_TYP as written, SLP_EN and GBL_RLS as 0; +6/+7 read 0xFF; PM_TMR is
// floor(elapsed_ns * 3579545 / 10^9) mod 2^24, computed here in 128-bit arithmetic, and ignores
// writes. SLP_EN with SLP_TYP = S5 powers off exactly once per such write, nothing else does;
// no reset is ever requested; accesses not wholly inside the block fail and change nothing.
#include <cstddef>
#include <cstdint>

#include "devices/acpi_pm.hpp"
#include "tests/fuzz/fuzz_support.hpp"
#include "devices/bus.hpp"
#include "vmm/base/platform.hpp"

using namespace minivmm;
using namespace minivmm::fuzz;

namespace {

constexpr uint16_t kBase = platform::kAcpiPmBase;
constexpr uint64_t kSize = AcpiPm::kSize;
constexpr uint64_t kTmrPeriod = uint64_t{1} << 23;

class RecordingSystem final : public SystemControl {
public:
    void request_reset() noexcept override { ++resets; }
    void request_poweroff() noexcept override { ++poweroffs; }
    unsigned resets = 0, poweroffs = 0;
};

// What the guest can observe of the block.
struct Model {
    uint64_t start_ns = 0, now_ns = 0;
    bool tmr_sts = false;
    uint64_t tmr_epoch = 0;  // elapsed ticks / 2^23 when TMR_STS was last brought up to date
    uint16_t enable = 0, control = 0;
    unsigned poweroffs = 0;

    uint64_t ticks() const {  // §4.8.3.3: 3.579545 MHz since the device was created
        const uint64_t ns = now_ns > start_ns ? now_ns - start_ns : 0;
        return static_cast<uint64_t>(static_cast<unsigned __int128>(ns) * AcpiPm::kTimerHz / 1'000'000'000u);
    }
    void advance(uint64_t ns) {
        now_ns = ns > ~uint64_t{0} - now_ns ? ~uint64_t{0} : now_ns + ns;
        const uint64_t epoch = ticks() / kTmrPeriod;
        if (epoch != tmr_epoch) tmr_sts = true;  // bit 23 changed at least once
        tmr_epoch = epoch;
    }
    uint8_t byte(uint64_t at) const {
        const uint16_t status = tmr_sts ? AcpiPm::kTmrSts : 0;
        const uint16_t cnt = static_cast<uint16_t>(control | AcpiPm::kSciEn);
        const uint32_t timer = static_cast<uint32_t>(ticks() & 0xFF'FFFF);
        switch (at) {
        case 0: case 1: return static_cast<uint8_t>(status >> (8 * at));
        case 2: case 3: return static_cast<uint8_t>(enable >> (8 * (at - 2)));
        case 4: case 5: return static_cast<uint8_t>(cnt >> (8 * (at - 4)));
        case 8: case 9: case 10: case 11: return static_cast<uint8_t>(timer >> (8 * (at - 8)));
        default: return 0xFF;  // the gap at +6/+7
        }
    }
    void write(uint64_t offset, const uint8_t* data, size_t n) {
        uint16_t sts_v = 0, sts_m = 0, en_v = 0, en_m = 0, cnt_v = 0, cnt_m = 0;
        for (size_t i = 0; i < n; ++i) {
            const uint64_t at = offset + i;
            const auto v = static_cast<uint16_t>(data[i] << (8 * (at & 1)));
            const auto m = static_cast<uint16_t>(0xFF << (8 * (at & 1)));
            if (at < 2) sts_v |= v, sts_m |= m;
            else if (at < 4) en_v |= v, en_m |= m;
            else if (at < 6) cnt_v |= v, cnt_m |= m;
        }
        if (sts_v & sts_m & AcpiPm::kTmrSts) tmr_sts = false;
        enable = static_cast<uint16_t>(((enable & ~en_m) | (en_v & en_m)) & AcpiPm::kEnableMask);
        const auto merged = static_cast<uint16_t>((control & ~cnt_m) | (cnt_v & cnt_m));
        control = merged & (AcpiPm::kBmRld | AcpiPm::kSlpTypMask);
        if ((cnt_v & cnt_m & AcpiPm::kSlpEn) &&
            ((merged & AcpiPm::kSlpTypMask) >> AcpiPm::kSlpTypShift) == platform::kSleepTypeS5)
            ++poweroffs;
    }
};

class Harness {
public:
    explicit Harness(uint8_t config) {
        // The clock starts at 0, mid-range, or so close to 2^64 that big steps saturate.
        static constexpr uint64_t kStarts[4] = {0, 1'000'000'007, uint64_t{1} << 62, ~uint64_t{0} - (uint64_t{1} << 40)};
        model_.start_ns = model_.now_ns = kStarts[config & 3];
        pm_ = std::make_unique<AcpiPm>(system_, [this] { return model_.now_ns; });
        bus_.insert(kBase, kSize, *pm_);
    }

    void step(Input& in) {
        const uint8_t op = in.u8();
        switch (op % 4) {
        case 0:
        case 1: {
            const size_t n = pick_access_size(op >> 2);
            const uint64_t port = kBase - 4 + in.u8() % 20;  // 0x5FC..0x60F
            uint8_t got[8];
            guarded_read(bus_, port, n, got);
            const bool inside = port >= kBase && port + n <= kBase + kSize;
            for (size_t i = 0; i < n; ++i) check(got[i] == (inside ? model_.byte(port - kBase + i) : 0xFF));
            break;
        }
        case 2: {
            const size_t n = pick_access_size(op >> 2);
            const uint64_t port = kBase - 4 + in.u8() % 20;
            uint8_t buf[8];
            in.fill(std::span<uint8_t>(buf, n));
            const bool inside = port >= kBase && port + n <= kBase + kSize;
            check(bus_.write(port, std::span<const uint8_t>(buf, n)) == inside);
            if (inside) model_.write(port - kBase, buf, n);
            break;
        }
        default:
            switch ((op >> 2) % 4) {
            case 0: model_.advance(in.u8()); break;                                   // a few ns
            case 1: model_.advance(in.u32()); break;                                  // up to ~4 s
            case 2: model_.advance(kTmrPeriod * 1'000'000'000 / AcpiPm::kTimerHz + in.u8()); break;  // ~2.34 s
            default: model_.advance(in.u64()); break;
            }
            break;
        }
        check(system_.poweroffs == model_.poweroffs);
        check(system_.resets == 0);
    }

private:
    RecordingSystem system_;
    Model model_;
    std::unique_ptr<AcpiPm> pm_;
    Bus bus_{"pio"};
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return run_operations<Harness>(data, size); }
