#include "vmm/tpm/ek_ca_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/core.h>
#include <openssl/rand.h>

#include "vmm/base/unique_fd.hpp"

namespace minivmm {

namespace {

constexpr size_t kMaxPemFile = 1u << 20;

// DIR/name whole: a regular file, no symbolic link (neither DIR nor name), at most 1 MiB.
std::string read_user_file(int dir_fd, const std::string& dir, const char* name) {
    const std::string path = fmt::format("{}/{}", dir, name);
    // O_NONBLOCK: a FIFO would otherwise hang the open; it is refused just below.
    UniqueFd fd(::openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    if (!fd.valid())
        throw EkCertificateError(fmt::format("-tpm-ca: cannot open {}: {}", path,
                                             errno == ELOOP ? "it is a symbolic link" : std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
        throw EkCertificateError(fmt::format("-tpm-ca: {} is not a regular file", path));
    if (static_cast<uint64_t>(st.st_size) > kMaxPemFile)
        throw EkCertificateError(fmt::format("-tpm-ca: {} is larger than {} bytes", path, kMaxPemFile));
    std::string text(static_cast<size_t>(st.st_size), '\0');
    size_t got = 0;
    while (got < text.size()) {
        const ssize_t n = ::pread(fd.get(), text.data() + got, text.size() - got, static_cast<off_t>(got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw EkCertificateError(fmt::format("-tpm-ca: cannot read {}: {}", path, std::strerror(errno)));
        if (n == 0) break;
        got += static_cast<size_t>(n);
    }
    text.resize(got);
    return text;
}

std::string plain_text(const TpmStateDir& state, std::string_view name, bool& present) {
    auto r = state.read_plain(name);
    if (r.status == TpmStateDir::ReadResult::Status::error) throw EkCertificateError(r.error);
    present = r.status == TpmStateDir::ReadResult::Status::ok;
    return std::string(r.payload.begin(), r.payload.end());
}

void write_text(const TpmStateDir& state, std::string_view name, const std::string& text, unsigned mode) {
    const std::string err =
        state.write_plain(name, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()), mode);
    if (!err.empty()) throw EkCertificateError(err);
}

// "minivmm EK CA 1a2b3c4d": one name per directory, so two directories' CAs are told apart.
std::string new_ca_name() {
    uint8_t id[4];
    if (RAND_bytes(id, sizeof id) != 1) throw EkCertificateError("no random bytes for the CA's name");
    return fmt::format("minivmm EK CA {:02x}{:02x}{:02x}{:02x}", id[0], id[1], id[2], id[3]);
}

}  // namespace

EkCa load_user_ca(const std::string& dir) {
    std::string real = dir;
    while (real.size() > 1 && real.back() == '/') real.pop_back();  // else O_NOFOLLOW would follow "link/"
    UniqueFd fd(::open(real.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid())
        throw EkCertificateError(fmt::format("-tpm-ca: cannot open directory {}: {}", dir,
                                             errno == ELOOP || errno == ENOTDIR ? "not a directory (or a symbolic link)"
                                                                                : std::strerror(errno)));
    const std::string cert = read_user_file(fd.get(), real, "ca.pem");
    const std::string key = read_user_file(fd.get(), real, "ca.key");
    try {
        return EkCa::from_pem(cert, key, real + "/ca.pem", real + "/ca.key");
    } catch (const EkCertificateError& e) {
        throw EkCertificateError(fmt::format("-tpm-ca: {}", e.what()));
    }
}

EkCa state_dir_ca(const TpmStateDir& state) {
    bool have_key = false, have_cert = false;
    const std::string key = plain_text(state, TpmStateDir::kCaKeyName, have_key);
    const std::string cert = plain_text(state, TpmStateDir::kCaCertName, have_cert);
    const std::string key_path = state.file_path(TpmStateDir::kCaKeyName);
    const std::string cert_path = state.file_path(TpmStateDir::kCaCertName);
    if (!have_key) {
        EkCa ca = EkCa::generate(new_ca_name());
        write_text(state, TpmStateDir::kCaKeyName, ca.key_pem(), 0600);
        write_text(state, TpmStateDir::kCaCertName, ca.certificate_pem(), 0600);
        return ca;
    }
    if (have_cert) {
        try {
            return EkCa::from_pem(cert, key, cert_path, key_path);
        } catch (const EkCertificateError&) {
            // Not the key's certificate: left by a kill between writing a new key and its certificate.
        }
    }
    EkCa ca = EkCa::from_key(EkCa::key_from_pem(key, key_path), new_ca_name());
    write_text(state, TpmStateDir::kCaCertName, ca.certificate_pem(), 0600);
    return ca;
}

void publish_ca_certificate(const TpmStateDir& state, const EkCa& ca) {
    bool present = false;
    const std::string pem = ca.certificate_pem();
    if (plain_text(state, TpmStateDir::kCaCertName, present) != pem || !present)
        write_text(state, TpmStateDir::kCaCertName, pem, 0600);
}

}  // namespace minivmm
