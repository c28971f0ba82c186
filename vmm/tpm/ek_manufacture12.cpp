#include "vmm/tpm/ek_manufacture12.hpp"

#include <sys/random.h>

#include <algorithm>
#include <array>
#include <stdexcept>

#include <fmt/core.h>
#include <openssl/evp.h>

#include "vmm/base/bytes.hpp"
#include "vmm/tpm/tpm_message.hpp"
#include "vmm/tpm/tpm_response_fields.hpp"

namespace minivmm {

namespace ek12 {

namespace {

// TPM 1.2 Part 2 constants.
constexpr uint16_t kRquCommand = 0x00C1;
constexpr uint32_t kOrdStartup = 0x99, kOrdReadPubek = 0x7C, kOrdCreateEkPair = 0x78, kOrdGetCapability = 0x65;
constexpr uint32_t kOrdNvDefineSpace = 0xCC, kOrdNvWriteValue = 0xCD, kOrdNvReadValue = 0xCF;
constexpr uint16_t kStClear = 0x0001;
constexpr uint32_t kInvalidPostInit = 0x26;  // TPM_INVALID_POSTINIT: already started
constexpr uint32_t kBadIndex = 0x02;         // TPM_BADINDEX: no such NV index
constexpr uint32_t kMaxNvWrites = 0x48;      // TPM_MAXNVWRITES
constexpr uint32_t kAlgRsa = 0x00000001;
constexpr uint16_t kEsRsaOaepSha1Mgf1 = 0x0003, kSsNone = 0x0001;
constexpr uint32_t kCapProperty = 0x05, kCapNvIndex = 0x11, kCapVersionVal = 0x1A, kCapPropManufacturer = 0x103;
constexpr uint16_t kTagNvAttributes = 0x0017, kTagNvDataPublic = 0x0018;
constexpr uint8_t kLocAll = 0x1F;
// TCG PC Client Implementation Specification for Conventional BIOS 1.21 §7.4.5.
constexpr uint16_t kTagStoredCert = 0x1001, kTagFullCert = 0x1002;
constexpr size_t kStoredHeaderSize = 7;

using Anti = std::array<uint8_t, 20>;

Anti anti_replay() {
    Anti nonce{};
    if (::getrandom(nonce.data(), nonce.size(), 0) != static_cast<ssize_t>(nonce.size()))
        throw std::runtime_error("getrandom failed for the TPM's antiReplay nonce");
    return nonce;
}

std::vector<uint8_t> send(TpmBackend& tpm, const TpmCommand& command, const char* what, uint32_t* refused = nullptr) {
    std::vector<uint8_t> r(tpm.buffer_size());
    r.resize(tpm.execute(0, command.done(), r));
    if (r.size() < kTpmHeaderSize || tpm_size(r) != r.size())
        throw std::runtime_error(fmt::format("{}: no well-formed response from the TPM ({} bytes)", what, r.size()));
    if (const uint32_t rc = tpm_code(r); rc != 0) {
        if (refused) {
            *refused = rc;
            return {};
        }
        throw std::runtime_error(fmt::format("{} failed: TPM_RESULT {:#x}", what, rc));
    }
    return r;
}

// TPM_GetCapability's resp (after respSize).
std::vector<uint8_t> capability(TpmBackend& tpm, uint32_t area, std::span<const uint8_t> sub, const char* what,
                                uint32_t* refused = nullptr) {
    auto cmd = TpmCommand(kRquCommand, kOrdGetCapability).u32(area).u32(static_cast<uint32_t>(sub.size()));
    cmd.bytes(std::vector<uint8_t>(sub.begin(), sub.end()));
    const auto r = send(tpm, cmd, what, refused);
    if (r.empty()) return {};
    TpmResponseFields in(r, what);
    in.skip(kTpmHeaderSize);
    const auto resp = in.take(in.u32());
    return {resp.begin(), resp.end()};
}

std::array<uint8_t, 4> be32_bytes(uint32_t v) {
    std::array<uint8_t, 4> b{};
    store_be(b, v);
    return b;
}

// TPM_PCR_INFO_SHORT selecting no PCR, any locality (as swtpm_setup's).
void pcr_info_short(TpmCommand& c) { c.u16(3).u8(0).u8(0).u8(0).u8(kLocAll).bytes(std::vector<uint8_t>(20, 0)); }

void skip_pcr_info_short(TpmResponseFields& in) {
    in.skip(in.u16());  // pcrSelect
    in.skip(1 + 20);    // localityAtRelease, digestAtRelease
}

// A command that writes NV without authorization, on an unowned TPM: TPM_MAXNVWRITES is NvWritesExhausted.
void send_nv_write(TpmBackend& tpm, const TpmCommand& cmd, const char* what) {
    uint32_t refused = 0;
    send(tpm, cmd, what, &refused);
    if (refused == kMaxNvWrites)
        throw NvWritesExhausted(fmt::format("{}: the TPM has no owner and used up its NV writes without one "
                                            "(TPM_MAXNVWRITES)", what));
    if (refused != 0) throw std::runtime_error(fmt::format("{} failed: TPM_RESULT {:#x}", what, refused));
}

void define_space(TpmBackend& tpm, uint32_t index, uint32_t size) {
    auto cmd = TpmCommand(kRquCommand, kOrdNvDefineSpace).u16(kTagNvDataPublic).u32(index);
    pcr_info_short(cmd);
    pcr_info_short(cmd);
    cmd.u16(kTagNvAttributes).u32(size == 0 ? 0 : kCertPermission).u8(0).u8(0).u8(0).u32(size);
    cmd.bytes(std::vector<uint8_t>(20, 0));  // encAuth: not used by these permissions
    send_nv_write(tpm, cmd, size == 0 ? "TPM_NV_DefineSpace (delete)" : "TPM_NV_DefineSpace");
}

}  // namespace

std::vector<uint8_t> wrap_stored_cert(std::span<const uint8_t> der) {
    if (der.size() > 0xFFFF - 2) throw std::runtime_error("the EK certificate is too large for TCG_PCCLIENT_STORED_CERT");
    std::vector<uint8_t> out = {static_cast<uint8_t>(kTagStoredCert >> 8), static_cast<uint8_t>(kTagStoredCert), 0, 0, 0,
                                static_cast<uint8_t>(kTagFullCert >> 8), static_cast<uint8_t>(kTagFullCert)};
    store_be(std::span(out).subspan(3, 2), der.size() + 2);
    out.insert(out.end(), der.begin(), der.end());
    return out;
}

std::vector<uint8_t> unwrap_stored_cert(std::span<const uint8_t> stored) {
    if (stored.size() < kStoredHeaderSize || load_be16(stored, 0) != kTagStoredCert || stored[2] != 0 ||
        load_be16(stored, 5) != kTagFullCert || load_be16(stored, 3) != stored.size() - 5)
        return {};
    return {stored.begin() + kStoredHeaderSize, stored.end()};
}

EkPublic parse_pubek(std::span<const uint8_t> response, std::span<const uint8_t, 20> anti, const char* what) {
    TpmResponseFields in(response, what);
    in.skip(kTpmHeaderSize);
    const size_t start = in.offset();
    if (in.u32() != kAlgRsa) throw std::runtime_error(fmt::format("{}: the EK is not an RSA key", what));
    in.skip(2 + 2);  // encScheme, sigScheme
    TpmResponseFields parms(in.take(in.u32()), what);  // TPM_RSA_KEY_PARMS
    if (parms.u32() != 2048) throw std::runtime_error(fmt::format("{}: the EK is not 2048 bits", what));
    parms.skip(4);  // numPrimes
    const auto exponent = parms.take(parms.u32());
    EkPublic ek;
    ek.type = EkPublic::Type::rsa2048;
    if (exponent.size() > 4) throw std::runtime_error(fmt::format("{}: the EK's exponent is too large", what));
    if (!exponent.empty()) ek.rsa_exponent = static_cast<uint32_t>(load_be(exponent));  // empty: 2^16 + 1
    const auto modulus = in.take(in.u32());
    ek.rsa_modulus.assign(modulus.begin(), modulus.end());
    // checksum = SHA-1(TPM_PUBKEY || antiReplay) (Part 3 §14.1 action 8, §14.2 action 3).
    std::vector<uint8_t> hashed(response.begin() + static_cast<ptrdiff_t>(start),
                                response.begin() + static_cast<ptrdiff_t>(in.offset()));
    hashed.insert(hashed.end(), anti.begin(), anti.end());
    const auto checksum = in.take(20);
    uint8_t digest[EVP_MAX_MD_SIZE];
    size_t n = 0;
    if (EVP_Q_digest(nullptr, "SHA1", nullptr, hashed.data(), hashed.size(), digest, &n) != 1 || n != 20 ||
        !std::equal(checksum.begin(), checksum.end(), digest))
        throw std::runtime_error(fmt::format("{}: the checksum does not match the public key", what));
    return ek;
}

std::optional<EkPublic> read_pubek(TpmBackend& tpm, uint32_t& refused) {
    const Anti anti = anti_replay();
    refused = 0;
    const auto r = send(tpm, TpmCommand(kRquCommand, kOrdReadPubek).bytes({anti.begin(), anti.end()}), "TPM_ReadPubek",
                        &refused);
    if (refused == kNoEndorsement || refused == kDisabledCmd) return std::nullopt;
    if (refused != 0) throw std::runtime_error(fmt::format("TPM_ReadPubek failed: TPM_RESULT {:#x}", refused));
    return parse_pubek(r, anti, "TPM_ReadPubek");
}

EkPublic create_ek(TpmBackend& tpm) {
    const Anti anti = anti_replay();
    auto cmd = TpmCommand(kRquCommand, kOrdCreateEkPair).bytes({anti.begin(), anti.end()});
    cmd.u32(kAlgRsa).u16(kEsRsaOaepSha1Mgf1).u16(kSsNone).u32(12).u32(2048).u32(2).u32(0);  // TPM_RSA_KEY_PARMS
    return parse_pubek(send(tpm, cmd, "TPM_CreateEndorsementKeyPair"), anti, "TPM_CreateEndorsementKeyPair");
}

std::vector<uint8_t> read_nv(TpmBackend& tpm, uint32_t index) {
    uint32_t refused = 0;
    const auto pub = capability(tpm, kCapNvIndex, be32_bytes(index), "TPM_GetCapability(TPM_CAP_NV_INDEX)", &refused);
    if (refused == kBadIndex) return {};
    if (refused != 0)
        throw std::runtime_error(fmt::format("TPM_GetCapability(TPM_CAP_NV_INDEX) failed: TPM_RESULT {:#x}", refused));
    TpmResponseFields in(pub, "TPM_GetCapability(TPM_CAP_NV_INDEX)");
    if (in.u16() != kTagNvDataPublic || in.u32() != index)
        throw std::runtime_error("TPM_GetCapability(TPM_CAP_NV_INDEX): the TPM answered for another index");
    skip_pcr_info_short(in);
    skip_pcr_info_short(in);
    in.skip(2 + 4 + 3);  // permission, bReadSTClear, bWriteSTClear, bWriteDefine
    const uint32_t size = in.u32();
    const size_t chunk = tpm.buffer_size() - kTpmHeaderSize - 4;
    std::vector<uint8_t> data;
    while (data.size() < size) {
        const auto n = static_cast<uint32_t>(std::min<size_t>(chunk, size - data.size()));
        const auto r = send(tpm, TpmCommand(kRquCommand, kOrdNvReadValue).u32(index).u32(static_cast<uint32_t>(data.size())).u32(n),
                            "TPM_NV_ReadValue");
        TpmResponseFields value(r, "TPM_NV_ReadValue");
        value.skip(kTpmHeaderSize);
        const auto got = value.take(value.u32());
        if (got.size() != n) throw std::runtime_error("TPM_NV_ReadValue: the TPM returned another size than asked for");
        data.insert(data.end(), got.begin(), got.end());
    }
    return data;
}

void store_nv(TpmBackend& tpm, uint32_t index, std::span<const uint8_t> data) {
    constexpr size_t kWriteOverhead = kTpmHeaderSize + 12;
    if (data.empty() || data.size() > tpm.buffer_size() - kWriteOverhead)
        throw std::runtime_error(fmt::format("the EK certificate ({} bytes) does not fit one TPM_NV_WriteValue", data.size()));
    uint32_t refused = 0;
    capability(tpm, kCapNvIndex, be32_bytes(index), "TPM_GetCapability(TPM_CAP_NV_INDEX)", &refused);
    if (refused == 0) define_space(tpm, index, 0);
    define_space(tpm, index, static_cast<uint32_t>(data.size()));
    auto write = TpmCommand(kRquCommand, kOrdNvWriteValue).u32(index).u32(0).u32(static_cast<uint32_t>(data.size()));
    send_nv_write(tpm, write.bytes(std::vector<uint8_t>(data.begin(), data.end())), "TPM_NV_WriteValue");
}

TpmIdentity identity(TpmBackend& tpm) {
    const auto manufacturer = capability(tpm, kCapProperty, be32_bytes(kCapPropManufacturer),
                                         "TPM_GetCapability(TPM_CAP_PROP_MANUFACTURER)");
    const auto version = capability(tpm, kCapVersionVal, {}, "TPM_GetCapability(TPM_CAP_VERSION_VAL)");
    TpmResponseFields m(manufacturer, "TPM_GetCapability(TPM_CAP_PROP_MANUFACTURER)");
    TpmResponseFields v(version, "TPM_GetCapability(TPM_CAP_VERSION_VAL)");
    v.skip(2);  // tag; then TPM_VERSION major, minor, revMajor, revMinor
    return {fmt::format("id:{:08X}", m.u32()), "libtpms", fmt::format("id:{:08X}", v.u32())};
}

}  // namespace ek12

Ek12Result manufacture_ek_certificate_tpm12(TpmBackend& tpm, const EkCa& ca) {
    uint32_t refused = 0;
    ek12::send(tpm, TpmCommand(ek12::kRquCommand, ek12::kOrdStartup).u16(ek12::kStClear), "TPM_Startup(ST_CLEAR)",
               &refused);
    if (refused != 0 && refused != ek12::kInvalidPostInit)
        throw std::runtime_error(fmt::format("TPM_Startup(ST_CLEAR) failed: TPM_RESULT {:#x}", refused));
    if (ca.signed_this(ek12::unwrap_stored_cert(ek12::read_nv(tpm, ek12::kCertIndex)))) return Ek12Result::kept;
    std::optional<EkPublic> ek = ek12::read_pubek(tpm, refused);
    if (!ek && refused == ek12::kDisabledCmd) return Ek12Result::owned;
    if (!ek) ek = ek12::create_ek(tpm);
    const std::vector<uint8_t> der = ca.issue_tpm12(*ek, ek12::identity(tpm));
    try {
        ek12::store_nv(tpm, ek12::kCertIndex, ek12::wrap_stored_cert(der));
    } catch (const ek12::NvWritesExhausted&) {
        return Ek12Result::nv_writes_exhausted;
    }
    return Ek12Result::issued;
}

}  // namespace minivmm
