// libFuzzer target for a snapshot's parsers (vmm/snapshot_file.hpp, vmm/snapshot_preamble.hpp):
// a snapshot is a file a user may be handed. The input's first 4096 bytes are the header, the rest
// the state blob, read as -restore reads it: the preamble first. Checks: nothing throws but
// SnapshotError; an accepted header encodes back to exactly its bytes (one spelling per header);
// an accepted preamble writes back to exactly the bytes it was read from.
#include <cstddef>
#include <cstdint>
#include <span>

#include "devices/device_state.hpp"
#include "tests/fuzz/fuzz_support.hpp"
#include "vmm/snapshot_file.hpp"
#include "vmm/snapshot_preamble.hpp"

using namespace minivmm;
using namespace minivmm::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::span<const uint8_t> input(data, size);
    if (size >= kSnapshotHeaderSize) {
        try {
            const SnapshotHeader header = parse_snapshot_header(input.first(kSnapshotHeaderSize));
            const std::vector<uint8_t> again = encode_snapshot_header(header);
            check(std::equal(again.begin(), again.end(), data));
        } catch (const SnapshotError&) {
        }
    }
    const std::span<const uint8_t> state = size >= kSnapshotHeaderSize ? input.subspan(kSnapshotHeaderSize) : input;
    StateReader reader(state);
    try {
        const SnapshotPreamble preamble = parse_snapshot_preamble(reader);
        StateWriter w;
        write_snapshot_preamble(w, preamble);
        check(w.data().size() == reader.position());
        check(std::equal(w.data().begin(), w.data().end(), state.begin()));
        (void)compare_snapshot_inputs(preamble, preamble);
    } catch (const SnapshotError&) {
    }
    return 0;
}
