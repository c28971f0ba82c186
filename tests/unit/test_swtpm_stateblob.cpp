// The pure parts of snapshots of the TPM: swtpm's CMD_GET/SET_STATEBLOB messages and the
// multi-reply assembly of a blob (vmm/tpm/swtpm_stateblob.hpp), the minivmm TPM state blob
// (vmm/tpm/tpm_state_blob.hpp), and the StirRandom commands (vmm/tpm/tpm_stir_random.hpp).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "vmm/tpm/swtpm_stateblob.hpp"
#include "vmm/tpm/tpm_state_blob.hpp"
#include "vmm/tpm/tpm_stir_random.hpp"

using namespace minivmm;
using namespace minivmm::swtpm;

namespace {

std::vector<uint8_t> bytes_of(const CtrlRequest& r) { return {r.view().begin(), r.view().end()}; }

// Feeds one reply's body into the assembler as a read would.
void fill(StateBlobAssembler& a, uint8_t first) {
    std::span<uint8_t> body = a.body();
    for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<uint8_t>(first + i);
}

}  // namespace

TEST_CASE("stateblob: request encodings are QEMU's (big-endian, DECRYPTED asked for)") {
    CHECK(bytes_of(encode_get_stateblob(kBlobVolatile, 0x0102)) ==
          std::vector<uint8_t>{0, 0, 0, 0x0c, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0x01, 0x02});
    const std::vector<uint8_t> blob = {0xAA, 0xBB, 0xCC};
    CHECK(encode_set_stateblob(kBlobPermanent, kStateFlagEncrypted, blob) ==
          std::vector<uint8_t>{0, 0, 0, 0x0d, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 3, 0xAA, 0xBB, 0xCC});
    CHECK(bytes_of(encode_ctrl_u32(CtrlCmd::init, kInitFlagDeleteVolatile)) == std::vector<uint8_t>{0, 0, 0, 2, 0, 0, 0, 1});
    CHECK(blob_type_name(kBlobSaveState) == "savestate");
    CHECK(blob_type_name(9) == "type 9");
    CHECK(cap_names(kCapGetStateBlob | kCapSetStateBlob | kCapLockStorage) == "GET_STATEBLOB, SET_STATEBLOB, LOCK_STORAGE");
}

TEST_CASE("stateblob: GET_STATEBLOB replies: success header, TPM_RETRY header, other errors 4 bytes") {
    const std::vector<uint8_t> ok = {0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 5, 0, 0, 0, 5, 0xEE};
    CtrlReply r(CtrlCmd::get_stateblob);
    CHECK(r.feed(ok) == 16);  // the blob byte is not part of the reply
    REQUIRE(r.complete());
    StateBlobHeader h;
    REQUIRE(parse_stateblob_header(r.payload(), h));
    CHECK((h.flags == 2 && h.totlength == 5 && h.length == 5));

    CtrlReply retry(CtrlCmd::get_stateblob);
    const std::vector<uint8_t> none = {0, 0, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    CHECK(retry.feed(none) == 16);  // TPM_RETRY still carries the header
    CHECK(retry.result() == 0x800);
    CtrlReply bad(CtrlCmd::get_stateblob);
    CHECK(bad.feed(std::vector<uint8_t>{0, 0, 0, 0x0a, 9, 9}) == 4);
    CHECK(bad.complete());
    CHECK_FALSE(parse_stateblob_header(std::vector<uint8_t>(11), h));
    CtrlReply set(CtrlCmd::set_stateblob);
    CHECK(set.feed(std::vector<uint8_t>{0, 0, 0, 0, 1}) == 4);
}

TEST_CASE("stateblob: one reply (swtpm on a socket), several (CUSE style, or socket style from an offset)") {
    StateBlobAssembler one;
    std::string why;
    REQUIRE(one.accept({0, 4, 4}, why));
    fill(one, 1);
    CHECK(one.complete());
    CHECK(one.take() == std::vector<uint8_t>{1, 2, 3, 4});

    for (bool cuse : {true, false}) {
        StateBlobAssembler a;
        REQUIRE(a.accept({0, 10, 4}, why));
        fill(a, 0);
        CHECK_FALSE(a.complete());
        CHECK(a.offset() == 4);
        REQUIRE(a.accept({0, cuse ? 10u : 6u, 4}, why));
        fill(a, 4);
        REQUIRE(a.accept({0, cuse ? 10u : 2u, 2}, why));
        fill(a, 8);
        CHECK(a.complete());
        CHECK(a.take() == std::vector<uint8_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    }
    StateBlobAssembler empty;
    REQUIRE(empty.accept({0, 0, 0}, why));
    CHECK(empty.complete());
}

TEST_CASE("stateblob: malformed replies are refused with a reason") {
    std::string why;
    StateBlobAssembler a;
    CHECK_FALSE(a.accept({0, 4, 5}, why));  // more than the total
    CHECK_FALSE(why.empty());
    CHECK_FALSE(StateBlobAssembler().accept({0, kMaxStateBlob + 1, 1}, why));
    StateBlobAssembler b;
    REQUIRE(b.accept({0, 10, 4}, why));
    fill(b, 0);
    CHECK_FALSE(b.accept({0, 10, 0}, why));  // no progress
    CHECK_FALSE(b.accept({2, 10, 4}, why));  // other flags
    CHECK_FALSE(b.accept({0, 11, 4}, why));  // a longer blob than first said
    CHECK_FALSE(b.accept({0, 6, 7}, why));   // past the end
    CHECK(b.offset() == 4);                  // nothing taken from the refused replies
}

TEST_CASE("TPM state blob: round trip and refusals") {
    TpmStateBlob s;
    s.version = TpmVersion::v1_2;
    s.permanent = {0, {1, 2, 3}};
    s.volatile_state = {kTpmStatePartEncrypted, {4}};
    const std::vector<uint8_t> b = encode_tpm_state_blob(s);
    CHECK(std::vector<uint8_t>(b.begin(), b.begin() + 6) == std::vector<uint8_t>{'M', 'V', 'T', 'S', 1, 1});
    TpmStateBlob out;
    REQUIRE(parse_tpm_state_blob(b, out));
    CHECK(out == s);

    auto patched = [&](size_t at, uint8_t v) {
        auto x = b;
        x.at(at) = v;
        return x;
    };
    TpmStateBlob no_permanent = s;
    no_permanent.permanent.data.clear();
    for (const auto& bad : {std::vector<uint8_t>{}, std::vector<uint8_t>(b.begin(), b.end() - 1),
                            [&] { auto x = b; x.push_back(0); return x; }(), patched(0, 'X'), patched(4, 2),
                            patched(5, 3), patched(6, 1) /* flags 1 */, patched(10, 0xFF) /* length */,
                            encode_tpm_state_blob(no_permanent)}) {
        TpmStateBlob untouched = out;
        CHECK_FALSE(parse_tpm_state_blob(bad, untouched));
        CHECK(untouched == s);
    }
}

TEST_CASE("StirRandom commands: TPM2_StirRandom 0x146 with a TPM2B, TPM_StirRandom 0x47 with a UINT32 size") {
    const std::vector<uint8_t> e = {0xDE, 0xAD};
    CHECK(make_stir_random(TpmVersion::v2_0, e) ==
          std::vector<uint8_t>{0x80, 0x01, 0, 0, 0, 0x0e, 0, 0, 0x01, 0x46, 0, 2, 0xDE, 0xAD});
    CHECK(make_stir_random(TpmVersion::v1_2, e) ==
          std::vector<uint8_t>{0x00, 0xC1, 0, 0, 0, 0x10, 0, 0, 0, 0x47, 0, 0, 0, 2, 0xDE, 0xAD});
    CHECK(make_stir_random(TpmVersion::v2_0, std::vector<uint8_t>(300, 1)).size() == 12 + kMaxStirBytes);
}
