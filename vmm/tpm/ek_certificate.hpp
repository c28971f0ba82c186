// The X.509 side of the in-process TPM's EK certificates (OpenSSL 3 does the ASN.1 and the
// signatures): the CA that signs them, and the EK certificate itself as the TCG EK Credential
// Profile for TPM Family 2.0 (version 2.x, §3.2 "EK Certificate") describes it:
//   version 3, a random positive serial, issuer = the CA's subject, an empty subject, validity
//   from now to 99991231235959Z (RFC 5280 §4.1.2.5: "no well-defined expiration date"),
//   the EK's public key (RSA 2048 with the template's exponent, or ECC NIST P-256), and
//   basicConstraints CA:FALSE (critical), keyUsage keyEncipherment (RSA) / keyAgreement (ECC)
//   (critical), extendedKeyUsage tcg-kp-EKCertificate (2.23.133.8.1), authorityKeyIdentifier,
//   subjectAltName (critical, the subject being empty) = directoryName { tcg-at-tpmManufacturer
//   2.23.133.2.1, tcg-at-tpmModel 2.23.133.2.2, tcg-at-tpmVersion 2.23.133.2.3 } (§3.2.9).
// swtpm's swtpm_localca issues the same profile (src/swtpm_cert/ek-cert.c). No file or TPM here:
// the unit tests drive all of it directly.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <openssl/evp.h>
#include <openssl/x509.h>

namespace minivmm {

// A certificate or key that does not do what it must (one line, naming what).
class EkCertificateError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct EvpPkeyFree {
    void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};
struct X509Free {
    void operator()(X509* x) const noexcept { X509_free(x); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;

// An EK's public key as TPM2_CreatePrimary returns it (TPMT_PUBLIC.unique, big-endian).
struct EkPublic {
    enum class Type { rsa2048, ecc_p256 } type = Type::rsa2048;
    std::vector<uint8_t> rsa_modulus;  // 256 bytes
    uint32_t rsa_exponent = 65537;     // the template's 0 means 2^16 + 1 (TPM 2.0 Part 2 §12.2.3.5)
    std::vector<uint8_t> ecc_x, ecc_y; // 32 bytes each
};
// The key as OpenSSL holds it. Throws EkCertificateError for a wrong size or a point off the curve.
PkeyPtr ek_public_key(const EkPublic& ek);

// What the subjectAltName says about the TPM (EK Credential Profile §3.2.9: "id:" and the
// TPM_PT_MANUFACTURER vendor ID in 8 hex digits; model and version free text / "id:" hex).
struct TpmIdentity {
    std::string manufacturer;  // e.g. "id:49424D00"
    std::string model;         // e.g. "libtpms"
    std::string version;       // e.g. "id:00090002"
};

class EkCa {
public:
    // A new CA: an ECC P-256 key and a self-signed certificate (subject CN=`common_name`,
    // basicConstraints CA:TRUE critical, keyUsage keyCertSign+cRLSign critical, subjectKeyIdentifier).
    static EkCa generate(const std::string& common_name);
    // A self-signed certificate made for an existing key (a per-directory CA whose key was written
    // but whose certificate was not, when minivmm was killed between the two).
    static EkCa from_key(PkeyPtr key, const std::string& common_name);
    // From PEM text (a certificate, and an unencrypted private key in any form OpenSSL's
    // PEM_read_bio_PrivateKey reads). Checks that the certificate may sign certificates (X509_check_ca)
    // and that the key is the certificate's. Throws EkCertificateError naming `cert_name`/`key_name`.
    static EkCa from_pem(const std::string& cert_pem, const std::string& key_pem, const std::string& cert_name,
                         const std::string& key_name);
    // The private key alone, from PEM (for from_key). Throws EkCertificateError.
    static PkeyPtr key_from_pem(const std::string& key_pem, const std::string& key_name);

    std::string certificate_pem() const;
    std::string key_pem() const;  // unencrypted PKCS#8
    X509* certificate() const noexcept { return cert_.get(); }
    EVP_PKEY* key() const noexcept { return key_.get(); }

    // The EK certificate for `ek`, DER-encoded, signed with SHA-256.
    std::vector<uint8_t> issue(const EkPublic& ek, const TpmIdentity& tpm) const;
    // The EK certificate of a TPM 1.2 (an RSA 2048 EK), as the TCG Credential Profiles for TPM 1.2
    // and swtpm_cert for a TPM 1.2 make it: the same as issue()'s plus subjectDirectoryAttributes
    // with tcg-at-tpmSpecification {"1.2", level 2, revision 116}. The key is in
    // subjectPublicKeyInfo as rsaEncryption (RFC 3279), as swtpm_cert does, not as the profile's
    // id-RSAES-OAEP with the TCPA OAEP parameters: `openssl verify`, the Linux kernel's X.509
    // parser and most other verifiers do not accept an id-RSAES-OAEP key.
    std::vector<uint8_t> issue_tpm12(const EkPublic& ek, const TpmIdentity& tpm) const;
    // Whether `der` is exactly one DER certificate (no trailing bytes) signed by this CA.
    bool signed_this(const std::vector<uint8_t>& der) const noexcept;

private:
    std::vector<uint8_t> issue_profile(const EkPublic& ek, const TpmIdentity& tpm, bool tpm12) const;
    EkCa(X509Ptr cert, PkeyPtr key) : cert_(std::move(cert)), key_(std::move(key)) {}
    X509Ptr cert_;
    PkeyPtr key_;
};

// The one DER certificate in `der` (nothing after it), or nullptr.
X509Ptr parse_der_certificate(const std::vector<uint8_t>& der) noexcept;

}  // namespace minivmm
