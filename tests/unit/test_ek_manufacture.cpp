// The EK certificates of the in-process TPM (vmm/tpm/ek_manufacture.hpp, ek_ca_store.hpp) with the
// real libtpms: what the NV indices hold after manufacture is a certificate for the TPM's own EK
// (the public key TPM2_CreatePrimary gives for the EK template), verifying against STATE/ek-ca.pem
// with the openssl command; a second start keeps them; a manufacture cut short is completed.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "tests/unit/temp_dir.hpp"
#include "tests/unit/tpm_command.hpp"
#include "vmm/tpm/ek_ca_store.hpp"
#include "vmm/tpm/ek_manufacture.hpp"
#include "vmm/tpm/libtpms_backend.hpp"

using namespace minivmm;
using testing::TempDir;

namespace {

constexpr std::pair<EkPublic::Type, uint32_t> kIndices[] = {{EkPublic::Type::rsa2048, ek::kRsaCertIndex},
                                                            {EkPublic::Type::ecc_p256, ek::kEccCertIndex}};

// The certificate in `index` is for the TPM's EK of `type` and verifies with `openssl verify`
// against the CA certificate file.
void check_certificate(LibtpmsBackend& tpm, EkPublic::Type type, uint32_t index, const std::string& ca_file,
                       const TempDir& tmp) {
    const std::vector<uint8_t> der = ek::read_nv(tpm, index);
    X509Ptr cert = parse_der_certificate(der);
    REQUIRE(cert);
    PkeyPtr ek = ek_public_key(ek::create_ek(tpm, type));
    CHECK(EVP_PKEY_eq(X509_get0_pubkey(cert.get()), ek.get()) == 1);
    const std::string der_file = tmp.sub("ek.der"), pem_file = tmp.sub("ek.pem");
    std::ofstream(der_file, std::ios::binary).write(reinterpret_cast<const char*>(der.data()), der.size());
    const std::string convert = "openssl x509 -inform DER -in " + der_file + " -out " + pem_file;
    REQUIRE(std::system(convert.c_str()) == 0);
    const std::string verify = "openssl verify -CAfile " + ca_file + " " + pem_file + " >/dev/null";
    CHECK(std::system(verify.c_str()) == 0);
}

}  // namespace

TEST_CASE("EK certificates: made on first use, for the TPM's own EKs, kept at the next start") {
    TempDir tmp;
    const std::string dir = tmp.sub("st");
    {
        LibtpmsBackend tpm(dir, TpmVersion::v2_0);
        const EkCa ca = state_dir_ca(tpm.state());
        publish_ca_certificate(tpm.state(), ca);
        const EkManufactureResult made = manufacture_ek_certificates(tpm, ca);
        CHECK(made.issued == 2);
        CHECK(made.kept == 0);
        for (auto [type, index] : kIndices) check_certificate(tpm, type, index, dir + "/ek-ca.pem", tmp);
        struct stat st {};
        REQUIRE(::stat((dir + "/ek-ca.key").c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0600);
        tpm.shutdown();
    }
    {
        LibtpmsBackend tpm(dir, TpmVersion::v2_0);
        const EkCa ca = state_dir_ca(tpm.state());
        const EkManufactureResult again = manufacture_ek_certificates(tpm, ca);
        CHECK(again.issued == 0);
        CHECK(again.kept == 2);
        // The guest's view after a power cycle (TPM2_Startup by the firmware): the index reads back.
        REQUIRE(tpm.power_cycle());
        testing::run(tpm, testing::Cmd(kTpm2TagNoSessions, 0x144).u16(0).done());
        CHECK(ca.signed_this(ek::read_nv(tpm, ek::kEccCertIndex)));
    }
}

TEST_CASE("EK certificates: a manufacture cut short, or another CA's certificate, is redone") {
    TempDir tmp;
    const std::string dir = tmp.sub("st");
    LibtpmsBackend tpm(dir, TpmVersion::v2_0);
    const EkCa ca = state_dir_ca(tpm.state());
    REQUIRE(manufacture_ek_certificates(tpm, ca).issued == 2);
    // As if minivmm was killed after the first NV_Write chunk of the RSA certificate: the index
    // exists, is written, but holds only the first bytes.
    const std::vector<uint8_t> full = ek::read_nv(tpm, ek::kRsaCertIndex);
    REQUIRE(full.size() > 100);
    std::vector<uint8_t> cut(full.begin(), full.begin() + 100);
    cut.resize(full.size(), 0);
    ek::store_nv(tpm, ek::kRsaCertIndex, cut);
    CHECK_FALSE(ca.signed_this(ek::read_nv(tpm, ek::kRsaCertIndex)));
    EkManufactureResult redone = manufacture_ek_certificates(tpm, ca);
    CHECK(redone.issued == 1);
    CHECK(redone.kept == 1);
    check_certificate(tpm, EkPublic::Type::rsa2048, ek::kRsaCertIndex, dir + "/ek-ca.pem", tmp);
    // Killed after NV_DefineSpace, before any NV_Write: the index reads as never written.
    std::vector<uint8_t> response = testing::run(
        tpm, testing::Cmd(0x8002, 0x122).u32(0x4000000C).u32(ek::kEccCertIndex).password_session().done());
    REQUIRE(tpm_code(response) == 0);
    response = testing::run(tpm, testing::Cmd(0x8002, 0x12A).u32(0x4000000C).password_session().u16(0).u16(14)
                                     .u32(ek::kEccCertIndex).u16(0x000B).u32(ek::kCertIndexAttributes).u16(0).u16(500)
                                     .done());
    REQUIRE(tpm_code(response) == 0);
    CHECK(ek::read_nv(tpm, ek::kEccCertIndex).empty());
    redone = manufacture_ek_certificates(tpm, ca);
    CHECK(redone.issued == 1);
    check_certificate(tpm, EkPublic::Type::ecc_p256, ek::kEccCertIndex, dir + "/ek-ca.pem", tmp);
    // A user's CA (-tpm-ca) given later: both certificates are made again, by that CA.
    const EkCa user = EkCa::generate("user CA");
    publish_ca_certificate(tpm.state(), user);
    CHECK(manufacture_ek_certificates(tpm, user).issued == 2);
    for (auto [type, index] : kIndices) check_certificate(tpm, type, index, dir + "/ek-ca.pem", tmp);
}

TEST_CASE("EK certificates: a TPM resumed from a clean exit, platform auth set by firmware, gets another CA's") {
    // A directory that ran a guest and exited cleanly (its volatile state written), then met a
    // new CA: -tpm-ca, or a -restore of another directory's TPM (its certificates another CA's).
    TempDir tmp;
    const std::string dir = tmp.sub("st");
    {
        LibtpmsBackend tpm(dir, TpmVersion::v2_0);
        const EkCa ca = state_dir_ca(tpm.state());
        REQUIRE(manufacture_ek_certificates(tpm, ca).issued == 2);
        // The firmware's start (SeaBIOS tpm20_startup): power-on, TPM2_Startup(CLEAR), then
        // TPM2_HierarchyChangeAuth(TPM_RH_PLATFORM) to an authorization only it knows.
        REQUIRE(tpm.power_cycle());
        REQUIRE(tpm_code(testing::run(tpm, testing::Cmd(kTpm2TagNoSessions, 0x144).u16(0).done())) == 0);
        REQUIRE(tpm_code(testing::run(tpm, testing::Cmd(0x8002, 0x129).u32(0x4000000C).password_session()
                                               .u16(4).u32(0x5eab105a).done())) == 0);
        tpm.shutdown();  // a clean exit
    }
    REQUIRE(std::filesystem::exists(dir + "/tpm2-00.volatilestate"));
    const EkCa user = EkCa::generate("user CA");
    {
        LibtpmsBackend tpm(dir, TpmVersion::v2_0);
        publish_ca_certificate(tpm.state(), user);
        const EkManufactureResult made = manufacture_ek_certificates(tpm, user);
        CHECK(made.issued == 2);
        for (auto [type, index] : kIndices) check_certificate(tpm, type, index, dir + "/ek-ca.pem", tmp);
        CHECK_FALSE(std::filesystem::exists(dir + "/tpm2-00.volatilestate"));
        tpm.shutdown();
    }
    REQUIRE(std::filesystem::exists(dir + "/tpm2-00.volatilestate"));
    // Certificates already the CA's: kept, without a power-on (the resumed state stays until the
    // machine's own power-on).
    LibtpmsBackend again(dir, TpmVersion::v2_0);
    const EkManufactureResult kept = manufacture_ek_certificates(again, user);
    CHECK(kept.kept == 2);
    CHECK(std::filesystem::exists(dir + "/tpm2-00.volatilestate"));
}

TEST_CASE("EK CA of a state directory: a key whose certificate a kill prevented gets one") {
    TempDir tmp;
    const std::string dir = tmp.sub("st");
    LibtpmsBackend tpm(dir, TpmVersion::v2_0);
    const EkCa first = state_dir_ca(tpm.state());
    REQUIRE(std::filesystem::remove(dir + "/ek-ca.pem"));
    const EkCa second = state_dir_ca(tpm.state());
    CHECK(EVP_PKEY_eq(first.key(), second.key()) == 1);
    CHECK(std::filesystem::exists(dir + "/ek-ca.pem"));
    const EkCa third = state_dir_ca(tpm.state());
    CHECK(X509_cmp(second.certificate(), third.certificate()) == 0);
}

TEST_CASE("-tpm-ca: a missing, unreadable or mismatched CA is one line naming the file") {
    TempDir tmp;
    auto refused = [](const std::string& dir) {
        try {
            load_user_ca(dir);
        } catch (const EkCertificateError& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    const std::string ca_dir = tmp.sub("ca");
    CHECK(refused(ca_dir).starts_with("-tpm-ca: cannot open directory " + ca_dir));
    std::filesystem::create_directory(ca_dir);
    CHECK(refused(ca_dir) == "-tpm-ca: cannot open " + ca_dir + "/ca.pem: No such file or directory");
    const EkCa ca = EkCa::generate("user CA"), other = EkCa::generate("other");
    std::ofstream(ca_dir + "/ca.pem") << ca.certificate_pem();
    std::filesystem::create_symlink(ca_dir + "/ca.pem", ca_dir + "/ca.key");
    CHECK(refused(ca_dir) == "-tpm-ca: cannot open " + ca_dir + "/ca.key: it is a symbolic link");
    std::filesystem::remove(ca_dir + "/ca.key");
    std::ofstream(ca_dir + "/ca.key") << other.key_pem();
    CHECK(refused(ca_dir) == "-tpm-ca: " + ca_dir + "/ca.key is not the private key of " + ca_dir + "/ca.pem");
    std::ofstream(ca_dir + "/ca.key") << ca.key_pem();
    CHECK(refused(ca_dir + "/") == "accepted");
    std::filesystem::create_directory_symlink(ca_dir, tmp.sub("link"));
    CHECK(refused(tmp.sub("link")).starts_with("-tpm-ca: cannot open directory"));
}
