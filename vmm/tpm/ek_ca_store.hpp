// Where the CA that signs the EK certificates comes from (vmm/tpm/ek_certificate.hpp), and where
// its certificate goes for verifiers:
//   -tpm-ca DIR (the user's CA): DIR/ca.pem (the CA certificate, PEM) and DIR/ca.key (its private
//     key, unencrypted PEM). Both are checked fully (regular files, no symbolic links, parse,
//     the certificate may sign certificates, the key is its key) before anything is created.
//   otherwise a per-directory CA, made on the directory's first use: STATE/ek-ca.key (mode 0600)
//     and its self-signed certificate STATE/ek-ca.pem. The key is written first and the
//     certificate second, each atomically: a kill between them leaves a key whose certificate the
//     next start makes again (a kill before the key is written leaves nothing, and the next start
//     makes a new CA).
// Either way STATE/ek-ca.pem holds the certificate verifiers need:
//   openssl verify -CAfile STATE/ek-ca.pem ek-cert.pem
#pragma once

#include <string>

#include "vmm/tpm/ek_certificate.hpp"
#include "vmm/tpm/tpm_state_dir.hpp"

namespace minivmm {

// Reads and checks -tpm-ca DIR. Throws EkCertificateError with one line naming the file.
EkCa load_user_ca(const std::string& dir);

// The per-directory CA of `state` (made now if it has none). Throws EkCertificateError.
EkCa state_dir_ca(const TpmStateDir& state);

// Writes the CA's certificate to STATE/ek-ca.pem unless it already holds exactly that. Throws
// EkCertificateError.
void publish_ca_certificate(const TpmStateDir& state, const EkCa& ca);

}  // namespace minivmm
