#include "vmm/tpm/tpm_state_blob.hpp"

#include "devices/device_state.hpp"

namespace minivmm {

namespace {

constexpr uint8_t kMagic[4] = {'M', 'V', 'T', 'S'};

void write_part(StateWriter& w, const TpmStatePart& part) {
    w.u32(part.flags);
    w.bytes(part.data);
}

bool read_part(StateReader& r, TpmStatePart& part) {
    r.u32(part.flags);
    r.bytes(part.data, kMaxTpmStatePart);
    return r.ok() && (part.flags & ~kTpmStatePartEncrypted) == 0;
}

}  // namespace

std::vector<uint8_t> encode_tpm_state_blob(const TpmStateBlob& blob) {
    StateWriter w;
    for (uint8_t b : kMagic) w.u8(b);
    w.u8(kTpmStateBlobFormat);
    w.u8(blob.version == TpmVersion::v2_0 ? 2 : 1);
    write_part(w, blob.permanent);
    write_part(w, blob.volatile_state);
    write_part(w, blob.save_state);
    return w.data();
}

bool parse_tpm_state_blob(std::span<const uint8_t> bytes, TpmStateBlob& out) {
    StateReader r(bytes);
    uint8_t magic[4] = {};
    for (uint8_t& b : magic) r.u8(b);
    uint8_t format = 0, version = 0;
    r.u8(format);
    r.u8(version);
    if (!r.ok() || magic[0] != kMagic[0] || magic[1] != kMagic[1] ||
        magic[2] != kMagic[2] || magic[3] != kMagic[3] || format != kTpmStateBlobFormat || (version != 1 && version != 2))
        return false;
    TpmStateBlob blob;
    blob.version = version == 2 ? TpmVersion::v2_0 : TpmVersion::v1_2;
    try {
        if (!read_part(r, blob.permanent) || !read_part(r, blob.volatile_state) || !read_part(r, blob.save_state))
            return false;
    } catch (...) {
        return false;  // out of memory for a part
    }
    if (!r.finished() || blob.permanent.data.empty()) return false;
    out = std::move(blob);
    return true;
}

}  // namespace minivmm
