// EkCa and the EK certificate profile (vmm/tpm/ek_certificate.hpp) with OpenSSL keys, no TPM: the
// extensions the TCG EK Credential Profile asks for, the chain verifying with OpenSSL's own
// X509_verify_cert, and the checks of a user's CA (-tpm-ca) files.
#include <doctest/doctest.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <string>

#include "vmm/tpm/ek_certificate.hpp"

using namespace minivmm;

namespace {

const TpmIdentity kTpm{"id:49424D00", "libtpms", "id:20191023"};

// An EkPublic of a freshly generated OpenSSL key, as the TPM would report it.
EkPublic rsa_ek(PkeyPtr& key) {
    key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}));
    REQUIRE(key);
    BIGNUM* n = nullptr;
    REQUIRE(EVP_PKEY_get_bn_param(key.get(), "n", &n) == 1);
    EkPublic ek;
    ek.rsa_modulus.resize(256);
    REQUIRE(BN_bn2binpad(n, ek.rsa_modulus.data(), 256) == 256);
    BN_free(n);
    return ek;
}

EkPublic ecc_ek(PkeyPtr& key) {
    key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    REQUIRE(key);
    uint8_t point[65];
    size_t len = 0;
    REQUIRE(EVP_PKEY_get_octet_string_param(key.get(), "encoded-pub-key", point, sizeof point, &len) == 1);
    REQUIRE(len == 65);
    EkPublic ek;
    ek.type = EkPublic::Type::ecc_p256;
    ek.ecc_x.assign(point + 1, point + 33);
    ek.ecc_y.assign(point + 33, point + 65);
    return ek;
}

// The bytes written to a memory BIO, which is freed.
std::string drain(BIO* bio) {
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string text(data, static_cast<size_t>(n));
    BIO_free(bio);
    return text;
}

// X509_verify_cert against `ca` as the only trust anchor, with X509_PURPOSE_ANY.
bool chain_verifies(const EkCa& ca, X509* cert) {
    X509_STORE* store = X509_STORE_new();
    X509_STORE_add_cert(store, ca.certificate());
    X509_STORE_CTX* ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, store, cert, nullptr);
    const bool ok = X509_verify_cert(ctx) == 1;
    if (!ok) MESSAGE(X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return ok;
}

std::string extension_text(X509* x, int nid) {
    const int at = X509_get_ext_by_NID(x, nid, -1);
    if (at < 0) return "";
    X509_EXTENSION* ext = X509_get_ext(x, at);
    BIO* bio = BIO_new(BIO_s_mem());
    X509V3_EXT_print(bio, ext, 0, 0);
    const std::string text = drain(bio);
    return (X509_EXTENSION_get_critical(ext) ? "critical " : "") + text;
}

}  // namespace

TEST_CASE("EK certificate: RSA and ECC EKs get the EK Credential Profile's certificate, signed by the CA") {
    const EkCa ca = EkCa::generate("test EK CA");
    CHECK(X509_check_ca(ca.certificate()) == 1);
    for (bool rsa : {true, false}) {
        CAPTURE(rsa);
        PkeyPtr key;
        const EkPublic ek = rsa ? rsa_ek(key) : ecc_ek(key);
        const std::vector<uint8_t> der = ca.issue(ek, kTpm);
        X509Ptr cert = parse_der_certificate(der);
        REQUIRE(cert);
        CHECK(EVP_PKEY_eq(X509_get0_pubkey(cert.get()), key.get()) == 1);
        CHECK(chain_verifies(ca, cert.get()));
        CHECK(ca.signed_this(der));
        CHECK(X509_NAME_entry_count(X509_get_subject_name(cert.get())) == 0);
        CHECK(X509_get_version(cert.get()) == X509_VERSION_3);
        CHECK(extension_text(cert.get(), NID_basic_constraints) == "critical CA:FALSE");
        CHECK(extension_text(cert.get(), NID_key_usage) == (rsa ? "critical Key Encipherment" : "critical Key Agreement"));
        CHECK(extension_text(cert.get(), NID_ext_key_usage) == "2.23.133.8.1");
        const std::string san = extension_text(cert.get(), NID_subject_alt_name);
        CAPTURE(san);
        CHECK(san.starts_with("critical DirName:"));
        CHECK(san.find("2.23.133.2.1=id:49424D00") != std::string::npos);
        CHECK(san.find("2.23.133.2.2=libtpms") != std::string::npos);
        CHECK(san.find("2.23.133.2.3=id:20191023") != std::string::npos);
        CHECK(X509_get_ext_by_NID(cert.get(), NID_authority_key_identifier, -1) >= 0);
        // Another CA did not sign it; a cut or extended certificate is none.
        CHECK_FALSE(EkCa::generate("other").signed_this(der));
        CHECK_FALSE(ca.signed_this(std::vector<uint8_t>(der.begin(), der.end() - 1)));
        std::vector<uint8_t> longer = der;
        longer.push_back(0xff);
        CHECK_FALSE(ca.signed_this(longer));
        std::vector<uint8_t> flipped = der;
        flipped[der.size() / 2] ^= 1;
        CHECK_FALSE(ca.signed_this(flipped));
        CHECK_FALSE(ca.signed_this({}));
    }
}

TEST_CASE("EK certificate: a wrong-size modulus or a point off the curve is refused") {
    EkPublic bad;
    bad.rsa_modulus.assign(255, 0xff);
    CHECK_THROWS_AS(ek_public_key(bad), EkCertificateError);
    bad.type = EkPublic::Type::ecc_p256;
    bad.ecc_x.assign(32, 1);
    bad.ecc_y.assign(32, 2);
    CHECK_THROWS_AS(ek_public_key(bad), EkCertificateError);
}

TEST_CASE("EK CA: PEM round trip and the checks of a user's CA") {
    const EkCa ca = EkCa::generate("user CA");
    const EkCa again = EkCa::from_pem(ca.certificate_pem(), ca.key_pem(), "ca.pem", "ca.key");
    CHECK(X509_cmp(again.certificate(), ca.certificate()) == 0);
    CHECK(EVP_PKEY_eq(again.key(), ca.key()) == 1);
    const EkCa other = EkCa::generate("other CA");
    auto refused = [](const std::string& cert, const std::string& key) {
        try {
            EkCa::from_pem(cert, key, "D/ca.pem", "D/ca.key");
        } catch (const EkCertificateError& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    CHECK(refused(ca.certificate_pem(), other.key_pem()) == "D/ca.key is not the private key of D/ca.pem");
    CHECK(refused("garbage", ca.key_pem()).starts_with("D/ca.pem holds no PEM certificate"));
    CHECK(refused(ca.certificate_pem(), "").starts_with("D/ca.key holds no unencrypted PEM private key"));
    // An encrypted key is refused, not prompted for.
    BIO* bio = BIO_new(BIO_s_mem());
    REQUIRE(PEM_write_bio_PKCS8PrivateKey(bio, ca.key(), EVP_aes_128_cbc(), nullptr, 0, nullptr, (void*)"secret") == 1);
    CHECK(refused(ca.certificate_pem(), drain(bio)).starts_with("D/ca.key holds no unencrypted"));
    // An end-entity certificate cannot be a CA.
    PkeyPtr key;
    X509Ptr ee = parse_der_certificate(ca.issue(ecc_ek(key), kTpm));
    REQUIRE(ee);
    bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, ee.get());
    CHECK(refused(drain(bio), ca.key_pem()).starts_with("D/ca.pem is not a CA certificate"));
}
