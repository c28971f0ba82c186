// swtpm control-channel encoding and reply parsing, TPM response framing (vmm/tpm/swtpm_protocol.hpp).
#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <vector>

#include "vmm/tpm/swtpm_protocol.hpp"

using namespace minivmm;
using namespace minivmm::swtpm;

namespace {

std::vector<uint8_t> bytes(std::span<const uint8_t> s) { return {s.begin(), s.end()}; }

}  // namespace

TEST_CASE("control requests are big-endian command words with their payload") {
    CHECK(bytes(encode_ctrl(CtrlCmd::get_capability).view()) == std::vector<uint8_t>{0, 0, 0, 0x01});
    CHECK(bytes(encode_ctrl(CtrlCmd::set_datafd).view()) == std::vector<uint8_t>{0, 0, 0, 0x10});
    CHECK(bytes(encode_ctrl_u32(CtrlCmd::init, 0).view()) == std::vector<uint8_t>{0, 0, 0, 0x02, 0, 0, 0, 0});
    CHECK(bytes(encode_ctrl_u32(CtrlCmd::set_buffersize, 4096).view()) ==
          std::vector<uint8_t>{0, 0, 0, 0x11, 0, 0, 0x10, 0x00});
    // QEMU sends the locality as 4 bytes: loc, 0, 0, 0.
    CHECK(bytes(encode_ctrl_locality(CtrlCmd::set_locality, 3).view()) ==
          std::vector<uint8_t>{0, 0, 0, 0x05, 3, 0, 0, 0});
    CHECK(bytes(encode_ctrl_locality(CtrlCmd::reset_tpm_established, 4).view()) ==
          std::vector<uint8_t>{0, 0, 0, 0x0b, 4, 0, 0, 0});
}

TEST_CASE("success reply sizes follow tpm_ioctl.h") {
    CHECK(ctrl_success_reply_size(CtrlCmd::get_capability) == 8);
    CHECK(ctrl_success_reply_size(CtrlCmd::get_tpm_established) == 8);
    CHECK(ctrl_success_reply_size(CtrlCmd::set_buffersize) == 16);
    CHECK(ctrl_success_reply_size(CtrlCmd::init) == 4);
    CHECK(ctrl_success_reply_size(CtrlCmd::cancel_tpm_cmd) == 4);
}

TEST_CASE("control reply reader") {
    SUBCASE("an error reply is only the 4-byte ptm_res, even where success is longer") {
        CtrlReply r(CtrlCmd::set_buffersize);
        CHECK(r.wanted() == 4);
        const uint8_t err[] = {0, 0, 0, 0x0a};
        CHECK(r.feed(err) == 4);
        CHECK(r.complete());
        CHECK(r.wanted() == 0);
        CHECK(r.result() == kPtmBadOrdinal);
        BufferSizes s;
        CHECK_FALSE(parse_buffer_sizes(r.payload(), s));
    }
    SUBCASE("a success reply split across reads") {
        CtrlReply r(CtrlCmd::get_capability);
        const uint8_t part1[] = {0, 0};
        const uint8_t part2[] = {0, 0, 0, 0};
        const uint8_t part3[] = {0xff, 0xff};
        CHECK(r.feed(part1) == 2);
        CHECK(r.wanted() == 2);
        CHECK(r.feed(part2) == 4);
        CHECK_FALSE(r.complete());
        CHECK(r.wanted() == 2);
        CHECK(r.feed(part3) == 2);
        REQUIRE(r.complete());
        CHECK(r.result() == 0);
        uint32_t caps = 0;
        REQUIRE(parse_capabilities(r.payload(), caps));
        CHECK(caps == 0xffff);
    }
    SUBCASE("an error reply followed by other bytes takes only ptm_res") {
        CtrlReply r(CtrlCmd::get_capability);
        const uint8_t more[] = {0, 0, 0, 0x0a, 0, 0, 0xff, 0xff};
        CHECK(r.feed(more) == 4);
        CHECK(r.result() == kPtmBadOrdinal);
    }
    SUBCASE("bytes beyond the reply are not consumed") {
        CtrlReply r(CtrlCmd::init);
        const uint8_t more[] = {0, 0, 0, 0, 0xde, 0xad};
        CHECK(r.feed(more) == 4);
        CHECK(r.complete());
        CHECK(r.payload().empty());
    }
    SUBCASE("nothing received yet is not a success") {
        CtrlReply r(CtrlCmd::init);
        CHECK(r.result() != kPtmSuccess);
        CHECK(r.payload().empty());
    }
    SUBCASE("set-buffersize and established payloads") {
        CtrlReply r(CtrlCmd::set_buffersize);
        const uint8_t reply[] = {0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0x0a, 0xf8, 0, 0, 0x10, 0};
        CHECK(r.feed(reply) == 16);
        BufferSizes s;
        REQUIRE(parse_buffer_sizes(r.payload(), s));
        CHECK(s.current == 4096);
        CHECK(s.min == 0xaf8);
        CHECK(s.max == 4096);

        CtrlReply e(CtrlCmd::get_tpm_established);
        const uint8_t est[] = {0, 0, 0, 0, 1, 0, 0, 0};
        CHECK(e.feed(est) == 8);
        bool flag = false;
        REQUIRE(parse_established(e.payload(), flag));
        CHECK(flag);
        CHECK_FALSE(parse_established({}, flag));
        uint32_t caps;
        CHECK_FALSE(parse_capabilities(std::span<const uint8_t>(est, 3), caps));
    }
}

TEST_CASE("capability requirements match QEMU's check") {
    CHECK(required_caps(TpmVersion::v1_2) == 0x340f);
    CHECK(required_caps(TpmVersion::v2_0) == 0x348f);
    CHECK(cap_names(kCapSetDataFd | kCapStop) == "STOP, SET_DATAFD");
    CHECK(cap_names(1u << 20) == "0x100000");
    CHECK(cap_names(kCapInit | (1u << 20)) == "INIT, 0x100000");
    CHECK(ptm_result_text(kPtmBadOrdinal) == "TPM_BAD_ORDINAL (0xa)");
    CHECK(ptm_result_text(0x1234) == "0x1234");
    CHECK(ctrl_cmd_name(CtrlCmd::set_datafd) == "CMD_SET_DATAFD");
}

TEST_CASE("failure and error responses carry the version's tag") {
    CHECK(tpm_failure_response(TpmVersion::v2_0) ==
          std::array<uint8_t, 10>{0x80, 0x01, 0, 0, 0, 0x0a, 0, 0, 0x01, 0x01});
    CHECK(tpm_failure_response(TpmVersion::v1_2) ==
          std::array<uint8_t, 10>{0x00, 0xc4, 0, 0, 0, 0x0a, 0, 0, 0, 0x09});
    auto r = tpm_error_response(TpmVersion::v2_0, kTpm2RcCommandSize);
    CHECK(tpm_tag(r) == 0x8001);
    CHECK(tpm_size(r) == 10);
    CHECK(tpm_code(r) == 0x142);
    const uint8_t short_msg[] = {0x80};
    CHECK(tpm_tag(short_msg) == 0);
    CHECK(tpm_size(short_msg) == 0);
    CHECK(tpm_code(short_msg) == 0);
}

TEST_CASE("TPM response reader") {
    std::array<uint8_t, 64> out{};
    SUBCASE("a whole response in one piece") {
        TpmResponseReader r(out, 64);
        const uint8_t resp[] = {0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0, 0, 0xaa, 0xbb};
        CHECK(r.wanted() == 10);
        CHECK(r.feed(resp) == 10);  // the header first
        CHECK(r.wanted() == 2);
        CHECK(r.feed(std::span<const uint8_t>(resp + 10, 2)) == 2);
        CHECK(r.state() == TpmResponseReader::State::complete);
        CHECK(r.size() == 12);
        CHECK(out[11] == 0xbb);
    }
    SUBCASE("a response split into single bytes") {
        TpmResponseReader r(out, 64);
        const uint8_t resp[] = {0x80, 0x01, 0, 0, 0, 0x0e, 0, 0, 0, 0, 1, 2, 3, 4};
        for (uint8_t b : resp) {
            REQUIRE(r.state() == TpmResponseReader::State::need_more);
            CHECK(r.feed(std::span<const uint8_t>(&b, 1)) == 1);
        }
        CHECK(r.state() == TpmResponseReader::State::complete);
        CHECK(r.size() == 14);
        CHECK(r.wanted() == 0);
    }
    SUBCASE("a header-only response") {
        TpmResponseReader r(out, 64);
        auto resp = tpm_failure_response(TpmVersion::v2_0);
        CHECK(r.feed(resp) == 10);
        CHECK(r.state() == TpmResponseReader::State::complete);
    }
    SUBCASE("size field below the header size") {
        TpmResponseReader r(out, 64);
        const uint8_t resp[] = {0x80, 0x01, 0, 0, 0, 0x05, 0, 0, 0, 0};
        r.feed(resp);
        CHECK(r.state() == TpmResponseReader::State::malformed);
        CHECK(r.declared_size() == 5);
        CHECK(r.wanted() == 0);
    }
    SUBCASE("size field above the limit") {
        TpmResponseReader r(out, 32);
        const uint8_t resp[] = {0x80, 0x01, 0, 0, 0, 33, 0, 0, 0, 0};
        r.feed(resp);
        CHECK(r.state() == TpmResponseReader::State::malformed);
        TpmResponseReader huge(out, 64);
        const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
        huge.feed(garbage);
        CHECK(huge.state() == TpmResponseReader::State::malformed);
    }
    SUBCASE("the limit is also the output buffer's size") {
        std::array<uint8_t, 16> small{};
        TpmResponseReader r(small, 4096);
        const uint8_t resp[] = {0x80, 0x01, 0, 0, 0, 17, 0, 0, 0, 0};
        r.feed(resp);
        CHECK(r.state() == TpmResponseReader::State::malformed);
        std::array<uint8_t, 4> tiny{};
        TpmResponseReader t(tiny, 4096);
        CHECK(t.state() == TpmResponseReader::State::malformed);
    }
    SUBCASE("exactly the limit is fine") {
        TpmResponseReader r(out, 20);
        std::vector<uint8_t> resp(20, 0x5a);
        resp[0] = 0x80, resp[1] = 0x01, resp[2] = 0, resp[3] = 0, resp[4] = 0, resp[5] = 20;
        CHECK(r.feed(resp) == 10);
        CHECK(r.feed(std::span<const uint8_t>(resp).subspan(10)) == 10);
        CHECK(r.state() == TpmResponseReader::State::complete);
    }
}

// Found by tests/fuzz/fuzz_swtpm_protocol (input 0x0a): feed() with an empty span (whose data()
// is null) passed null to memcpy, undefined behaviour that UBSan reports even for 0 bytes.
TEST_CASE("TPM response reader: empty chunks are accepted without copying") {
    std::array<uint8_t, 64> out{};
    TpmResponseReader r(out, 64);
    CHECK(r.feed(std::span<const uint8_t>()) == 0);
    CHECK(r.feed(std::vector<uint8_t>()) == 0);
    CHECK(r.state() == TpmResponseReader::State::need_more);
    CHECK(r.wanted() == 10);
    auto resp = tpm_failure_response(TpmVersion::v1_2);
    CHECK(r.feed(resp) == 10);
    CHECK(r.feed(std::span<const uint8_t>()) == 0);  // and after completion
    CHECK(r.state() == TpmResponseReader::State::complete);
    CtrlReply reply(CtrlCmd::init);
    CHECK(reply.feed(std::span<const uint8_t>()) == 0);
    CHECK(reply.wanted() == 4);
}

TEST_CASE("version probe responses") {
    const uint8_t tpm2_fatal[] = {0x80, 0x01, 0, 0, 0, 0x0a, 0, 0, 0x01, 0x01};
    const uint8_t tpm12_fatal[] = {0x00, 0xc4, 0, 0, 0, 0x0a, 0, 0, 0, 0x09};
    CHECK(probe_response_matches(tpm2_fatal, kTpm2TagNoSessions));
    CHECK_FALSE(probe_response_matches(tpm2_fatal, kTpm12TagRspCommand));
    CHECK(probe_response_matches(tpm12_fatal, kTpm12TagRspCommand));
    const uint8_t wrong_size[] = {0x80, 0x01, 0, 0, 0, 0x0b, 0, 0, 0x01, 0x01};
    CHECK_FALSE(probe_response_matches(wrong_size, kTpm2TagNoSessions));
    CHECK_FALSE(probe_response_matches(std::span<const uint8_t>(tpm2_fatal, 6), kTpm2TagNoSessions));
    CHECK(kTpm2ReadClock[9] == 0x81);
    CHECK(kTpm12GetTicks[9] == 0xf1);
}
