// libFuzzer target for what the EK certificates code reads (vmm/tpm/ek_manufacture.hpp,
// ek_certificate.hpp): TPM2_CreatePrimary's response (from libtpms, but parsed as if hostile),
// the certificate bytes read back from an NV index (the guest may not write the index, but a
// state directory's NV is a file), and the -tpm-ca files a user hands minivmm (OpenSSL parses the
// PEM: PEM_read_bio_X509, PEM_read_bio_PrivateKey; minivmm only checks the result).
// Input: a selector byte, then the bytes. Checks: no crash or overread (ASan), only
// std::runtime_error / EkCertificateError thrown, a parsed EK has the sizes the template asks for,
// and a certificate counts as one only when it is exactly one DER certificate.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_support.hpp"
#include "vmm/tpm/ek_certificate.hpp"
#include "vmm/tpm/ek_manufacture.hpp"

using namespace minivmm;

namespace {

const EkCa& test_ca() {
    static const EkCa ca = EkCa::generate("fuzz EK CA");
    return ca;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const uint8_t mode = data[0] % 4;
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
    }
    return 0;
}
