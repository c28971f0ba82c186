// libFuzzer target for what the EK certificates code reads (vmm/tpm/ek_manufacture.hpp,
// ek_manufacture12.hpp, ek_certificate.hpp): TPM2_CreatePrimary's response and the TPM 1.2's
// TPM_ReadPubek / TPM_CreateEndorsementKeyPair response (from libtpms, but parsed as if hostile),
// the TPM 1.2 index's TCG_PCCLIENT_STORED_CERT header,
// the certificate bytes read back from an NV index (the guest may not write the index, but a
// state directory's NV is a file), and the -tpm-ca files a user hands minivmm (OpenSSL parses the
// PEM: PEM_read_bio_X509, PEM_read_bio_PrivateKey; minivmm only checks the result).
// Input: a selector byte, then the bytes. Checks: no crash or overread (ASan), only
// std::runtime_error / EkCertificateError thrown, a parsed EK has the sizes the template asks for,
// and a certificate counts as one only when it is exactly one DER certificate.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_support.hpp"
#include "vmm/tpm/ek_certificate.hpp"
#include "vmm/tpm/ek_manufacture.hpp"
#include "vmm/tpm/ek_manufacture12.hpp"

using namespace minivmm;

namespace {

const EkCa& test_ca() {
    static const EkCa ca = EkCa::generate("fuzz EK CA");
    return ca;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const uint8_t mode = data[0] % 6;
    const std::vector<uint8_t> rest(data + 1, data + size);
    switch (mode) {
    case 0:
    case 1: {
        const auto type = mode == 0 ? EkPublic::Type::rsa2048 : EkPublic::Type::ecc_p256;
        try {
            EkPublic ek = ek::parse_create_primary(rest, type);
            if (ek.type != type) std::abort();
            // The sizes come from the response; ek_public_key refuses wrong ones.
            try {
                (void)ek_public_key(ek);
                if (type == EkPublic::Type::rsa2048 ? ek.rsa_modulus.size() != 256
                                                    : ek.ecc_x.size() != 32 || ek.ecc_y.size() != 32)
                    std::abort();
            } catch (const EkCertificateError&) {
            }
        } catch (const std::runtime_error&) {
        }
        break;
    }
    case 2:
        if (X509Ptr x = parse_der_certificate(rest)) {
            if (i2d_X509(x.get(), nullptr) <= 0) std::abort();
        }
        if (test_ca().signed_this(rest)) std::abort();  // nobody but this process has the key
        break;
    case 3: {
        // -tpm-ca: ca.pem and ca.key, split at the first NUL.
        const std::string text(rest.begin(), rest.end());
        const size_t cut = text.find('\0');
        try {
            (void)EkCa::from_pem(text.substr(0, cut), cut == std::string::npos ? "" : text.substr(cut + 1), "ca.pem",
                                 "ca.key");
        } catch (const EkCertificateError&) {
        }
        break;
    }
    case 4: {
        // TPM 1.2 pubek response; the antiReplay nonce is the input's first 20 bytes (zeros if short).
        uint8_t anti[20] = {};
        std::copy_n(rest.begin(), std::min<size_t>(20, rest.size()), anti);
        const std::vector<uint8_t> response(rest.begin() + static_cast<ptrdiff_t>(std::min<size_t>(20, rest.size())),
                                            rest.end());
        try {
            EkPublic ek = ek12::parse_pubek(response, std::span<const uint8_t, 20>(anti), "fuzz");
            if (ek.type != EkPublic::Type::rsa2048) std::abort();
            try {
                (void)ek_public_key(ek);
                if (ek.rsa_modulus.size() != 256) std::abort();
            } catch (const EkCertificateError&) {
            }
        } catch (const std::runtime_error&) {
        }
        break;
    }
    case 5: {
        // The TPM 1.2 EK certificate index: the header, then the certificate as in mode 2.
        const std::vector<uint8_t> der = ek12::unwrap_stored_cert(rest);
        if (!der.empty() && (der.size() + 7 != rest.size() || ek12::wrap_stored_cert(der) != rest)) std::abort();
        if (test_ca().signed_this(der)) std::abort();
        break;
    }
    }
    return 0;
}
