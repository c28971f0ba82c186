// The EK certificate of the in-process TPM 1.2 (vmm/tpm/ek_manufacture12.hpp) with the real
// libtpms: after manufacture, TPM_NV_INDEX_EKCert reads without authorization (as a guest after
// the firmware's TPM_Startup would) as the TCG_PCCLIENT_STORED_CERT header and one DER
// certificate, for the public key TPM_ReadPubek gives, verifying against STATE/ek-ca.pem with the
// openssl command; a second start keeps it; a certificate cut short, never written or of another
// CA is made again.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include "tests/unit/temp_dir.hpp"
#include "tests/unit/tpm_command.hpp"
#include "vmm/tpm/ek_ca_store.hpp"
#include "vmm/tpm/ek_manufacture12.hpp"
#include "vmm/tpm/libtpms_backend.hpp"

using namespace minivmm;
using testing::TempDir;

namespace {

// TPM_NV_ReadValue of the whole index, no authorization (TPM 1.2 Part 3 §20.4).
std::vector<uint8_t> read_value(LibtpmsBackend& tpm, uint32_t size) {
    const auto r = testing::run(tpm, testing::Cmd(0x00C1, 0xCF).u32(ek12::kCertIndex).u32(0).u32(size).done());
    REQUIRE(tpm_code(r) == 0);
    REQUIRE(testing::be32(r, 10) == size);
    return {r.begin() + 14, r.end()};
}

void check_certificate(LibtpmsBackend& tpm, const std::string& ca_file, const TempDir& tmp) {
    const std::vector<uint8_t> stored = ek12::read_nv(tpm, ek12::kCertIndex);
    REQUIRE(stored.size() > 7);
    // swtpm_cert --add-header's bytes: 10 01, 00, certSize = DER + 2, 10 02.
    CHECK(stored[0] == 0x10);
    CHECK(stored[1] == 0x01);
    CHECK(stored[2] == 0x00);
    CHECK(load_be16(stored, 3) == stored.size() - 5);
    CHECK(stored[5] == 0x10);
    CHECK(stored[6] == 0x02);
    CHECK(read_value(tpm, static_cast<uint32_t>(stored.size())) == stored);
    const std::vector<uint8_t> der(stored.begin() + 7, stored.end());
    X509Ptr cert = parse_der_certificate(der);
    REQUIRE(cert);
    uint32_t refused = 0;
    const auto ek = ek12::read_pubek(tpm, refused);
    REQUIRE(ek);
    CHECK(EVP_PKEY_eq(X509_get0_pubkey(cert.get()), ek_public_key(*ek).get()) == 1);
    const std::string der_file = tmp.sub("ek12.der"), pem_file = tmp.sub("ek12.pem");
    std::ofstream(der_file, std::ios::binary).write(reinterpret_cast<const char*>(der.data()), der.size());
    const std::string convert = "openssl x509 -inform DER -in " + der_file + " -out " + pem_file;
    REQUIRE(std::system(convert.c_str()) == 0);
    const std::string verify = "openssl verify -CAfile " + ca_file + " " + pem_file + " >/dev/null";
    CHECK(std::system(verify.c_str()) == 0);
    // The TPM 1.2 profile's TPMSpecification and the TPM's attributes are in it.
    const std::string text = "openssl x509 -noout -text -in " + pem_file + " | grep -q 'Subject Directory Attributes'";
    CHECK(std::system(text.c_str()) == 0);
}

}  // namespace

TEST_CASE("TPM 1.2 EK certificate: made on first use for the TPM's EK, readable without auth, kept") {
    TempDir tmp;
    const std::string dir = tmp.sub("st");
    {
        LibtpmsBackend tpm(dir, TpmVersion::v1_2);
        const EkCa ca = state_dir_ca(tpm.state());
        publish_ca_certificate(tpm.state(), ca);
        // libtpms makes no EK at manufacture: TPM_CreateEndorsementKeyPair does.
        REQUIRE(tpm_code(testing::run(tpm, testing::Cmd(0x00C1, 0x99).u16(1).done())) == 0);
        uint32_t refused = 0;
        CHECK_FALSE(ek12::read_pubek(tpm, refused));
        CHECK(refused == ek12::kNoEndorsement);
        CHECK(manufacture_ek_certificate_tpm12(tpm, ca) == Ek12Result::issued);
        check_certificate(tpm, dir + "/ek-ca.pem", tmp);
        // No shutdown(): as if minivmm was killed now. libtpms wrote the permanent state (the EK,
        // the NV index) through the backend's NV callbacks when they changed.
    }
    {
        LibtpmsBackend tpm(dir, TpmVersion::v1_2);
        const EkCa ca = state_dir_ca(tpm.state());
        CHECK(manufacture_ek_certificate_tpm12(tpm, ca) == Ek12Result::kept);
        // The guest's view after a power cycle and the firmware's TPM_Startup(ST_CLEAR).
        REQUIRE(tpm.power_cycle());
        REQUIRE(tpm_code(testing::run(tpm, testing::Cmd(0x00C1, 0x99).u16(1).done())) == 0);
        check_certificate(tpm, dir + "/ek-ca.pem", tmp);
    }
}

TEST_CASE("TPM 1.2 EK certificate: a TPM resumed from a clean exit, presence locked by firmware, gets another CA's") {
    TempDir tmp;
    const std::string dir = tmp.sub("st");
    {
        LibtpmsBackend tpm(dir, TpmVersion::v1_2);
        const EkCa ca = state_dir_ca(tpm.state());
        REQUIRE(manufacture_ek_certificate_tpm12(tpm, ca) == Ek12Result::issued);
        // The firmware's start (SeaBIOS tpm12_startup and its end of boot): TPM_Startup(ST_CLEAR),
        // TSC_PhysicalPresence CMD_ENABLE, PRESENT, then NOTPRESENT|LOCK.
        REQUIRE(tpm.power_cycle());
        REQUIRE(tpm_code(testing::run(tpm, testing::Cmd(0x00C1, 0x99).u16(1).done())) == 0);
        for (uint16_t pp : {0x0020, 0x0008, 0x0014})
            REQUIRE(tpm_code(testing::run(tpm, testing::Cmd(0x00C1, 0x4000000A).u16(pp).done())) == 0);
        tpm.shutdown();  // a clean exit: the volatile state is written
    }
    REQUIRE(std::filesystem::exists(dir + "/tpm-00.volatilestate"));
    LibtpmsBackend tpm(dir, TpmVersion::v1_2);
    const EkCa user = EkCa::generate("user CA");
    publish_ca_certificate(tpm.state(), user);
    CHECK(manufacture_ek_certificate_tpm12(tpm, user) == Ek12Result::issued);
    check_certificate(tpm, dir + "/ek-ca.pem", tmp);
}

TEST_CASE("TPM 1.2 EK certificate: cut short, never written or another CA's is made again") {
    TempDir tmp;
    const std::string dir = tmp.sub("st");
    LibtpmsBackend tpm(dir, TpmVersion::v1_2);
    const EkCa ca = state_dir_ca(tpm.state());
    publish_ca_certificate(tpm.state(), ca);
    REQUIRE(manufacture_ek_certificate_tpm12(tpm, ca) == Ek12Result::issued);
    const std::vector<uint8_t> full = ek12::read_nv(tpm, ek12::kCertIndex);
    std::vector<uint8_t> cut(full.begin(), full.begin() + 100);
    ek12::store_nv(tpm, ek12::kCertIndex, cut);
    CHECK(ek12::unwrap_stored_cert(ek12::read_nv(tpm, ek12::kCertIndex)).empty());
    CHECK(manufacture_ek_certificate_tpm12(tpm, ca) == Ek12Result::issued);
    check_certificate(tpm, dir + "/ek-ca.pem", tmp);
    // Killed after TPM_NV_DefineSpace, before TPM_NV_WriteValue: the index holds what a fresh
    // index holds (libtpms: 0xFF bytes).
    auto del = testing::Cmd(0x00C1, 0xCC).u16(0x18).u32(ek12::kCertIndex);
    for (int i = 0; i < 2; ++i) del.u16(3).u8(0).u8(0).u8(0).u8(0x1F).bytes(std::vector<uint8_t>(20, 0));
    auto define = del;
    del.u16(0x17).u32(0).u8(0).u8(0).u8(0).u32(0).bytes(std::vector<uint8_t>(20, 0));
    define.u16(0x17).u32(ek12::kCertPermission).u8(0).u8(0).u8(0).u32(800).bytes(std::vector<uint8_t>(20, 0));
    REQUIRE(tpm_code(testing::run(tpm, del.done())) == 0);
    REQUIRE(tpm_code(testing::run(tpm, define.done())) == 0);
    CHECK(ek12::read_nv(tpm, ek12::kCertIndex).size() == 800);
    CHECK(manufacture_ek_certificate_tpm12(tpm, ca) == Ek12Result::issued);
    check_certificate(tpm, dir + "/ek-ca.pem", tmp);
    // Another CA (-tpm-ca given later).
    const EkCa user = EkCa::generate("user CA");
    publish_ca_certificate(tpm.state(), user);
    CHECK(manufacture_ek_certificate_tpm12(tpm, user) == Ek12Result::issued);
    CHECK(manufacture_ek_certificate_tpm12(tpm, user) == Ek12Result::kept);
    check_certificate(tpm, dir + "/ek-ca.pem", tmp);
}

TEST_CASE("TCG_PCCLIENT_STORED_CERT: only the exact header around the certificate is accepted") {
    const std::vector<uint8_t> der = {0x30, 0x03, 0x02, 0x01, 0x05};
    const std::vector<uint8_t> stored = ek12::wrap_stored_cert(der);
    CHECK(stored == std::vector<uint8_t>{0x10, 0x01, 0x00, 0x00, 0x07, 0x10, 0x02, 0x30, 0x03, 0x02, 0x01, 0x05});
    CHECK(ek12::unwrap_stored_cert(stored) == der);
    auto bad = stored;
    bad.push_back(0);  // padding after the certificate
    CHECK(ek12::unwrap_stored_cert(bad).empty());
    for (size_t at : {0, 1, 2, 3, 4, 5, 6}) {
        bad = stored;
        bad[at] ^= 0x01;
        CHECK(ek12::unwrap_stored_cert(bad).empty());
    }
    CHECK(ek12::unwrap_stored_cert(std::vector<uint8_t>(stored.begin(), stored.begin() + 6)).empty());
    CHECK(ek12::unwrap_stored_cert(std::vector<uint8_t>(1000, 0xFF)).empty());
}

namespace {

// TPM_TakeOwnership (TPM 1.2 Part 3 §10.1) as a guest's tpm_takeownership does it, for the
// owner's view: physical presence, TPM_PhysicalEnable, TPM_PhysicalSetDeactivated(FALSE), a
// restart, TPM_OIAP, then the owner and SRK secrets (20 zero bytes, "well-known") encrypted to
// the EK (RSAES-OAEP, SHA-1, label "TCPA") and the command authorized with HMAC-SHA1.
void take_ownership(LibtpmsBackend& tpm, const EkPublic& ek) {
    using testing::Cmd;
    auto ok = [&](const Cmd& c) { REQUIRE(tpm_code(testing::run(tpm, c.done())) == 0); };
    ok(Cmd(0x00C1, 0x4000000A).u16(0x0020));  // TSC_PhysicalPresence(CMD_ENABLE)
    ok(Cmd(0x00C1, 0x4000000A).u16(0x0008));  // TSC_PhysicalPresence(PRESENT)
    ok(Cmd(0x00C1, 0x6F));                    // TPM_PhysicalEnable
    ok(Cmd(0x00C1, 0x72).u8(0));              // TPM_PhysicalSetDeactivated(FALSE)
    REQUIRE(tpm.power_cycle());
    ok(Cmd(0x00C1, 0x99).u16(1));
    const std::vector<uint8_t> secret(20, 0);
    PkeyPtr key = ek_public_key(ek);
    auto encrypt = [&]() {
        std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(EVP_PKEY_CTX_new(key.get(), nullptr),
                                                                         &EVP_PKEY_CTX_free);
        REQUIRE(ctx);
        REQUIRE(EVP_PKEY_encrypt_init(ctx.get()) == 1);
        REQUIRE(EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) == 1);
        REQUIRE(EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), EVP_sha1()) == 1);
        REQUIRE(EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), EVP_sha1()) == 1);
        auto* label = static_cast<unsigned char*>(OPENSSL_memdup("TCPA", 4));
        REQUIRE(EVP_PKEY_CTX_set0_rsa_oaep_label(ctx.get(), label, 4) == 1);
        std::vector<uint8_t> out(256);
        size_t n = out.size();
        REQUIRE(EVP_PKEY_encrypt(ctx.get(), out.data(), &n, secret.data(), secret.size()) == 1);
        out.resize(n);
        return out;
    };
    const std::vector<uint8_t> enc_owner = encrypt(), enc_srk = encrypt();
    const auto oiap = testing::run(tpm, Cmd(0x00C1, 0x0A).done());
    REQUIRE(tpm_code(oiap) == 0);
    const uint32_t handle = testing::be32(oiap, 10);
    const std::vector<uint8_t> nonce_even(oiap.begin() + 14, oiap.begin() + 34), nonce_odd(20, 0x5A);
    // Everything the HMAC covers after the ordinal: protocolID .. srkParams (TPM_KEY of the SRK).
    auto params = Cmd(0, 0).u16(0x0005).u32(256).bytes(enc_owner).u32(256).bytes(enc_srk);
    params.u8(1).u8(1).u8(0).u8(0).u16(0x0011).u32(0).u8(1);  // ver, TPM_KEY_STORAGE, keyFlags, TPM_AUTH_ALWAYS
    params.u32(1).u16(3).u16(1).u32(12).u32(2048).u32(2).u32(0).u32(0).u32(0).u32(0);  // parms, PCRInfo, pubKey, enc
    std::vector<uint8_t> hashed = params.done();
    hashed.erase(hashed.begin(), hashed.begin() + 10);
    const std::vector<uint8_t> body = hashed;
    hashed.insert(hashed.begin(), {0x00, 0x00, 0x00, 0x0D});
    uint8_t digest[20];
    REQUIRE(EVP_Digest(hashed.data(), hashed.size(), digest, nullptr, EVP_sha1(), nullptr) == 1);
    std::vector<uint8_t> mac_in(digest, digest + 20);
    mac_in.insert(mac_in.end(), nonce_even.begin(), nonce_even.end());
    mac_in.insert(mac_in.end(), nonce_odd.begin(), nonce_odd.end());
    mac_in.push_back(0);  // continueAuthSession
    uint8_t mac[20];
    unsigned mac_size = 0;
    REQUIRE(HMAC(EVP_sha1(), secret.data(), 20, mac_in.data(), mac_in.size(), mac, &mac_size));
    auto cmd = Cmd(0x00C2, 0x0D).bytes(body).u32(handle).bytes(nonce_odd).u8(0).bytes({mac, mac + 20});
    REQUIRE(tpm_code(testing::run(tpm, cmd.done())) == 0);
}

}  // namespace

TEST_CASE("TPM 1.2 EK certificate: an owned TPM keeps its certificate; without one it gets none") {
    TempDir tmp;
    const std::string dir = tmp.sub("st");
    LibtpmsBackend tpm(dir, TpmVersion::v1_2);
    const EkCa ca = state_dir_ca(tpm.state());
    publish_ca_certificate(tpm.state(), ca);
    REQUIRE(manufacture_ek_certificate_tpm12(tpm, ca) == Ek12Result::issued);
    uint32_t refused = 0;
    const auto ek = ek12::read_pubek(tpm, refused);
    REQUIRE(ek);
    take_ownership(tpm, *ek);
    CHECK_FALSE(ek12::read_pubek(tpm, refused));
    CHECK(refused == ek12::kDisabledCmd);
    // The owner's TPM: the certificate is kept and still reads without authorization (nvLocked
    // is FALSE).
    CHECK(manufacture_ek_certificate_tpm12(tpm, ca) == Ek12Result::kept);
    CHECK(ca.signed_this(ek12::unwrap_stored_cert(ek12::read_nv(tpm, ek12::kCertIndex))));
    // Another CA now: the EK is not readable without the owner, so nothing is made, nothing lost.
    const EkCa user = EkCa::generate("user CA");
    CHECK(manufacture_ek_certificate_tpm12(tpm, user) == Ek12Result::owned);
    CHECK(ca.signed_this(ek12::unwrap_stored_cert(ek12::read_nv(tpm, ek12::kCertIndex))));
}

TEST_CASE("TPM 1.2 EK certificate: an unowned TPM out of NV writes gets none, and still starts") {
    TempDir tmp;
    LibtpmsBackend tpm(tmp.sub("st"), TpmVersion::v1_2);
    const EkCa first = EkCa::generate("first"), second = EkCa::generate("second");
    // Each certificate made costs up to three of the 64 unauthorized NV writes (delete, define,
    // write): alternating CAs uses them up after about 21.
    Ek12Result result = Ek12Result::issued;
    int made = 0;
    for (; made < 40 && result == Ek12Result::issued; ++made)
        result = manufacture_ek_certificate_tpm12(tpm, made % 2 == 0 ? first : second);
    CHECK(result == Ek12Result::nv_writes_exhausted);
    CHECK(made > 15);
    // What is left is not a certificate, and the TPM answers commands.
    const EkCa& last = (made - 1) % 2 == 0 ? first : second;
    CHECK_FALSE(last.signed_this(ek12::unwrap_stored_cert(ek12::read_nv(tpm, ek12::kCertIndex))));
    uint32_t refused = 0;
    CHECK(ek12::read_pubek(tpm, refused));
}
