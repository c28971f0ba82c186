#include "vmm/tpm/ek_manufacture.hpp"

#include <algorithm>
#include <optional>
#include <stdexcept>

#include <fmt/core.h>

#include "vmm/base/bytes.hpp"
#include "vmm/tpm/tpm_message.hpp"
#include "vmm/tpm/tpm_response_fields.hpp"

namespace minivmm {

namespace ek {

namespace {

// TPM 2.0 Part 2 constants.
constexpr uint16_t kTagSessions = 0x8002;
constexpr uint32_t kCcStartup = 0x144, kCcGetCapability = 0x17A, kCcCreatePrimary = 0x131, kCcFlushContext = 0x165;
constexpr uint32_t kCcNvReadPublic = 0x169, kCcNvRead = 0x14E, kCcNvDefineSpace = 0x12A, kCcNvWrite = 0x137;
constexpr uint32_t kCcNvUndefineSpace = 0x122;
constexpr uint32_t kRhEndorsement = 0x4000000B, kRhPlatform = 0x4000000C;
constexpr uint32_t kRcInitialize = 0x100;  // TPM2_Startup when already started
constexpr uint32_t kCapTpmProperties = 6;
constexpr uint32_t kPtManufacturer = 0x105, kPtFirmwareVersion1 = 0x10B, kPtNvIndexMax = 0x117, kPtNvBufferMax = 0x12C;
constexpr uint16_t kAlgRsa = 0x0001, kAlgEcc = 0x0023, kAlgSha256 = 0x000B, kAlgAes = 0x0006, kAlgCfb = 0x0043;
constexpr uint16_t kAlgNull = 0x0010, kEccNistP256 = 0x0003;
// fixedTPM | fixedParent | sensitiveDataOrigin | adminWithPolicy | restricted | decrypt.
constexpr uint32_t kEkObjectAttributes = 0x000300B2;
constexpr uint32_t kNvWritten = 1u << 29;

using Reader = TpmResponseFields;

TpmCommand sessions_command(uint32_t code) { return TpmCommand(kTagSessions, code); }

uint32_t property(TpmBackend& tpm, uint32_t id) {
    auto cmd = TpmCommand(kTpm2TagNoSessions, kCcGetCapability).u32(kCapTpmProperties).u32(id).u32(1);
    auto r = send_checked(tpm, cmd.done(), "TPM2_GetCapability(TPM_PROPERTIES)");
    Reader in(r, "TPM2_GetCapability(TPM_PROPERTIES)");
    in.skip(kTpmHeaderSize + 1);
    if (in.u32() != kCapTpmProperties || in.u32() < 1 || in.u32() != id)
        throw std::runtime_error(fmt::format("TPM2_GetCapability: the TPM does not report property {:#x}", id));
    return in.u32();
}

struct NvPublic {
    uint32_t attributes = 0;
    uint16_t size = 0;
};

std::optional<NvPublic> read_public(TpmBackend& tpm, uint32_t index) {
    std::vector<uint8_t> r(tpm.buffer_size());
    r.resize(tpm.execute(0, TpmCommand(kTpm2TagNoSessions, kCcNvReadPublic).u32(index).done(), r));
    if (r.size() < kTpmHeaderSize || tpm_code(r) != 0) return std::nullopt;  // TPM_RC_HANDLE: not defined
    Reader in(r, "TPM2_NV_ReadPublic");
    in.skip(kTpmHeaderSize + 2);
    if (in.u32() != index) throw std::runtime_error("TPM2_NV_ReadPublic: the TPM answered for another index");
    in.u16();  // nameAlg
    NvPublic pub;
    pub.attributes = in.u32();
    in.sized();  // authPolicy
    pub.size = in.u16();
    return pub;
}

}  // namespace

std::vector<uint8_t> send_checked(TpmBackend& tpm, const std::vector<uint8_t>& command, const char* what) {
    std::vector<uint8_t> r(tpm.buffer_size());
    r.resize(tpm.execute(0, command, r));
    if (r.size() < kTpmHeaderSize || tpm_size(r) != r.size())
        throw std::runtime_error(fmt::format("{}: no well-formed response from the TPM ({} bytes)", what, r.size()));
    if (const uint32_t rc = tpm_code(r); rc != 0) throw std::runtime_error(fmt::format("{} failed: TPM_RC {:#x}", what, rc));
    return r;
}

std::vector<uint8_t> ek_template(EkPublic::Type type) {
    const bool rsa = type == EkPublic::Type::rsa2048;
    TpmCommand t(0, 0);  // used as a byte builder; the 10 header bytes are dropped below
    t.u16(rsa ? kAlgRsa : kAlgEcc).u16(kAlgSha256).u32(kEkObjectAttributes).u16(sizeof kPolicyA);
    t.bytes(std::vector<uint8_t>(std::begin(kPolicyA), std::end(kPolicyA)));
    t.u16(kAlgAes).u16(128).u16(kAlgCfb).u16(kAlgNull);  // symmetric AES-128-CFB, scheme TPM_ALG_NULL
    if (rsa) t.u16(2048).u32(0).u16(256).bytes(std::vector<uint8_t>(256, 0));  // keyBits, exponent, unique
    else t.u16(kEccNistP256).u16(kAlgNull).u16(32).bytes(std::vector<uint8_t>(32, 0)).u16(32).bytes(std::vector<uint8_t>(32, 0));
    auto bytes = t.done();
    return std::vector<uint8_t>(bytes.begin() + kTpmHeaderSize, bytes.end());
}

EkPublic parse_create_primary(std::span<const uint8_t> response, EkPublic::Type type) {
    const bool rsa = type == EkPublic::Type::rsa2048;
    Reader in(response, "TPM2_CreatePrimary");
    in.skip(kTpmHeaderSize + 4 + 4);  // header, objectHandle, parameterSize
    Reader pub(in.sized(), "TPM2_CreatePrimary");  // TPM2B_PUBLIC
    if (pub.u16() != (rsa ? kAlgRsa : kAlgEcc))
        throw std::runtime_error("TPM2_CreatePrimary: the TPM made a key of another type than the EK template's");
    pub.skip(2 + 4);  // nameAlg, objectAttributes
    pub.sized();      // authPolicy
    if (pub.u16() != kAlgNull) pub.skip(4);  // symmetric: keyBits, mode unless TPM_ALG_NULL
    if (pub.u16() != kAlgNull) pub.skip(2);  // scheme: hashAlg unless TPM_ALG_NULL
    EkPublic ek;
    ek.type = type;
    if (rsa) {
        if (pub.u16() != 2048) throw std::runtime_error("TPM2_CreatePrimary: the RSA EK is not 2048 bits");
        const uint32_t exponent = pub.u32();
        ek.rsa_exponent = exponent == 0 ? 65537 : exponent;
        auto n = pub.sized();
        ek.rsa_modulus.assign(n.begin(), n.end());
    } else {
        if (pub.u16() != kEccNistP256) throw std::runtime_error("TPM2_CreatePrimary: the ECC EK is not on NIST P-256");
        if (pub.u16() != kAlgNull) pub.skip(2);  // kdf: hashAlg unless TPM_ALG_NULL
        auto x = pub.sized();
        auto y = pub.sized();
        ek.ecc_x.assign(x.begin(), x.end());
        ek.ecc_y.assign(y.begin(), y.end());
    }
    return ek;
}

EkPublic create_ek(TpmBackend& tpm, EkPublic::Type type) {
    const auto tmpl = ek_template(type);
    auto cmd = sessions_command(kCcCreatePrimary).u32(kRhEndorsement).password_session();
    cmd.u16(4).u16(0).u16(0);  // inSensitive: empty userAuth and data
    cmd.u16(static_cast<uint16_t>(tmpl.size())).bytes(tmpl);
    cmd.u16(0).u32(0);  // outsideInfo, creationPCR
    auto r = send_checked(tpm, cmd.done(), "TPM2_CreatePrimary(EK)");
    const uint32_t handle = load_be32(r, kTpmHeaderSize);
    EkPublic ek = parse_create_primary(r, type);
    send_checked(tpm, TpmCommand(kTpm2TagNoSessions, kCcFlushContext).u32(handle).done(), "TPM2_FlushContext");
    return ek;
}

std::vector<uint8_t> read_nv(TpmBackend& tpm, uint32_t index) {
    auto pub = read_public(tpm, index);
    if (!pub || !(pub->attributes & kNvWritten)) return {};
    const uint32_t chunk = std::min<uint32_t>(property(tpm, kPtNvBufferMax), static_cast<uint32_t>(tpm.buffer_size() / 2));
    std::vector<uint8_t> data;
    while (data.size() < pub->size) {
        const auto n = static_cast<uint16_t>(std::min<size_t>(chunk, pub->size - data.size()));
        auto cmd = sessions_command(kCcNvRead).u32(index).u32(index).password_session().u16(n).u16(
            static_cast<uint16_t>(data.size()));
        auto r = send_checked(tpm, cmd.done(), "TPM2_NV_Read");
        Reader in(r, "TPM2_NV_Read");
        in.skip(kTpmHeaderSize + 4);  // parameterSize
        auto got = in.sized();
        if (got.size() != n) throw std::runtime_error("TPM2_NV_Read: the TPM returned another size than asked for");
        data.insert(data.end(), got.begin(), got.end());
    }
    return data;
}

void store_nv(TpmBackend& tpm, uint32_t index, std::span<const uint8_t> data) {
    const uint32_t index_max = property(tpm, kPtNvIndexMax);
    if (data.size() > index_max)
        throw std::runtime_error(fmt::format("the EK certificate ({} bytes) is larger than the TPM's NV index maximum "
                                             "({} bytes)", data.size(), index_max));
    if (read_public(tpm, index))
        send_checked(tpm, sessions_command(kCcNvUndefineSpace).u32(kRhPlatform).u32(index).password_session().done(),
                     "TPM2_NV_UndefineSpace");
    auto define = sessions_command(kCcNvDefineSpace).u32(kRhPlatform).password_session().u16(0);  // auth: empty
    define.u16(14).u32(index).u16(kAlgSha256).u32(kCertIndexAttributes).u16(0).u16(static_cast<uint16_t>(data.size()));
    send_checked(tpm, define.done(), "TPM2_NV_DefineSpace");
    // The command must fit the TPM's buffer too: header, two handles, the session, size, offset.
    const size_t chunk = std::min<size_t>(property(tpm, kPtNvBufferMax), tpm.buffer_size() - 64);
    for (size_t at = 0; at < data.size(); at += chunk) {
        const auto part = data.subspan(at, std::min(chunk, data.size() - at));
        auto write = sessions_command(kCcNvWrite).u32(kRhPlatform).u32(index).password_session();
        write.u16(static_cast<uint16_t>(part.size())).bytes(std::vector<uint8_t>(part.begin(), part.end()));
        write.u16(static_cast<uint16_t>(at));
        send_checked(tpm, write.done(), "TPM2_NV_Write");
    }
}

TpmIdentity identity(TpmBackend& tpm) {
    return {fmt::format("id:{:08X}", property(tpm, kPtManufacturer)), "libtpms",
            fmt::format("id:{:08X}", property(tpm, kPtFirmwareVersion1))};
}

}  // namespace ek

namespace {

// TPM2_Startup(CLEAR); true if the TPM was started already: it resumed the volatile state of a
// clean exit (vmm/tpm/README.md, the state directory), with the platform authorization the
// firmware set (SeaBIOS tpm20_startup: TPM2_HierarchyChangeAuth(TPM_RH_PLATFORM), random).
bool start_up(TpmBackend& tpm) {
    std::vector<uint8_t> r(tpm.buffer_size());
    r.resize(tpm.execute(0, TpmCommand(kTpm2TagNoSessions, ek::kCcStartup).u16(0).done(), r));
    if (r.size() < kTpmHeaderSize || (tpm_code(r) != 0 && tpm_code(r) != ek::kRcInitialize))
        throw std::runtime_error(fmt::format("TPM2_Startup(CLEAR) failed: TPM_RC {:#x}", tpm_code(r)));
    return tpm_code(r) == ek::kRcInitialize;
}

}  // namespace

EkManufactureResult manufacture_ek_certificates(TpmBackend& tpm, const EkCa& ca) {
    bool resumed = start_up(tpm);
    EkManufactureResult result;
    std::optional<TpmIdentity> tpm_identity;
    for (auto [type, index] : {std::pair{EkPublic::Type::rsa2048, ek::kRsaCertIndex},
                               std::pair{EkPublic::Type::ecc_p256, ek::kEccCertIndex}}) {
        if (ca.signed_this(ek::read_nv(tpm, index))) {
            ++result.kept;
            continue;
        }
        // The NV writes take the empty platform authorization of a TPM2_Startup(CLEAR) after a
        // power-on (TPM 2.0 Part 1 §13.3.2), not what a resumed TPM has: a power-on first, which
        // drops the volatile state as every power-on of the machine does.
        if (resumed) {
            if (!tpm.power_cycle()) throw std::runtime_error("the TPM could not be powered on again");
            if (start_up(tpm)) throw std::runtime_error("TPM2_Startup(CLEAR) after a power-on found the TPM started");
            resumed = false;
        }
        if (!tpm_identity) tpm_identity = ek::identity(tpm);
        const std::vector<uint8_t> cert = ca.issue(ek::create_ek(tpm, type), *tpm_identity);
        ek::store_nv(tpm, index, cert);
        ++result.issued;
    }
    return result;
}

}  // namespace minivmm
