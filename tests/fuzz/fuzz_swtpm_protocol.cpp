// libFuzzer target for the swtpm protocol helpers: control-channel replies (CtrlReply and the
// payload decoders) and TPM response framing (TpmResponseReader) fed with arbitrary bytes in
// arbitrary chunks, through both feed() and next_space()/received(), with output buffers and size
// limits of any size (each buffer an exactly-sized heap block); plus the header accessors, the
// version probe check and the text helpers on arbitrary values; the CMD_GET_STATEBLOB blob
// assembly and the TPM state blob parser (snapshots).
// Checks: a reader never takes more than it asked for, never writes past its buffer, keeps the
// bytes in stream order, completes exactly at the declared size and rejects sizes below 10 or
// above the limit; a control reply is complete after 4 bytes on error and after the command's
// full reply size on success, and its payload is what followed ptm_res.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "tests/fuzz/fuzz_support.hpp"
#include "vmm/tpm/swtpm_protocol.hpp"
#include "vmm/tpm/swtpm_stateblob.hpp"
#include "vmm/tpm/tpm_state_blob.hpp"
#include "vmm/base/bytes.hpp"

using namespace minivmm;
using namespace minivmm::fuzz;
using namespace minivmm::swtpm;

namespace {


void fuzz_ctrl_reply(Input& in) {
    static constexpr CtrlCmd kCmds[] = {CtrlCmd::get_capability, CtrlCmd::init, CtrlCmd::shutdown,
                                        CtrlCmd::get_tpm_established, CtrlCmd::set_locality, CtrlCmd::cancel_tpm_cmd,
                                        CtrlCmd::reset_tpm_established, CtrlCmd::stop, CtrlCmd::set_datafd,
                                        CtrlCmd::set_buffersize};
    const uint8_t sel = in.u8();
    const CtrlCmd cmd = sel < 10 ? kCmds[sel] : static_cast<CtrlCmd>(in.u32());  // also codes we never send
    check(!ctrl_cmd_name(cmd).empty());
    const size_t full = ctrl_success_reply_size(cmd);
    check(full >= 4 && full <= 16);
    CtrlReply reply(cmd);
    std::vector<uint8_t> stream;
    for (unsigned chunks = 0; !reply.complete() && chunks < 8 && !in.empty(); ++chunks) {
        const size_t wanted = reply.wanted();
        check(wanted > 0 && wanted <= 16);
        std::vector<uint8_t> chunk = in.bytes(in.u8() % 20);
        const size_t taken = reply.feed(chunk);
        check(taken <= chunk.size());
        check(taken == chunk.size() || reply.complete());  // stops only at the end of the reply
        stream.insert(stream.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(taken));
    }
    if (!reply.complete()) return;
    check(stream.size() >= 4);
    check(reply.result() == load_be32(stream));
    // CMD_GET_STATEBLOB's header also follows a non-fatal result (TPM_RETRY: no such blob).
    const bool header = reply.result() == kPtmSuccess || (cmd == CtrlCmd::get_stateblob && (reply.result() & kPtmNonFatal));
    check(stream.size() == (header ? full : 4));
    const auto payload = reply.payload();
    check(payload.size() == stream.size() - 4);
    check(payload.empty() || std::memcmp(payload.data(), stream.data() + 4, payload.size()) == 0);
    uint32_t caps = 0;
    bool established = false;
    BufferSizes sizes;
    check(parse_capabilities(payload, caps) == (payload.size() >= 4));
    check(parse_established(payload, established) == (payload.size() >= 1));
    check(parse_buffer_sizes(payload, sizes) == (payload.size() >= 12));
    check(reply.feed(stream) == 0);  // nothing more belongs to it
    check(!ptm_result_text(reply.result()).empty());
}

void fuzz_response_reader(Input& in) {
    const uint8_t shape = in.u8();
    static constexpr size_t kBuffers[8] = {4096, 10, 9, 0, 64, 11, 8192, 1};
    const size_t buffer = (shape & 0x80) ? in.u16() % 8200 : kBuffers[shape & 7];
    size_t max_size = buffer;
    switch ((shape >> 3) & 3) {
    case 1: max_size = in.u16(); break;
    case 2: max_size = SIZE_MAX; break;
    case 3: max_size = in.u8(); break;
    default: break;
    }
    auto out = std::make_unique<uint8_t[]>(buffer);
    TpmResponseReader reader(std::span<uint8_t>(out.get(), buffer), max_size);
    const size_t limit = std::min(buffer, max_size);
    std::vector<uint8_t> stream;
    const bool direct = shape & 0x40;
    for (unsigned chunks = 0; reader.state() == TpmResponseReader::State::need_more && chunks < 64 && !in.empty();
         ++chunks) {
        const size_t wanted = reader.wanted();
        check(wanted > 0 && reader.size() + wanted <= limit);
        std::vector<uint8_t> chunk = in.bytes(in.u16() % 300);
        size_t taken;
        if (direct) {  // as the channel does: recv straight into next_space()
            std::span<uint8_t> space = reader.next_space();
            check(space.size() == wanted);
            check(space.data() == out.get() + reader.size());
            taken = std::min(space.size(), chunk.size());
            if (taken > 0) std::memcpy(space.data(), chunk.data(), taken);
            reader.received(chunk.size());  // a short read is reported as is; too much is clipped
        } else {
            taken = reader.feed(chunk);
        }
        check(taken == std::min(wanted, chunk.size()));
        stream.insert(stream.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(taken));
        check(reader.size() == stream.size());
    }
    check(reader.size() <= limit);
    check(stream.empty() || std::memcmp(out.get(), stream.data(), stream.size()) == 0);
    switch (reader.state()) {
    case TpmResponseReader::State::complete:
        check(reader.size() == reader.declared_size() && reader.size() >= kTpmHeaderSize);
        check(tpm_size(std::span<const uint8_t>(out.get(), reader.size())) == reader.size());
        check(reader.wanted() == 0 && reader.feed(stream) == 0);
        break;
    case TpmResponseReader::State::malformed: {
        check(reader.wanted() == 0);
        if (limit >= kTpmHeaderSize) {
            check(reader.size() == kTpmHeaderSize);
            const uint32_t declared = tpm_size(std::span<const uint8_t>(out.get(), kTpmHeaderSize));
            check(declared < kTpmHeaderSize || declared > limit);
        }
        break;
    }
    case TpmResponseReader::State::need_more:
        check(reader.wanted() > 0);
        break;
    }
}

void fuzz_headers(Input& in) {
    const std::vector<uint8_t> msg = in.bytes(in.u8() % 16);
    const auto view = std::span<const uint8_t>(msg);
    check(msg.size() >= 2 || tpm_tag(view) == 0);
    check(msg.size() >= 6 || tpm_size(view) == 0);
    check(msg.size() >= kTpmHeaderSize || tpm_code(view) == 0);
    const uint16_t tag = in.u16();
    if (probe_response_matches(view, tag)) check(tpm_size(view) == msg.size() && tpm_tag(view) == tag);
    const TpmVersion v = (tag & 1) ? TpmVersion::v1_2 : TpmVersion::v2_0;
    const auto err = tpm_error_response(v, in.u32());
    check(probe_response_matches(err, tpm_tag(err)));
    const auto fail = tpm_failure_response(v);
    check(tpm_size(fail) == kTpmHeaderSize);
    const uint32_t bits = in.u32();
    check(bits == 0 || !cap_names(bits).empty());
    check(!ptm_result_text(bits).empty());
    const CtrlRequest r = encode_ctrl_u32(static_cast<CtrlCmd>(in.u32()), bits);
    check(r.view().size() == 8);
    check(encode_ctrl_locality(CtrlCmd::set_locality, in.u8()).view().size() == 8);
}

// A state blob from CMD_GET_STATEBLOB replies with arbitrary headers: the assembler never takes
// more than the first reply's total, always progresses or refuses, and hands out exactly what
// was written into its bodies. Then the minivmm TPM state blob parser on the rest of the input:
// what it accepts encodes back to the same bytes.
void fuzz_state_blobs(Input& in) {
    StateBlobAssembler a;
    std::vector<uint8_t> expected;
    std::string why;
    for (unsigned replies = 0; !a.complete() && replies < 16 && !in.empty(); ++replies) {
        StateBlobHeader h{in.u32(), in.u32() % (kMaxStateBlob + 16), in.u32() % 4096};
        const uint32_t before = a.offset();
        if (!a.accept(h, why)) {
            check(!why.empty() && a.offset() == before);
            break;
        }
        check(a.body().size() == h.length && a.offset() == before + h.length);
        for (uint8_t& b : a.body()) {
            b = in.u8();
            expected.push_back(b);
        }
    }
    if (a.complete()) check(a.take() == expected);
    const std::vector<uint8_t> rest = in.bytes(in.u16());
    TpmStateBlob blob;
    if (parse_tpm_state_blob(rest, blob)) check(encode_tpm_state_blob(blob) == rest);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Input in(data, size);
    for (unsigned ops = 0; !in.empty() && ops < 64; ++ops) {
        switch (in.u8() % 5) {
        case 0: fuzz_ctrl_reply(in); break;
        case 1: case 2: fuzz_response_reader(in); break;
        case 4: fuzz_state_blobs(in); break;
        default: fuzz_headers(in); break;
        }
    }
    return 0;
}
