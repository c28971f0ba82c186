#include "firmware/smbios.hpp"

#include <algorithm>
#include <cstring>

#include "devices/device.hpp"

namespace minivmm {

namespace {

// One structure: formatted area (header + fields) followed by its string set, which ends with
// a double NUL (DSP0134 §6.1.3).
struct Structure {
    std::vector<uint8_t> bytes;
    size_t formatted = 0;
};

Structure make_structure(uint8_t type, uint16_t handle, std::vector<uint8_t> fields,
                         const std::vector<std::string>& strings) {
    Structure s;
    s.bytes = {type, static_cast<uint8_t>(4 + fields.size()), static_cast<uint8_t>(handle), static_cast<uint8_t>(handle >> 8)};
    s.bytes.insert(s.bytes.end(), fields.begin(), fields.end());
    s.formatted = s.bytes.size();
    for (const auto& str : strings) {
        s.bytes.insert(s.bytes.end(), str.begin(), str.end());
        s.bytes.push_back(0);
    }
    if (strings.empty()) s.bytes.push_back(0);
    s.bytes.push_back(0);
    return s;
}

uint8_t checksum(const uint8_t* p, size_t n) {
    uint8_t sum = 0;
    for (size_t i = 0; i < n; ++i) sum = static_cast<uint8_t>(sum + p[i]);
    return static_cast<uint8_t>(-sum);
}

}  // namespace

SmbiosBlobs build_smbios(const std::string& version, bool bios_information) {
    std::vector<Structure> structures;
    if (bios_information) {
        // Type 0, BIOS Information (§7.1), SMBIOS 2.4+ layout: 24 bytes. No BIOS image in the legacy
        // area (starting segment 0, ROM size 0), no release date; characteristics bit 3 "not
        // supported"; extension byte 2 bit 4 "the table describes a virtual machine"; 0xFF for
        // the release numbers nobody supports (§7.1.1, §7.1.2.2).
        std::vector<uint8_t> bios{1, 2, 0, 0, 0, 0};  // vendor, version, segment, no date, ROM size
        bios.insert(bios.end(), {0x08, 0, 0, 0, 0, 0, 0, 0});  // characteristics
        bios.insert(bios.end(), {0x00, 0x10, 0xFF, 0xFF, 0xFF, 0xFF});
        structures.push_back(make_structure(0, 0x0000, bios, {"minivmm", version}));
    }
    // Type 1, System Information (DSP0134 §7.2), SMBIOS 2.4+ layout: 27 bytes.
    std::vector<uint8_t> system{1, 2, 3, 0};           // manufacturer, product, version, no serial
    system.insert(system.end(), 16, 0);                // UUID: not set
    system.insert(system.end(), {0x06, 0, 0});         // wake-up type: power switch; no SKU, no family
    structures.push_back(make_structure(1, 0x0100, system, {"minivmm", "minivmm", version}));
    // Type 32, System Boot Information (§7.33): no errors detected.
    structures.push_back(make_structure(32, 0x2000, {0, 0, 0, 0, 0, 0, 0}, {}));
    // Type 127, End-of-Table (§7.46).
    structures.push_back(make_structure(127, 0x7F00, {}, {}));

    SmbiosBlobs out;
    size_t max_size = 0;
    for (const auto& s : structures) {
        out.tables.insert(out.tables.end(), s.bytes.begin(), s.bytes.end());
        max_size = std::max(max_size, s.bytes.size());
    }

    // SMBIOS 2.1 entry point (§5.2.1), 31 bytes. The firmware fills in the table address and
    // fixes both checksums when it places the tables; they are valid here anyway.
    std::vector<uint8_t>& ep = out.anchor;
    ep.assign(31, 0);
    std::memcpy(ep.data(), "_SM_", 4);
    ep[5] = 31;    // entry point length
    ep[6] = 2;     // SMBIOS 2.8
    ep[7] = 8;
    store_le({ep.data() + 8, 2}, max_size);
    std::memcpy(ep.data() + 16, "_DMI_", 5);
    store_le({ep.data() + 22, 2}, out.tables.size());
    store_le({ep.data() + 28, 2}, structures.size());
    ep[30] = 0x28;  // BCD revision 2.8
    ep[21] = checksum(ep.data() + 16, 15);
    ep[4] = checksum(ep.data(), 31);
    return out;
}

std::vector<uint8_t> smbios_anchor_at(std::vector<uint8_t> anchor, uint32_t tables_address) {
    if (anchor.size() != 31) return anchor;
    store_le({anchor.data() + 24, 4}, tables_address);
    anchor[21] = 0;
    anchor[21] = checksum(anchor.data() + 16, 15);
    anchor[4] = 0;
    anchor[4] = checksum(anchor.data(), 31);
    return anchor;
}

}  // namespace minivmm
