// -runas: what give_state_dir_to() hands to the user (needs root to change owners).
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "vmm/host/privileges.hpp"
#include "vmm/tpm/tpm_state_dir.hpp"

using namespace minivmm;
namespace fs = std::filesystem;

namespace {

uid_t owner_of(const std::string& path) {
    struct stat st {};
    REQUIRE(::lstat(path.c_str(), &st) == 0);
    return st.st_uid;
}

}  // namespace

TEST_CASE("give_state_dir_to gives the directory and only minivmm's own files to the user") {
    if (::geteuid() != 0) {
        MESSAGE("not root: chown cannot be tested here");
        return;
    }
    char tmpl[] = "/tmp/mvprivileges-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    const std::string dir = std::string(tmpl) + "/tpm";
    { TpmStateDir state(dir); }  // marked, with .lock
    std::ofstream(dir + "/tpm2-00.permall") << "state";
    std::ofstream(dir + "/notes.txt") << "someone's";
    std::ofstream(std::string(tmpl) + "/victim") << "outside";
    fs::create_symlink(std::string(tmpl) + "/victim", dir + "/tpm2-00.volatilestate");

    const RunAsUser nobody{"nobody", 65534, 65534};
    give_state_dir_to(nobody, dir);
    CHECK(owner_of(dir) == 65534);
    CHECK(owner_of(dir + "/.lock") == 65534);
    CHECK(owner_of(dir + "/" + std::string(TpmStateDir::kMarkerName)) == 65534);
    CHECK(owner_of(dir + "/tpm2-00.permall") == 65534);
    CHECK(owner_of(dir + "/notes.txt") == 0);
    CHECK(owner_of(dir + "/tpm2-00.volatilestate") == 0);  // the link itself
    CHECK(owner_of(std::string(tmpl) + "/victim") == 0);   // nor what it points to
    fs::remove_all(tmpl);
}
