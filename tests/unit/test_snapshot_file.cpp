// The snapshot file (vmm/snapshot_file.hpp) and its preamble (vmm/snapshot_preamble.hpp): what is
// written reads back, holes stay holes, RAM maps private, and every kind of damage is refused.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "temp_dir.hpp"
#include "vmm/base/memory_map.hpp"
#include "vmm/base/unique_fd.hpp"
#include "vmm/cli.hpp"
#include "vmm/snapshot_file.hpp"
#include "vmm/snapshot_preamble.hpp"

using namespace minivmm;
using minivmm::testing::TempDir;

namespace {

SnapshotHeader sample_header() {
    SnapshotHeader h;
    h.vmm_version = "9.9.9";
    h.ram = {{0, 8 * kSnapshotPage, kSnapshotHeaderSize}, {1ull << 32, 4 * kSnapshotPage, kSnapshotHeaderSize + 8 * kSnapshotPage}};
    h.state_offset = kSnapshotHeaderSize + 12 * kSnapshotPage;
    h.state_size = 100;
    h.state_sha256[3] = 7;
    return h;
}

void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    REQUIRE(fd.valid());
    REQUIRE(::write(fd.get(), bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
}

// A snapshot of 16 pages of "RAM" (pages 1 and 9 written, the rest zero) and a 3000-byte state.
std::string make_snapshot(const TempDir& dir, std::vector<uint8_t>& ram, std::vector<uint8_t>& state) {
    ram.assign(16 * kSnapshotPage, 0);
    ram[kSnapshotPage + 5] = 0xAA;
    ram[9 * kSnapshotPage + kSnapshotPage - 1] = 0x55;
    state.resize(3000);
    for (size_t i = 0; i < state.size(); ++i) state[i] = static_cast<uint8_t>(i * 7);
    const std::string path = dir.sub("s.snap");
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    REQUIRE(fd.valid());
    const SnapshotRamSource sources[] = {{0, ram}};
    write_snapshot(fd.get(), sources, state);
    return path;
}

}  // namespace

TEST_CASE("snapshot header: round trip") {
    const SnapshotHeader h = sample_header();
    const std::vector<uint8_t> bytes = encode_snapshot_header(h);
    REQUIRE(bytes.size() == kSnapshotHeaderSize);
    const SnapshotHeader back = parse_snapshot_header(bytes);
    CHECK(back.vmm_version == "9.9.9");
    CHECK(back.state_offset == h.state_offset);
    CHECK(back.state_size == 100);
    CHECK(back.state_sha256 == h.state_sha256);
    REQUIRE(back.ram.size() == 2);
    CHECK(back.ram[1].gpa == 1ull << 32);
    CHECK(back.ram[1].file_offset == h.ram[1].file_offset);
}

TEST_CASE("snapshot header: damage and impossible layouts are refused") {
    const std::vector<uint8_t> good = encode_snapshot_header(sample_header());
    for (size_t at : {size_t{0}, size_t{17}, size_t{30}, size_t{60}, size_t{200}, kSnapshotHeaderSize - 1}) {
        std::vector<uint8_t> bad = good;
        bad[at] ^= 1;
        CAPTURE(at);
        CHECK_THROWS_AS(parse_snapshot_header(bad), SnapshotError);
    }
    CHECK_THROWS_AS(parse_snapshot_header(std::span(good).first(100)), SnapshotError);
    auto refused = [](SnapshotHeader h) { CHECK_THROWS_AS(parse_snapshot_header(encode_snapshot_header(h)), SnapshotError); };
    SnapshotHeader h = sample_header();
    h.format = 2;
    refused(h);
    h = sample_header();
    h.ram[0].size = 100;  // not whole pages
    refused(h);
    h = sample_header();
    h.ram[1].file_offset = kSnapshotHeaderSize;  // overlaps region 0 in the file
    refused(h);
    h = sample_header();
    h.ram[1].gpa = 0;  // overlaps region 0 in the guest
    refused(h);
    h = sample_header();
    h.ram[0].file_offset = 0;  // over the header
    refused(h);
    h = sample_header();
    h.state_offset = kSnapshotHeaderSize;  // inside the RAM
    refused(h);
    h = sample_header();
    h.state_size = kSnapshotMaxState + 1;
    refused(h);
    h = sample_header();
    h.ram[1].size = ~uint64_t{0} & ~uint64_t{kSnapshotPage - 1};  // wraps
    refused(h);
}

TEST_CASE("snapshot file: written, opened, RAM sparse and mapped private") {
    TempDir dir;
    std::vector<uint8_t> ram, state;
    const std::string path = make_snapshot(dir, ram, state);
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK(st.st_mode % 01000 == 0600);
    // Two RAM pages, the header and the state: the 14 zero pages are holes.
    CHECK(static_cast<uint64_t>(st.st_blocks) * 512 <= 8 * kSnapshotPage);
    SnapshotFile f = SnapshotFile::open(path);
    CHECK(f.header().vmm_version == MINIVMM_VERSION);
    CHECK(f.state() == state);
    REQUIRE(f.header().ram.size() == 1);
    Mapping m = Mapping::private_file(f.fd(), f.header().ram[0].size, f.header().ram[0].file_offset);
    CHECK(std::memcmp(m.data(), ram.data(), ram.size()) == 0);
    m.data()[0] = 1;  // private: the file keeps its zero
    SnapshotFile again = SnapshotFile::open(path);
    Mapping m2 = Mapping::private_file(again.fd(), again.header().ram[0].size, again.header().ram[0].file_offset);
    CHECK(m2.data()[0] == 0);
}

TEST_CASE("snapshot file: cut short, damaged state, a link, a directory: refused") {
    TempDir dir;
    std::vector<uint8_t> ram, state;
    const std::string path = make_snapshot(dir, ram, state);
    const std::vector<uint8_t> good = minivmm::testing::slurp(path);
    const SnapshotHeader h = parse_snapshot_header(std::span(good).first(kSnapshotHeaderSize));
    const std::string bad = dir.sub("bad.snap");
    write_file(bad, std::vector<uint8_t>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(h.state_offset + 10)));
    CHECK_THROWS_AS(SnapshotFile::open(bad), SnapshotError);
    std::vector<uint8_t> flipped = good;
    flipped[h.state_offset + 1000] ^= 0x80;
    write_file(bad, flipped);
    CHECK_THROWS_WITH_AS(SnapshotFile::open(bad), doctest::Contains("damaged"), SnapshotError);
    write_file(bad, std::vector<uint8_t>(100, 0));
    CHECK_THROWS_AS(SnapshotFile::open(bad), SnapshotError);
    REQUIRE(::symlink(path.c_str(), dir.sub("link.snap").c_str()) == 0);
    CHECK_THROWS_AS(SnapshotFile::open(dir.sub("link.snap")), SnapshotError);
    CHECK_THROWS_AS(SnapshotFile::open(dir.path.string()), SnapshotError);
    CHECK_THROWS_AS(SnapshotFile::open(dir.sub("missing")), SnapshotError);
}

TEST_CASE("snapshot preamble: round trip and comparison") {
    SnapshotPreamble p;
    p.machine_args = {"-m", "512M", "-append", "console=ttyS0 quiet"};
    p.bios_sha256 = std::array<uint8_t, 32>{1, 2, 3};
    p.kernel = InputStamp{100, 5};
    p.tpm = TpmVersion::v1_2;
    p.disk = InputStamp{1 << 20, 77};
    p.disk_overlay = true;
    StateWriter w;
    write_snapshot_preamble(w, p);
    w.u8(42);  // what follows (the machine's state)
    StateReader r(w.data());
    const SnapshotPreamble back = parse_snapshot_preamble(r);
    CHECK(back.machine_args == p.machine_args);
    CHECK(back.bios_sha256 == p.bios_sha256);
    CHECK(back.kernel == p.kernel);
    CHECK(!back.initrd);
    CHECK(back.tpm == TpmVersion::v1_2);
    CHECK(back.disk == p.disk);
    CHECK(back.disk_overlay);
    CHECK(r.position() == w.data().size() - 1);
    CHECK(compare_snapshot_inputs(p, back).empty());
    SnapshotPreamble other = back;
    other.disk->mtime_ns = 78;
    CHECK(compare_snapshot_inputs(p, other).find("disk image changed") != std::string::npos);
    other = back;
    other.tpm = std::nullopt;
    CHECK(compare_snapshot_inputs(p, other).find("no TPM") != std::string::npos);
    other = back;
    other.bios_sha256->at(0) = 9;
    CHECK(compare_snapshot_inputs(p, other).find("BIOS") != std::string::npos);
    other = back;
    other.disk = std::nullopt;
    CHECK(!compare_snapshot_inputs(p, other).empty());
    // Cut anywhere: refused.
    for (size_t n = 0; n + 1 < w.data().size(); ++n) {
        StateReader cut(std::span(w.data()).first(n));
        CHECK_THROWS_AS(parse_snapshot_preamble(cut), SnapshotError);
    }
}

TEST_CASE("machine_arguments: what parse_cli gives back, and -restore's rules") {
    const Config c = parse_cli({"-m", "1G", "-smp", "2", "-bios", "none", "-kernel", "k", "-initrd", "i", "-append", "a b",
                                "-kernel-entry", "pvh", "-no-reboot", "-snapshot", "-tpm-state", "d", "-tpm-interface", "crb",
                                "-tpm-ppi", "off", "disk"})
                         .config;
    std::vector<std::string> args = machine_arguments(c);
    args.insert(args.end(), {"-tpm-state", "d", "disk"});
    const Config back = parse_cli(args).config;
    CHECK(back.ram_bytes == c.ram_bytes);
    CHECK(back.cpus == 2);
    CHECK(!back.firmware);
    CHECK(back.kernel == c.kernel);
    CHECK(back.initrd == c.initrd);
    CHECK(back.append == "a b");
    CHECK(back.kernel_entry == Config::KernelEntry::pvh);
    CHECK(back.no_reboot);
    CHECK(back.snapshot);
    CHECK(back.tpm_interface == TpmInterface::crb);
    CHECK(!back.tpm_ppi);
    CHECK(parse_cli({"-restore", "f", "-tpm-state", "d"}).config.restore == "f");
    CHECK_THROWS(parse_cli({"-restore", "f", "-m", "1G"}));
    CHECK_THROWS(parse_cli({"-restore", "f", "--smp", "2"}));
    CHECK_THROWS(parse_cli({"-restore-clone", "disk"}));
    CHECK_THROWS(parse_cli({"-control", "", "disk"}));
    CHECK_THROWS(parse_cli({"-control", std::string(200, 'x'), "disk"}));
}
