#include "vmm/tpm/ek_certificate.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <fmt/core.h>

namespace minivmm {

namespace {

struct Freer {
    void operator()(BIO* b) const noexcept { BIO_free(b); }
    void operator()(BIGNUM* b) const noexcept { BN_free(b); }
    void operator()(OSSL_PARAM_BLD* b) const noexcept { OSSL_PARAM_BLD_free(b); }
    void operator()(OSSL_PARAM* p) const noexcept { OSSL_PARAM_free(p); }
    void operator()(EVP_PKEY_CTX* c) const noexcept { EVP_PKEY_CTX_free(c); }
    void operator()(X509_EXTENSION* e) const noexcept { X509_EXTENSION_free(e); }
    void operator()(GENERAL_NAMES* g) const noexcept { GENERAL_NAMES_free(g); }
    void operator()(ASN1_OBJECT* o) const noexcept { ASN1_OBJECT_free(o); }
    // ASN1_INTEGER and ASN1_OCTET_STRING are both ASN1_STRING.
    void operator()(ASN1_STRING* s) const noexcept { ASN1_STRING_free(s); }
};
template <typename T> using Owned = std::unique_ptr<T, Freer>;

// OpenSSL's reason for the last failure, for the one-line messages.
std::string openssl_reason() {
    const unsigned long e = ERR_peek_last_error();
    ERR_clear_error();
    if (e == 0) return "unknown OpenSSL error";
    return ERR_reason_error_string(e) ? ERR_reason_error_string(e) : fmt::format("OpenSSL error {:#x}", e);
}

[[noreturn]] void fail(const std::string& what) { throw EkCertificateError(fmt::format("{}: {}", what, openssl_reason())); }

void need(bool ok, const char* what) {
    if (!ok) fail(what);
}

std::string bio_text(BIO* bio) {
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<size_t>(n));
}

// Never prompts on the terminal for a passphrase: an encrypted key is refused instead.
int no_passphrase(char*, int, int, void*) { return -1; }

// Ed25519/Ed448 sign without a separate digest (X509_sign takes NULL then).
const EVP_MD* digest_for(EVP_PKEY* key) {
    const int id = EVP_PKEY_get_id(key);
    return id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448 ? nullptr : EVP_sha256();
}

// version 3, a random positive 127-bit serial, valid from now with no well-defined end.
X509Ptr new_certificate(EVP_PKEY* subject_key) {
    X509Ptr x(X509_new());
    need(x && X509_set_version(x.get(), X509_VERSION_3), "creating a certificate");
    uint8_t serial[16];
    need(RAND_bytes(serial, sizeof serial) == 1, "random serial number");
    serial[0] = static_cast<uint8_t>((serial[0] & 0x7f) | 0x40);
    Owned<BIGNUM> bn(BN_bin2bn(serial, sizeof serial, nullptr));
    need(bn != nullptr, "serial number");
    Owned<ASN1_INTEGER> sn(BN_to_ASN1_INTEGER(bn.get(), nullptr));
    need(sn && X509_set_serialNumber(x.get(), sn.get()), "serial number");
    need(X509_gmtime_adj(X509_getm_notBefore(x.get()), 0) != nullptr, "validity");
    need(ASN1_TIME_set_string(X509_getm_notAfter(x.get()), "99991231235959Z") == 1, "validity");
    need(X509_set_pubkey(x.get(), subject_key) == 1, "public key");
    return x;
}

void add_extension(X509* x, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, x, nullptr, nullptr, 0);
    Owned<X509_EXTENSION> ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value));
    need(ext && X509_add_ext(x, ext.get(), -1) == 1, "certificate extension");
}

// subjectAltName: one directoryName holding one RDN with the three TPM attributes (EK Credential
// Profile §3.2.9), critical because the subject is empty (RFC 5280 §4.2.1.6).
void add_tpm_alt_name(X509* x, const TpmIdentity& tpm) {
    X509_NAME* name = X509_NAME_new();
    need(name != nullptr, "subjectAltName");
    GENERAL_NAME* gn = GENERAL_NAME_new();
    if (!gn) X509_NAME_free(name);
    need(gn != nullptr, "subjectAltName");
    gn->type = GEN_DIRNAME;
    gn->d.directoryName = name;
    Owned<GENERAL_NAMES> names(sk_GENERAL_NAME_new_null());
    if (!names || !sk_GENERAL_NAME_push(names.get(), gn)) GENERAL_NAME_free(gn);
    need(names && sk_GENERAL_NAME_num(names.get()) == 1, "subjectAltName");
    const std::pair<const char*, const std::string*> attributes[] = {
        {"2.23.133.2.1", &tpm.manufacturer}, {"2.23.133.2.2", &tpm.model}, {"2.23.133.2.3", &tpm.version}};
    int set = 0;  // the first starts the RDN, the others join it
    for (const auto& [oid, value] : attributes) {
        Owned<ASN1_OBJECT> obj(OBJ_txt2obj(oid, 1));
        need(obj && X509_NAME_add_entry_by_OBJ(name, obj.get(), MBSTRING_UTF8,
                                               reinterpret_cast<const unsigned char*>(value->c_str()),
                                               static_cast<int>(value->size()), -1, set) == 1,
             "subjectAltName");
        set = -1;
    }
    need(X509_add1_ext_i2d(x, NID_subject_alt_name, names.get(), 1, X509V3_ADD_DEFAULT) == 1, "subjectAltName");
}

// subjectDirectoryAttributes with the TPMSpecification attribute (TCG Credential Profiles for TPM
// 1.2 §3.5.12, OID tcg-at-tpmSpecification 2.23.133.2.16): SEQUENCE { SEQUENCE { OID, SET {
// SEQUENCE { family UTF8String "1.2", level INTEGER 2, revision INTEGER 116 } } } }, the
// specification libtpms's TPM 1.2 implements; not critical (as swtpm_cert's).
void add_tpm12_specification(X509* x) {
    static const unsigned char der[] = {0x30, 0x18, 0x30, 0x16, 0x06, 0x05, 0x67, 0x81, 0x05, 0x02, 0x10,
                                        0x31, 0x0d, 0x30, 0x0b, 0x0c, 0x03, '1',  '.',  '2',  0x02, 0x01,
                                        0x02, 0x02, 0x01, 0x74};
    Owned<ASN1_OCTET_STRING> value(ASN1_OCTET_STRING_new());
    need(value && ASN1_OCTET_STRING_set(value.get(), der, sizeof der) == 1, "subjectDirectoryAttributes");
    Owned<X509_EXTENSION> ext(X509_EXTENSION_create_by_NID(nullptr, NID_subject_directory_attributes, 0, value.get()));
    need(ext && X509_add_ext(x, ext.get(), -1) == 1, "subjectDirectoryAttributes");
}

X509Ptr self_signed(EVP_PKEY* key, const std::string& common_name) {
    X509Ptr x = new_certificate(key);
    X509_NAME* subject = X509_get_subject_name(x.get());
    need(X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(common_name.c_str()),
                                    -1, -1, 0) == 1 &&
             X509_set_issuer_name(x.get(), subject) == 1,
         "CA name");
    add_extension(x.get(), x.get(), NID_basic_constraints, "critical,CA:TRUE");
    add_extension(x.get(), x.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
    add_extension(x.get(), x.get(), NID_subject_key_identifier, "hash");
    need(X509_sign(x.get(), key, digest_for(key)) > 0, "signing the CA certificate");
    return x;
}

}  // namespace

PkeyPtr ek_public_key(const EkPublic& ek) {
    Owned<OSSL_PARAM_BLD> bld(OSSL_PARAM_BLD_new());
    need(bld != nullptr, "EK public key");
    Owned<BIGNUM> n, e;
    std::vector<uint8_t> point;
    const char* type = "RSA";
    if (ek.type == EkPublic::Type::rsa2048) {
        if (ek.rsa_modulus.size() != 256) throw EkCertificateError("the RSA EK's modulus is not 2048 bits");
        n.reset(BN_bin2bn(ek.rsa_modulus.data(), static_cast<int>(ek.rsa_modulus.size()), nullptr));
        e.reset(BN_new());
        need(n && e && BN_set_word(e.get(), ek.rsa_exponent) && OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) &&
                 OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()),
             "RSA EK public key");
    } else {
        if (ek.ecc_x.size() != 32 || ek.ecc_y.size() != 32)
            throw EkCertificateError("the ECC EK's point is not a NIST P-256 point");
        type = "EC";
        point.push_back(0x04);  // uncompressed (SEC 1 §2.3.3)
        point.insert(point.end(), ek.ecc_x.begin(), ek.ecc_x.end());
        point.insert(point.end(), ek.ecc_y.begin(), ek.ecc_y.end());
        need(OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) &&
                 OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()),
             "ECC EK public key");
    }
    Owned<OSSL_PARAM> params(OSSL_PARAM_BLD_to_param(bld.get()));
    Owned<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
    EVP_PKEY* raw = nullptr;
    need(params && ctx && EVP_PKEY_fromdata_init(ctx.get()) == 1 &&
             EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) == 1,
         "EK public key");
    PkeyPtr key(raw);
    Owned<EVP_PKEY_CTX> check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
    need(check && EVP_PKEY_public_check(check.get()) == 1, "the EK's public key is invalid");
    return key;
}

EkCa EkCa::generate(const std::string& common_name) {
    PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    need(key != nullptr, "generating the CA key");
    return from_key(std::move(key), common_name);
}

EkCa EkCa::from_key(PkeyPtr key, const std::string& common_name) {
    X509Ptr cert = self_signed(key.get(), common_name);
    return EkCa(std::move(cert), std::move(key));
}

PkeyPtr EkCa::key_from_pem(const std::string& key_pem, const std::string& key_name) {
    Owned<BIO> bio(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
    need(bio != nullptr, "reading a key");
    PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, &no_passphrase, nullptr));
    if (!key)
        throw EkCertificateError(fmt::format("{} holds no unencrypted PEM private key ({})", key_name, openssl_reason()));
    return key;
}

EkCa EkCa::from_pem(const std::string& cert_pem, const std::string& key_pem, const std::string& cert_name,
                    const std::string& key_name) {
    Owned<BIO> bio(BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())));
    need(bio != nullptr, "reading a certificate");
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, &no_passphrase, nullptr));
    if (!cert) throw EkCertificateError(fmt::format("{} holds no PEM certificate ({})", cert_name, openssl_reason()));
    if (X509_check_ca(cert.get()) == 0)
        throw EkCertificateError(fmt::format("{} is not a CA certificate (no basicConstraints CA:TRUE, or a keyUsage "
                                             "without keyCertSign)", cert_name));
    PkeyPtr key = key_from_pem(key_pem, key_name);
    if (X509_check_private_key(cert.get(), key.get()) != 1) {
        ERR_clear_error();
        throw EkCertificateError(fmt::format("{} is not the private key of {}", key_name, cert_name));
    }
    return EkCa(std::move(cert), std::move(key));
}

std::string EkCa::certificate_pem() const {
    Owned<BIO> bio(BIO_new(BIO_s_mem()));
    need(bio && PEM_write_bio_X509(bio.get(), cert_.get()) == 1, "writing the CA certificate");
    return bio_text(bio.get());
}

std::string EkCa::key_pem() const {
    Owned<BIO> bio(BIO_new(BIO_s_mem()));
    need(bio && PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1,
         "writing the CA key");
    return bio_text(bio.get());
}

std::vector<uint8_t> EkCa::issue(const EkPublic& ek, const TpmIdentity& tpm) const { return issue_profile(ek, tpm, false); }

std::vector<uint8_t> EkCa::issue_tpm12(const EkPublic& ek, const TpmIdentity& tpm) const {
    if (ek.type != EkPublic::Type::rsa2048) throw EkCertificateError("a TPM 1.2 EK is an RSA key");
    return issue_profile(ek, tpm, true);
}

std::vector<uint8_t> EkCa::issue_profile(const EkPublic& ek, const TpmIdentity& tpm, bool tpm12) const {
    PkeyPtr ek_key = ek_public_key(ek);
    X509Ptr x = new_certificate(ek_key.get());
    need(X509_set_issuer_name(x.get(), X509_get_subject_name(cert_.get())) == 1, "issuer name");
    add_extension(x.get(), cert_.get(), NID_basic_constraints, "critical,CA:FALSE");
    add_extension(x.get(), cert_.get(), NID_key_usage,
                  ek.type == EkPublic::Type::rsa2048 ? "critical,keyEncipherment" : "critical,keyAgreement");
    add_extension(x.get(), cert_.get(), NID_ext_key_usage, "2.23.133.8.1");  // tcg-kp-EKCertificate
    add_extension(x.get(), cert_.get(), NID_authority_key_identifier, "keyid:always");
    add_tpm_alt_name(x.get(), tpm);
    if (tpm12) add_tpm12_specification(x.get());
    need(X509_sign(x.get(), key_.get(), digest_for(key_.get())) > 0, "signing the EK certificate");
    const int n = i2d_X509(x.get(), nullptr);
    need(n > 0, "encoding the EK certificate");
    std::vector<uint8_t> der(static_cast<size_t>(n));
    unsigned char* p = der.data();
    need(i2d_X509(x.get(), &p) == n, "encoding the EK certificate");
    return der;
}

bool EkCa::signed_this(const std::vector<uint8_t>& der) const noexcept {
    X509Ptr x = parse_der_certificate(der);
    const bool ok = x && X509_NAME_cmp(X509_get_issuer_name(x.get()), X509_get_subject_name(cert_.get())) == 0 &&
                    X509_verify(x.get(), X509_get0_pubkey(cert_.get())) == 1;
    ERR_clear_error();
    return ok;
}

X509Ptr parse_der_certificate(const std::vector<uint8_t>& der) noexcept {
    const unsigned char* p = der.data();
    X509Ptr x(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
    ERR_clear_error();
    if (!x || p != der.data() + der.size()) return nullptr;
    return x;
}

}  // namespace minivmm
