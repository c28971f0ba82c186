#include "vmm/snapshot_preamble.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include <fmt/core.h>
#include <openssl/sha.h>

namespace minivmm {

namespace {

constexpr uint8_t kFormat = 1;
constexpr uint32_t kMaxArgs = 64;
constexpr size_t kMaxArg = 64 * 1024;  // -append can be long

void write_stamp(StateWriter& out, const std::optional<InputStamp>& stamp) {
    out.boolean(stamp.has_value());
    if (stamp) {
        out.u64(stamp->size);
        out.u64(static_cast<uint64_t>(stamp->mtime_ns));
    }
}

std::optional<InputStamp> read_stamp(StateReader& in) {
    bool present = false;
    in.boolean(present);
    if (!present) return std::nullopt;
    InputStamp s;
    uint64_t mtime = 0;
    in.u64(s.size);
    in.u64(mtime);
    s.mtime_ns = static_cast<int64_t>(mtime);
    return s;
}

std::string describe(const char* what, const std::optional<InputStamp>& saved, const std::optional<InputStamp>& now) {
    if (saved.has_value() != now.has_value())
        return fmt::format("the snapshot's machine {} a {}; this command line {}", saved ? "had" : "had no", what,
                           now ? "gives one" : "gives none");
    if (saved && !(*saved == *now))
        return fmt::format("the {} changed since the save (length {} then, {} now; modified {} then, {} now)", what,
                           saved->size, now->size, saved->mtime_ns, now->mtime_ns);
    return {};
}

}  // namespace

void write_snapshot_preamble(StateWriter& out, const SnapshotPreamble& p) {
    out.u8(kFormat);
    out.u32(static_cast<uint32_t>(p.machine_args.size()));
    for (const std::string& a : p.machine_args) out.bytes({reinterpret_cast<const uint8_t*>(a.data()), a.size()});
    out.boolean(p.bios_sha256.has_value());
    if (p.bios_sha256) out.bytes(*p.bios_sha256);
    write_stamp(out, p.kernel);
    write_stamp(out, p.initrd);
    out.u8(!p.tpm ? 0 : *p.tpm == TpmVersion::v1_2 ? 1 : 2);
    write_stamp(out, p.disk);
    out.boolean(p.disk_overlay);
}

SnapshotPreamble parse_snapshot_preamble(StateReader& in) {
    SnapshotPreamble p;
    uint8_t format = 0;
    uint32_t count = 0;
    in.u8(format);
    if (in.ok() && format != kFormat) throw SnapshotError(fmt::format("the snapshot's preamble has format {}", format));
    in.u32(count);
    if (!in.ok() || count > kMaxArgs) throw SnapshotError("the snapshot's machine options are malformed");
    for (uint32_t i = 0; i < count; ++i) {
        std::vector<uint8_t> arg;
        if (!in.bytes(arg, kMaxArg)) throw SnapshotError("the snapshot's machine options are malformed");
        std::string text(arg.begin(), arg.end());
        if (text.find('\0') != std::string::npos) throw SnapshotError("the snapshot's machine options are malformed");
        p.machine_args.push_back(std::move(text));
    }
    bool has_bios = false;
    in.boolean(has_bios);
    if (has_bios) {
        std::array<uint8_t, 32> digest{};
        in.bytes(digest);
        p.bios_sha256 = digest;
    }
    p.kernel = read_stamp(in);
    p.initrd = read_stamp(in);
    uint8_t tpm = 0;
    in.u8(tpm);
    if (tpm == 1) p.tpm = TpmVersion::v1_2;
    else if (tpm == 2) p.tpm = TpmVersion::v2_0;
    else if (tpm != 0) throw SnapshotError("the snapshot's TPM version is malformed");
    p.disk = read_stamp(in);
    in.boolean(p.disk_overlay);
    if (!in.ok()) throw SnapshotError("the snapshot's preamble is cut short");
    return p;
}

InputStamp input_stamp(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) throw SnapshotError(fmt::format("{}: {}", path, std::strerror(errno)));
    return {static_cast<uint64_t>(st.st_size), static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

std::array<uint8_t, 32> sha256_of(const std::vector<uint8_t>& bytes) {
    std::array<uint8_t, 32> digest{};
    SHA256(bytes.data(), bytes.size(), digest.data());
    return digest;
}

std::string compare_snapshot_inputs(const SnapshotPreamble& saved, const SnapshotPreamble& now) {
    if (saved.bios_sha256 != now.bios_sha256) return "the BIOS image is not the one the saved machine ran (SHA-256 differs)";
    if (std::string d = describe("-kernel file", saved.kernel, now.kernel); !d.empty()) return d;
    if (std::string d = describe("-initrd file", saved.initrd, now.initrd); !d.empty()) return d;
    if (saved.tpm != now.tpm) {
        auto name = [](const std::optional<TpmVersion>& v) {
            return !v ? std::string("no TPM") : *v == TpmVersion::v1_2 ? std::string("a TPM 1.2") : std::string("a TPM 2.0");
        };
        return fmt::format("the snapshot's machine had {}; this command line gives {}", name(saved.tpm), name(now.tpm));
    }
    if (saved.disk_overlay != now.disk_overlay) return "-snapshot differs from the saved machine's";
    return describe("disk image", saved.disk, now.disk);
}

}  // namespace minivmm
