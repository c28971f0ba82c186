// libFuzzer target for the event-log reader and writer of -kernel (firmware/tcg_event_log.hpp): the
// log lives in guest RAM, so the guest (or a broken firmware) controls every byte of it. The input is
// a version byte, an area size, the area's bytes and an event's data.
// Checks: parse() never reads past the area (ASan) and reports an end inside it; appending an event
// with one digest per listed algorithm either fails leaving the area unchanged, or writes only after
// the old end, and a log with zeros after it then parses to one more event ending at the new end.
// start() (the log -bios none makes) on the same area with an algorithm list from the input either
// refuses it, leaving the area unchanged, or writes a header parse() reads back exactly.
#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <vector>

#include "firmware/tcg_event_log.hpp"
#include "tests/fuzz/fuzz_support.hpp"

using namespace minivmm;
using namespace minivmm::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Input in(data, size);
    const TpmVersion version = in.u8() & 1 ? TpmVersion::v2_0 : TpmVersion::v1_2;
    const size_t area_size = in.u16() % 8192;
    std::vector<uint8_t> area = in.bytes(area_size);  // exactly area_size bytes: ASan sees any overread
    const std::vector<uint8_t> event_data = in.bytes(in.u8());
    std::vector<tcg_log::Algorithm> algorithms(in.u8() % 20);
    for (tcg_log::Algorithm& a : algorithms) a = {in.u16(), static_cast<uint16_t>(in.u8() % 80)};

    std::vector<uint8_t> fresh = area;
    if (auto started = tcg_log::start(fresh, version, algorithms)) {
        auto back = tcg_log::parse(fresh, version);
        check(back && back->end == started->end && back->events == started->events &&
              back->algorithms.size() == started->algorithms.size());
        for (size_t i = 0; back && i < back->algorithms.size() && i < started->algorithms.size(); ++i)
            check(back->algorithms[i].id == started->algorithms[i].id &&
                  back->algorithms[i].digest_size == started->algorithms[i].digest_size);
    } else {
        check(fresh == area);
    }

    auto layout = tcg_log::parse(area, version);
    if (!layout) return 0;
    check(layout->end <= area.size());
    check(!layout->algorithms.empty());
    std::vector<tcg_log::Digest> digests;
    for (const tcg_log::Algorithm& a : layout->algorithms) digests.push_back({a.id, std::vector<uint8_t>(a.digest_size, 0x5A)});
    const auto before = area;
    const auto old = *layout;
    if (!tcg_log::append(area, *layout, 9, tcg_log::kEvIpl, digests, event_data)) {
        check(area == before);
        check(layout->end == old.end && layout->events == old.events);
        return 0;
    }
    check(std::equal(before.begin(), before.begin() + static_cast<ptrdiff_t>(old.end), area.begin()));
    check(layout->end > old.end && layout->end <= area.size());
    // A log whose area was zero after its end stops right after the new event; after garbage the
    // reader may stop anywhere (or refuse the log), which is the guest's doing.
    const bool zero_after = std::all_of(area.begin() + static_cast<ptrdiff_t>(layout->end), area.end(),
                                        [](uint8_t b) { return b == 0; });
    if (zero_after) {
        auto again = tcg_log::parse(area, version);
        check(again && again->end == layout->end && again->events == old.events + 1);
    }
    return 0;
}
