#include "vmm/tpm/swtpm_stateblob.hpp"

#include <fmt/core.h>

#include "vmm/base/bytes.hpp"

namespace minivmm::swtpm {

std::string blob_type_name(uint32_t type) {
    switch (type) {
    case kBlobPermanent: return "permanent";
    case kBlobVolatile: return "volatile";
    case kBlobSaveState: return "savestate";
    default: return fmt::format("type {}", type);
    }
}

CtrlRequest encode_get_stateblob(uint32_t type, uint32_t offset) noexcept {
    CtrlRequest r = encode_ctrl(CtrlCmd::get_stateblob);
    store_be(std::span(r.bytes).subspan(4, 4), kStateFlagDecrypted);
    store_be(std::span(r.bytes).subspan(8, 4), type);
    store_be(std::span(r.bytes).subspan(12, 4), offset);
    r.size = 16;
    return r;
}

std::vector<uint8_t> encode_set_stateblob(uint32_t type, uint32_t flags, std::span<const uint8_t> blob) {
    std::vector<uint8_t> out(16 + blob.size());
    store_be(std::span(out).subspan(0, 4), static_cast<uint32_t>(CtrlCmd::set_stateblob));
    store_be(std::span(out).subspan(4, 4), flags);
    store_be(std::span(out).subspan(8, 4), type);
    store_be(std::span(out).subspan(12, 4), static_cast<uint32_t>(blob.size()));
    std::copy(blob.begin(), blob.end(), out.begin() + 16);
    return out;
}

bool parse_stateblob_header(std::span<const uint8_t> payload, StateBlobHeader& out) noexcept {
    if (payload.size() < 12) return false;
    out.flags = load_be32(payload);
    out.totlength = load_be32(payload, 4);
    out.length = load_be32(payload, 8);
    return true;
}

bool StateBlobAssembler::accept(const StateBlobHeader& h, std::string& why) {
    if (h.length > h.totlength) {
        why = fmt::format("a reply of {} bytes of a {}-byte blob", h.length, h.totlength);
        return false;
    }
    if (!started_) {
        if (h.totlength > kMaxStateBlob) {
            why = fmt::format("a {}-byte blob (at most {} can be restored)", h.totlength, kMaxStateBlob);
            return false;
        }
        started_ = true;
        total_ = h.totlength;
        flags_ = h.flags;
    } else {
        // swtpm on a socket counts totlength from the offset asked for; CUSE counts the whole blob.
        const uint32_t remaining = total_ - offset();
        if (h.flags != flags_ || (h.totlength != remaining && h.totlength != total_) || h.length == 0) {
            why = fmt::format("a continuation at offset {} that does not fit (flags {:#x}, totlength {}, length {})",
                              offset(), h.flags, h.totlength, h.length);
            return false;
        }
    }
    if (h.length > total_ - offset()) {
        why = fmt::format("{} bytes at offset {} of a {}-byte blob", h.length, offset(), total_);
        return false;
    }
    pending_at_ = data_.size();
    data_.resize(data_.size() + h.length);
    return true;
}

}  // namespace minivmm::swtpm
