// TpmStateDir: the state file format, the directory lock, and crash safety of the atomic write
// (a child writing in a loop is SIGKILLed at random moments).
#include <doctest/doctest.h>

#include "temp_dir.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "vmm/tpm/tpm_state_dir.hpp"

using namespace minivmm;
using testing::TempDir;
namespace fs = std::filesystem;

namespace {

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7 + (i >> 8));
    return v;
}

using testing::slurp;
using testing::spit;

std::string open_error(const std::string& path) {
    try {
        TpmStateDir dir(path);
    } catch (const TpmStateError& e) {
        return e.what();
    }
    return {};
}

mode_t mode_of(const std::string& path) {
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_mode & 07777;
}

}  // namespace

TEST_CASE("state file format: CRC-32 and round trip") {
    const char* check = "123456789";
    CHECK(tpmstate::crc32(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(check), 9)) == 0xCBF43926u);
    CHECK(tpmstate::crc32({}) == 0);

    auto payload = pattern(1000, 3);
    auto file = tpmstate::encode_file(TpmVersion::v2_0, payload);
    REQUIRE(file.size() == tpmstate::kHeaderSize + payload.size());
    CHECK(std::string(file.begin(), file.begin() + 8) == "MVMTPMST");
    auto d = tpmstate::decode_file(file, TpmVersion::v2_0);
    REQUIRE(d.status == tpmstate::DecodeStatus::ok);
    CHECK(std::vector<uint8_t>(d.payload.begin(), d.payload.end()) == payload);

    auto empty = tpmstate::encode_file(TpmVersion::v1_2, {});
    CHECK(tpmstate::decode_file(empty, TpmVersion::v1_2).status == tpmstate::DecodeStatus::ok);
    CHECK(tpmstate::decode_file(empty, TpmVersion::v2_0).status == tpmstate::DecodeStatus::wrong_version);
    CHECK(tpmstate::decode_file(empty, TpmVersion::v2_0).version == TpmVersion::v1_2);
}

TEST_CASE("state file format: every corruption is detected") {
    auto payload = pattern(64, 9);
    const auto good = tpmstate::encode_file(TpmVersion::v2_0, payload);
    using S = tpmstate::DecodeStatus;

    SUBCASE("any flipped bit") {
        for (size_t i = 0; i < good.size(); ++i) {
            for (int bit : {0, 7}) {
                auto bad = good;
                bad[i] ^= static_cast<uint8_t>(1u << bit);
                CAPTURE(i);
                CHECK(tpmstate::decode_file(bad, TpmVersion::v2_0).status != S::ok);
            }
        }
    }
    SUBCASE("every truncation and an extension") {
        for (size_t n = 0; n < good.size(); ++n) {
            CAPTURE(n);
            auto st = tpmstate::decode_file(std::span<const uint8_t>(good.data(), n), TpmVersion::v2_0).status;
            CHECK((n < 8 ? st == S::bad_magic : st == S::truncated));
        }
        auto longer = good;
        longer.push_back(0);
        CHECK(tpmstate::decode_file(longer, TpmVersion::v2_0).status == S::too_long);
    }
    SUBCASE("specific fields") {
        auto bad = good;
        bad[0] = 'X';
        CHECK(tpmstate::decode_file(bad, TpmVersion::v2_0).status == S::bad_magic);
        bad = good;
        bad[8] = 2;  // format version 2
        CHECK(tpmstate::decode_file(bad, TpmVersion::v2_0).status == S::unsupported_format);
        bad = good;
        bad[20] ^= 1;  // the checksum itself
        CHECK(tpmstate::decode_file(bad, TpmVersion::v2_0).status == S::checksum_mismatch);
        bad = good;
        bad[30] ^= 0x40;  // payload
        CHECK(tpmstate::decode_file(bad, TpmVersion::v2_0).status == S::checksum_mismatch);
        CHECK(tpmstate::decode_file(good, TpmVersion::v1_2).status == S::wrong_version);
    }
}

TEST_CASE("state directory: creation, modes, read/write/remove") {
    TempDir tmp;
    std::string path = tmp.sub("tpm");
    ::umask(022);
    TpmStateDir dir(path);
    CHECK(dir.path() == path);
    CHECK(dir.file_path("x") == path + "/x");
    CHECK(fs::is_directory(path));
    CHECK(mode_of(path) == 0700);
    CHECK(mode_of(tmp.sub("tpm/.lock")) == 0600);
    auto lock = slurp(tmp.sub("tpm/.lock"));
    CHECK(std::string(lock.begin(), lock.end()) == std::to_string(::getpid()) + "\n");

    auto r = dir.read("tpm2-00.permall", TpmVersion::v2_0);
    CHECK(r.status == TpmStateDir::ReadResult::Status::missing);
    CHECK_FALSE(dir.exists("tpm2-00.permall"));

    auto a = pattern(5000, 1), b = pattern(300, 2);
    CHECK(dir.write("tpm2-00.permall", TpmVersion::v2_0, a) == "");
    CHECK(mode_of(tmp.sub("tpm/tpm2-00.permall")) == 0600);
    CHECK(dir.exists("tpm2-00.permall"));
    r = dir.read("tpm2-00.permall", TpmVersion::v2_0);
    REQUIRE(r.status == TpmStateDir::ReadResult::Status::ok);
    CHECK(r.payload == a);
    CHECK(slurp(tmp.sub("tpm/tpm2-00.permall")) == tpmstate::encode_file(TpmVersion::v2_0, a));
    CHECK(dir.write("tpm2-00.permall", TpmVersion::v2_0, b) == "");  // replace with a shorter one
    CHECK(dir.read("tpm2-00.permall", TpmVersion::v2_0).payload == b);
    CHECK_FALSE(fs::exists(tmp.sub("tpm/tpm2-00.permall.tmp")));

    CHECK(dir.remove("tpm2-00.permall") == "");
    CHECK_FALSE(dir.exists("tpm2-00.permall"));
    CHECK(dir.remove("tpm2-00.permall") == "");  // missing is fine

    // Names come from libtpms, but nothing may escape the directory.
    CHECK(dir.write("../escape", TpmVersion::v2_0, a).find("invalid") != std::string::npos);
    CHECK(dir.write(".lock", TpmVersion::v2_0, a).find("invalid") != std::string::npos);
    CHECK(dir.read("a/b", TpmVersion::v2_0).status == TpmStateDir::ReadResult::Status::error);
    CHECK_FALSE(fs::exists(tmp.sub("escape")));
}

TEST_CASE("state directory: bad paths") {
    TempDir tmp;
    CHECK(open_error("").find("empty") != std::string::npos);
    CHECK(open_error(tmp.sub("missing/parent")) ==
          "cannot create TPM state directory " + tmp.sub("missing/parent") + ": No such file or directory");
    spit(tmp.sub("file"), {1, 2, 3});
    CHECK(open_error(tmp.sub("file")) == "TPM state directory " + tmp.sub("file") + " is not a directory");
    // An existing directory is used as it is.
    fs::create_directory(tmp.sub("existing"));
    CHECK(open_error(tmp.sub("existing")) == "");
}

TEST_CASE("state directory: corrupt, truncated and other-version files are reported with the file name") {
    TempDir tmp;
    TpmStateDir dir(tmp.path);
    std::string file = tmp.sub("tpm2-00.permall");
    auto payload = pattern(2048, 5);
    REQUIRE(dir.write("tpm2-00.permall", TpmVersion::v2_0, payload) == "");
    auto good = slurp(file);

    auto flipped = good;
    flipped[1000] ^= 0x01;
    spit(file, flipped);
    auto r = dir.read("tpm2-00.permall", TpmVersion::v2_0);
    CHECK(r.status == TpmStateDir::ReadResult::Status::error);
    CHECK(r.error == "TPM state file " + file + " is corrupt (checksum mismatch); move it away to start a fresh TPM");

    spit(file, std::vector<uint8_t>(good.begin(), good.begin() + 1500));
    r = dir.read("tpm2-00.permall", TpmVersion::v2_0);
    CHECK(r.error == "TPM state file " + file + " is corrupt (truncated: 1500 bytes); move it away to start a fresh TPM");

    spit(file, {});
    CHECK(dir.read("tpm2-00.permall", TpmVersion::v2_0).error.find("is corrupt (not a minivmm TPM state file)") !=
          std::string::npos);

    spit(file, tpmstate::encode_file(TpmVersion::v1_2, payload));
    r = dir.read("tpm2-00.permall", TpmVersion::v2_0);
    CHECK(r.error == "TPM state file " + file +
                         " holds TPM 1.2 state, not TPM 2.0; use -tpm-version 1.2 or another -tpm-state directory");

    ::chmod(file.c_str(), 0);
    if (::geteuid() != 0) CHECK(dir.read("tpm2-00.permall", TpmVersion::v2_0).error.find("cannot read") == 0);
}

TEST_CASE("state directory lock: in-process and from another process") {
    TempDir tmp;
    std::string path = tmp.sub("locked");
    std::string in_use = "TPM state directory " + path + " is in use by another minivmm (pid ";
    {
        TpmStateDir first(path);
        // A second open file description of the same lock file cannot take the flock.
        CHECK(open_error(path) == in_use + std::to_string(::getpid()) + ")");
        UniqueFd raw(::open((path + "/.lock").c_str(), O_RDWR | O_CLOEXEC));
        CHECK(::flock(raw.get(), LOCK_EX | LOCK_NB) != 0);
    }
    CHECK(open_error(path) == "");  // released with the object

    // Another process holds it: the message names that process.
    int to_parent[2], to_child[2];
    REQUIRE(::pipe(to_parent) == 0);
    REQUIRE(::pipe(to_child) == 0);
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        try {
            TpmStateDir held(path);
            char c = 'y';
            (void)!::write(to_parent[1], &c, 1);
            (void)!::read(to_child[0], &c, 1);  // until the parent is done
        } catch (...) {
            char c = 'n';
            (void)!::write(to_parent[1], &c, 1);
        }
        ::_exit(0);
    }
    char c = 0;
    REQUIRE(::read(to_parent[0], &c, 1) == 1);
    REQUIRE(c == 'y');
    CHECK(open_error(path) == in_use + std::to_string(child) + ")");
    // A killed holder releases the lock (the kernel drops the flock with the last fd).
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    CHECK(open_error(path) == "");
    for (int fd : {to_parent[0], to_parent[1], to_child[0], to_child[1]}) ::close(fd);
}

TEST_CASE("state directory: temporary files of an interrupted write are removed at open") {
    TempDir tmp;
    {
        TpmStateDir dir(tmp.path);
        REQUIRE(dir.write("tpm2-00.permall", TpmVersion::v2_0, pattern(100, 1)) == "");
    }
    spit(tmp.sub("tpm2-00.permall.tmp"), pattern(50, 2));  // a half-written replacement
    TpmStateDir dir(tmp.path);
    CHECK_FALSE(fs::exists(tmp.sub("tpm2-00.permall.tmp")));
    CHECK(dir.read("tpm2-00.permall", TpmVersion::v2_0).payload == pattern(100, 1));
}

// A child replaces the file in a tight loop with alternating contents and is SIGKILLed at a
// random moment: the file must always be one complete version, and the directory must open
// (lock released, temporaries cleaned) and read without error.
TEST_CASE("state directory: SIGKILL during writes never leaves a torn file") {
    TempDir tmp;
    const std::string name = "tpm2-00.permall";
    const std::vector<std::vector<uint8_t>> contents = {pattern(3000, 1), pattern(70000, 2), pattern(9000, 3),
                                                        pattern(131072, 4)};
    {
        TpmStateDir dir(tmp.path);
        REQUIRE(dir.write(name, TpmVersion::v2_0, contents[0]) == "");
    }
    std::mt19937 rng(12345);
    std::uniform_int_distribution<int> delay_us(0, 20000);
    int seen[4] = {};
    int temporaries_left = 0;
    for (int iteration = 0; iteration < 50; ++iteration) {
        pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) {
            try {
                TpmStateDir dir(tmp.path);
                for (size_t i = 1;; ++i)
                    if (!dir.write(name, TpmVersion::v2_0, contents[i % contents.size()]).empty()) ::_exit(2);
            } catch (...) {
                ::_exit(3);
            }
        }
        ::usleep(static_cast<useconds_t>(delay_us(rng)));
        ::kill(child, SIGKILL);
        int status = 0;
        REQUIRE(::waitpid(child, &status, 0) == child);
        REQUIRE(WIFSIGNALED(status));  // it was still writing, not failing
        if (fs::exists(tmp.sub(name + ".tmp"))) ++temporaries_left;

        auto on_disk = slurp(tmp.sub(name));
        int which = -1;
        for (size_t k = 0; k < contents.size(); ++k)
            if (on_disk == tpmstate::encode_file(TpmVersion::v2_0, contents[k])) which = static_cast<int>(k);
        CAPTURE(iteration);
        CAPTURE(on_disk.size());
        REQUIRE(which >= 0);
        ++seen[which];

        TpmStateDir dir(tmp.path);
        auto r = dir.read(name, TpmVersion::v2_0);
        REQUIRE(r.status == TpmStateDir::ReadResult::Status::ok);
        CHECK(r.payload == contents[static_cast<size_t>(which)]);
        CHECK_FALSE(fs::exists(tmp.sub(name + ".tmp")));
    }
    MESSAGE("outcomes: " << seen[0] << " old, " << seen[1] << "/" << seen[2] << "/" << seen[3]
                         << " new; temporaries left by the kill: " << temporaries_left);
    CHECK(seen[1] + seen[2] + seen[3] > 0);  // the kills did land after writes
}

TEST_CASE("state directory lock: a symbolic link or a FIFO as .lock is refused, its target untouched") {
    TempDir tmp;
    spit(tmp.sub("victim"), pattern(64, 7));
    fs::create_directory(tmp.sub("linked"));
    fs::create_symlink(tmp.sub("victim"), tmp.sub("linked/.lock"));
    std::string err = open_error(tmp.sub("linked"));
    CHECK(err == "cannot create the lock file " + tmp.sub("linked/.lock") + " of TPM state directory " +
                     tmp.sub("linked") + ": it is a symbolic link");
    CHECK(slurp(tmp.sub("victim")) == pattern(64, 7));

    fs::create_directory(tmp.sub("fifo"));
    REQUIRE(::mkfifo(tmp.sub("fifo/.lock").c_str(), 0600) == 0);
    CHECK(open_error(tmp.sub("fifo")).find("not a regular file") != std::string::npos);
}

TEST_CASE("state directory: only minivmm's own directory, and only its own files in it") {
    TempDir tmp;
    const std::string marker = std::string(TpmStateDir::kMarkerName);

    SUBCASE("a new directory is marked") {
        { TpmStateDir dir(tmp.sub("new")); }
        CHECK(mode_of(tmp.sub("new/" + marker)) == 0600);
    }
    SUBCASE("someone's non-empty directory is refused and left as it was") {
        fs::create_directory(tmp.sub("home"));
        spit(tmp.sub("home/notes.txt"), pattern(10, 1));
        spit(tmp.sub("home/work.tmp"), pattern(10, 2));
        const std::string refused = "TPM state directory " + tmp.sub("home") + " is not empty and was not made by minivmm";
        CHECK(open_error(tmp.sub("home")).find(refused) == 0);
        CHECK_THROWS_WITH_AS(TpmStateDir::inspect(tmp.sub("home")), doctest::Contains(refused.c_str()), TpmStateError);
        CHECK(slurp(tmp.sub("home/notes.txt")) == pattern(10, 1));
        CHECK(slurp(tmp.sub("home/work.tmp")) == pattern(10, 2));
        CHECK(std::distance(fs::directory_iterator(tmp.sub("home")), fs::directory_iterator{}) == 2);  // no .lock, no marker
    }
    SUBCASE("a directory of an older minivmm (only our names, no marker) is accepted and marked") {
        fs::create_directory(tmp.sub("old"));
        spit(tmp.sub("old/tpm2-00.permall"), tpmstate::encode_file(TpmVersion::v2_0, pattern(100, 3)));
        spit(tmp.sub("old/.lock"), {'1', '\n'});
        TpmStateDir dir(tmp.sub("old"));
        CHECK(fs::is_regular_file(tmp.sub("old/" + marker)));
        CHECK(dir.read("tpm2-00.permall", TpmVersion::v2_0).payload == pattern(100, 3));
    }
    SUBCASE("in a marked directory only our own temporaries are removed") {
        { TpmStateDir dir(tmp.sub("mine")); }
        spit(tmp.sub("mine/tpm2-00.permall.tmp"), pattern(10, 4));
        spit(tmp.sub("mine/notes.tmp"), pattern(10, 5));
        spit(tmp.sub("mine/notes.txt"), pattern(10, 6));
        TpmStateDir dir(tmp.sub("mine"));
        CHECK_FALSE(fs::exists(tmp.sub("mine/tpm2-00.permall.tmp")));
        CHECK(slurp(tmp.sub("mine/notes.tmp")) == pattern(10, 5));
        CHECK(slurp(tmp.sub("mine/notes.txt")) == pattern(10, 6));
        // Names that are not state names are refused whatever the caller asks.
        CHECK(dir.remove("notes.txt").find("invalid") != std::string::npos);
        CHECK(dir.write("notes.txt", TpmVersion::v2_0, pattern(1, 1)).find("invalid") != std::string::npos);
        CHECK(slurp(tmp.sub("mine/notes.txt")) == pattern(10, 6));
    }
    SUBCASE("a symbolic link to a directory is refused, also with a trailing slash") {
        { TpmStateDir dir(tmp.sub("real")); }
        fs::create_directory_symlink(tmp.sub("real"), tmp.sub("link"));
        const std::string expected = "TPM state directory " + tmp.sub("link") + " is a symbolic link; give the directory itself";
        CHECK(open_error(tmp.sub("link")) == expected);
        CHECK(open_error(tmp.sub("link") + "/").find("is a symbolic link") != std::string::npos);
        CHECK_THROWS_WITH_AS(TpmStateDir::inspect(tmp.sub("link")), expected.c_str(), TpmStateError);
        fs::create_directory_symlink(tmp.sub("nowhere"), tmp.sub("dangling"));  // not created through the link
        CHECK((open_error(tmp.sub("dangling")).find("is a symbolic link") != std::string::npos && !fs::exists(tmp.sub("nowhere"))));
    }
    SUBCASE("inspect creates nothing") {
        CHECK((!TpmStateDir::inspect(tmp.sub("later")).has_value() && !fs::exists(tmp.sub("later"))));
        CHECK_THROWS_WITH_AS(TpmStateDir::inspect(tmp.sub("missing/parent")),
                             ("cannot create TPM state directory " + tmp.sub("missing/parent") + ": No such file or directory").c_str(),
                             TpmStateError);
        fs::create_directory(tmp.sub("empty"));
        CHECK(TpmStateDir::inspect(tmp.sub("empty")).has_value());
        CHECK(fs::is_empty(tmp.sub("empty")));
    }
}
