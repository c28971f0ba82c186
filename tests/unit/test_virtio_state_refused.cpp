// VirtioPci snapshots that no virtio-pci function could have written (devices/device_state.hpp):
// each is refused, and the device it was offered to keeps its registers, queue and INTx line.
#include <doctest/doctest.h>

#include "tests/unit/virtio_blk_fixture.hpp"

using namespace minivmm;
using namespace minivmm::testing;

namespace {

// Where the fields of a VirtioPci blob (format version 1) lie.
struct Layout {
    size_t config = 5;  // after version and the config length
    size_t msix = 1 + 4 + 256;
    size_t common;      // device_feature_select
    size_t vq;          // queue 0's Virtqueue blob (after its length)
    size_t vector;      // queue 0's MSI-X vector
    explicit Layout(const std::vector<uint8_t>& blob) {
        const size_t msix_len = static_cast<size_t>(load_le(std::span<const uint8_t>(blob.data() + msix, 4)));
        common = msix + 4 + msix_len;
        vq = common + 26 + 4;
        const size_t vq_len = static_cast<size_t>(load_le(std::span<const uint8_t>(blob.data() + vq - 4, 4)));
        vector = vq + vq_len;
    }
    // Offsets from `common`: dfsel 0, gfsel 4, driver features 8, msix_config 16, status 18,
    // generation 19, queue_select 20, isr 22, idle 23, queue count 24.
};

std::vector<uint8_t> with(std::vector<uint8_t> blob, size_t at, uint8_t v) {
    blob.at(at) = v;
    return blob;
}

}  // namespace

TEST_CASE("virtio state: truncated, versioned, trailing and out-of-range blobs are refused, device unchanged") {
    Machine a;
    REQUIRE(a.init());
    a.request(virtio_blk::kTIn, 0, 512, true);  // ISR set, INTx high, used idx 1
    const std::vector<uint8_t> good = saved_state(a.pci);
    const Layout at(good);
    REQUIRE(good.size() == at.vector + 2);

    Machine b;  // a live device of its own: it must not change
    REQUIRE(b.init());
    b.request(virtio_blk::kTIn, 0, 512, true);
    b.request(virtio_blk::kTIn, 0, 512, true);
    const std::vector<uint8_t> before = saved_state(b.pci);
    REQUIRE(b.irq.level);
    auto refused = [&](const std::vector<uint8_t>& blob) {
        CHECK_FALSE(b.pci.load_state(blob));
        CHECK(saved_state(b.pci) == before);
        CHECK((b.irq.level && b.irq.raises == 1 && b.msi.messages.empty()));
    };
    for (size_t n = 0; n < good.size(); n += (n < 300 ? 1 : 3))
        refused({good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n)});
    auto trailing = good;
    trailing.push_back(0);
    refused(trailing);
    refused(with(good, 0, 2));                                     // version
    refused(with(good, at.config + pci::kVendorId, 0));             // another device's config
    refused(with(good, at.config + pci::kStatus, good[at.config + pci::kStatus] & ~pci::kStatusInterrupt));  // vs ISR
    const unsigned cap = a.pci.msix_cap_offset();
    refused(with(good, at.config + cap + 3, 0x80));                 // MSI-X on in config, off in the table
    refused(with(good, at.msix, 0));                                // the table's own version
    refused(with(good, at.common + 8 + 4, 0));                      // FEATURES_OK without VERSION_1
    refused(with(good, at.common + 16, 7));                         // msix_config: no vector 7 (2 vectors)
    refused(with(good, at.common + 19, 1));                         // config generation never moves
    refused(with(good, at.common + 22, 4));                         // ISR bit 2 does not exist
    refused(with(good, at.common + 23, 0));                         // saved while busy
    refused(with(good, at.common + 24, 2));                         // two queues: this device has one
    refused(with(good, at.vq + 1, 3));                              // queue size not a power of two
    refused(with(with(good, at.vq + 1, 0), at.vq + 2, 2));          // 512 > the maximum 256
    refused(with(good, at.vq + 30, 2));                             // a chain popped and never pushed
    refused(with(good, at.vector, 2));                              // queue vector 2 does not exist

    // The good blob still loads into the same device afterwards, and that device then matches a.
    REQUIRE(b.pci.load_state(good));
    CHECK(saved_state(b.pci) == good);
    CHECK(b.irq.level);
    CHECK(b.pci.queue(0).used_idx() == 1);
}
