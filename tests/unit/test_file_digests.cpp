// vmm/file_digests: the -kernel-cache digest record, read back only for exactly the file version
// it was written for, and only written for files whose last change has settled.
#include <doctest/doctest.h>

#include <string>

#include "vmm/file_digests.hpp"

using namespace minivmm;

namespace {

const FileStamp kStamp{2049, 131077, 8247232, 1'796'604'995'547'746'658, 1'796'604'995'547'746'659};

std::vector<tcg_log::Digest> four() {
    return {{tcg_log::kAlgSha1, std::vector<uint8_t>(20, 0x11)}, {tcg_log::kAlgSha256, std::vector<uint8_t>(32, 0xA2)},
            {tcg_log::kAlgSha384, std::vector<uint8_t>(48, 0x03)}, {tcg_log::kAlgSha512, std::vector<uint8_t>(64, 0xFF)}};
}

}  // namespace

TEST_CASE("a record reads back as written, for its own file version only") {
    const std::string text = file_digests::format(kStamp, four());
    CHECK(text.starts_with("minivmm-digests 1\nstamp 2049 131077 8247232 1796604995547746658 1796604995547746659\nsha1 1111"));
    const auto back = file_digests::parse(text, kStamp);
    REQUIRE(back);
    REQUIRE(back->size() == 4);
    for (size_t i = 0; i < 4; ++i) {
        CHECK((*back)[i].algorithm == four()[i].algorithm);
        CHECK((*back)[i].value == four()[i].value);
    }
    // Any field of the stamp that differs: another file, or the file changed since.
    for (auto change : {+[](FileStamp& s) { ++s.dev; }, +[](FileStamp& s) { ++s.ino; }, +[](FileStamp& s) { --s.size; },
                        +[](FileStamp& s) { ++s.mtime_ns; }, +[](FileStamp& s) { ++s.ctime_ns; }}) {
        FileStamp other = kStamp;
        change(other);
        CHECK_FALSE(file_digests::parse(text, other));
    }
    CHECK(file_digests::record_name(kStamp) == "2049-131077.digests");
}

TEST_CASE("a record with only some banks holds those") {
    const std::vector<tcg_log::Digest> one{{tcg_log::kAlgSha256, std::vector<uint8_t>(32, 0x5A)}};
    const auto back = file_digests::parse(file_digests::format(kStamp, one), kStamp);
    REQUIRE(back);
    REQUIRE(back->size() == 1);
    CHECK(back->at(0).algorithm == tcg_log::kAlgSha256);
    // An algorithm minivmm does not compute (SM3) or a digest of the wrong size is not written.
    const std::vector<tcg_log::Digest> odd{{0x0012, std::vector<uint8_t>(32, 1)}, {tcg_log::kAlgSha1, std::vector<uint8_t>(32, 1)}};
    CHECK(file_digests::parse(file_digests::format(kStamp, odd), kStamp)->empty());
}

TEST_CASE("a malformed record is a miss, never a digest") {
    const std::string good = file_digests::format(kStamp, four());
    CHECK_FALSE(file_digests::parse("", kStamp));
    CHECK_FALSE(file_digests::parse(good.substr(0, good.size() - 1), kStamp));  // cut short: no final newline
    CHECK_FALSE(file_digests::parse(good.substr(0, good.size() - 10) + "\n", kStamp));  // a digest too short
    std::string upper = good;
    upper.replace(upper.find("a2a2"), 4, "A2A2");
    CHECK_FALSE(file_digests::parse(upper, kStamp));
    std::string twice = good + "sha1 " + std::string(40, '0') + "\n";
    CHECK_FALSE(file_digests::parse(twice, kStamp));
    std::string version = good;
    version.replace(0, 17, "minivmm-digests 2");
    CHECK_FALSE(file_digests::parse(version, kStamp));
    CHECK_FALSE(file_digests::parse(good + "sm3 " + std::string(64, '0') + "\n", kStamp));
    CHECK_FALSE(file_digests::parse(good + "\n", kStamp));
    std::string spaced = good;
    spaced.replace(spaced.find("2049"), 4, "+2049");
    CHECK_FALSE(file_digests::parse(spaced, kStamp));
    CHECK_FALSE(file_digests::parse("minivmm-digests 1\nstamp 2049 131077 8247232 1796604995547746658 1796604995547746659 7\n", kStamp));
}

TEST_CASE("only a file whose last change is 2 s old gets a record") {
    const int64_t second = 1'000'000'000;
    CHECK(file_digests::settled(kStamp, kStamp.ctime_ns + 2 * second));
    CHECK(file_digests::settled(kStamp, kStamp.ctime_ns + 100 * second));
    CHECK_FALSE(file_digests::settled(kStamp, kStamp.ctime_ns + 2 * second - 1));
    CHECK_FALSE(file_digests::settled(kStamp, kStamp.ctime_ns));
    CHECK_FALSE(file_digests::settled(kStamp, kStamp.ctime_ns - 5 * second));  // a clock set back
}
