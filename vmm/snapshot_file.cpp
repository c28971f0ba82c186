#include "vmm/snapshot_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/core.h>
#include <openssl/sha.h>

#include "devices/device_state.hpp"

namespace minivmm {

namespace {

constexpr char kMagic[16] = {'m', 'i', 'n', 'i', 'v', 'm', 'm', ' ', 's', 'n', 'a', 'p', 's', 'h', 'o', 't'};
constexpr size_t kMaxVersionLength = 64;

std::array<uint8_t, 32> sha256(std::span<const uint8_t> bytes) {
    std::array<uint8_t, 32> digest{};
    SHA256(bytes.data(), bytes.size(), digest.data());
    return digest;
}

bool all_zero(const uint8_t* p, size_t n) {
    // The first byte, then the rest against its neighbour: memcmp runs at memory speed.
    return n == 0 || (p[0] == 0 && std::memcmp(p, p + 1, n - 1) == 0);
}

void write_all(int fd, const uint8_t* data, size_t size, uint64_t offset, const char* what) {
    while (size > 0) {
        ssize_t n = ::pwrite(fd, data, size, static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw SnapshotError(fmt::format("writing the {}: {}", what, std::strerror(n < 0 ? errno : EIO)));
        data += n;
        size -= static_cast<size_t>(n);
        offset += static_cast<uint64_t>(n);
    }
}

uint64_t page_align(uint64_t v) { return (v + kSnapshotPage - 1) & ~uint64_t{kSnapshotPage - 1}; }

}  // namespace

std::vector<uint8_t> encode_snapshot_header(const SnapshotHeader& header) {
    StateWriter w;
    for (char c : kMagic) w.u8(static_cast<uint8_t>(c));
    w.u32(header.format);
    w.bytes({reinterpret_cast<const uint8_t*>(header.vmm_version.data()), header.vmm_version.size()});
    w.u64(header.state_offset);
    w.u64(header.state_size);
    w.bytes(header.state_sha256);
    w.u32(static_cast<uint32_t>(header.ram.size()));
    for (const SnapshotRamRegion& r : header.ram) {
        w.u64(r.gpa);
        w.u64(r.size);
        w.u64(r.file_offset);
    }
    std::vector<uint8_t> out = w.data();
    const auto digest = sha256(out);
    out.insert(out.end(), digest.begin(), digest.end());
    out.resize(kSnapshotHeaderSize, 0);
    return out;
}

SnapshotHeader parse_snapshot_header(std::span<const uint8_t> bytes) {
    if (bytes.size() != kSnapshotHeaderSize) throw SnapshotError("not a minivmm snapshot (shorter than its header)");
    StateReader r(bytes);
    for (char c : kMagic) {
        uint8_t b = 0;
        if (!r.u8(b) || b != static_cast<uint8_t>(c)) throw SnapshotError("not a minivmm snapshot (no magic)");
    }
    SnapshotHeader h;
    r.u32(h.format);
    if (r.ok() && h.format != kSnapshotFormat)
        throw SnapshotError(fmt::format("snapshot format {}, this minivmm reads format {}", h.format, kSnapshotFormat));
    std::vector<uint8_t> version;
    r.bytes(version, kMaxVersionLength);
    h.vmm_version.assign(version.begin(), version.end());
    r.u64(h.state_offset);
    r.u64(h.state_size);
    r.bytes(h.state_sha256);
    uint32_t count = 0;
    r.u32(count);
    if (!r.ok() || count > kSnapshotMaxRegions) throw SnapshotError("the snapshot's header is malformed");
    for (uint32_t i = 0; i < count; ++i) {
        SnapshotRamRegion region;
        r.u64(region.gpa);
        r.u64(region.size);
        r.u64(region.file_offset);
        h.ram.push_back(region);
    }
    if (!r.ok()) throw SnapshotError("the snapshot's header is malformed");
    // Its digest: over every byte before it; the rest of the page is zero.
    const size_t fields = r.position();
    if (bytes.size() - fields < 32) throw SnapshotError("the snapshot's header is malformed");
    const auto digest = sha256(bytes.first(fields));
    if (!std::equal(digest.begin(), digest.end(), bytes.begin() + static_cast<std::ptrdiff_t>(fields)))
        throw SnapshotError("the snapshot's header is damaged (its SHA-256 does not match)");
    if (!all_zero(bytes.data() + fields + 32, bytes.size() - fields - 32))
        throw SnapshotError("the snapshot's header is damaged (bytes after its digest)");
    // Regions: page-aligned, in guest-address order, not overlapping in the guest or in the file,
    // after the header; the state after the last region.
    uint64_t file_end = kSnapshotHeaderSize, gpa_end = 0;
    for (const SnapshotRamRegion& region : h.ram) {
        if (region.size == 0 || region.size % kSnapshotPage || region.gpa % kSnapshotPage ||
            region.file_offset % kSnapshotPage || region.file_offset < file_end || region.gpa < gpa_end ||
            region.size > UINT64_MAX - region.file_offset || region.size > UINT64_MAX - region.gpa)
            throw SnapshotError("the snapshot's RAM regions are malformed");
        file_end = region.file_offset + region.size;
        gpa_end = region.gpa + region.size;
    }
    if (h.state_offset < file_end || h.state_size > kSnapshotMaxState || h.state_size > UINT64_MAX - h.state_offset)
        throw SnapshotError("the snapshot's state is misplaced");
    return h;
}

void write_snapshot(int fd, std::span<const SnapshotRamSource> ram, std::span<const uint8_t> state) {
    if (ram.size() > kSnapshotMaxRegions || state.size() > kSnapshotMaxState)
        throw SnapshotError("the machine is too large for a snapshot");
    SnapshotHeader header;
    header.vmm_version = MINIVMM_VERSION;
    uint64_t at = kSnapshotHeaderSize;
    for (const SnapshotRamSource& source : ram) {
        if (source.bytes.size() % kSnapshotPage) throw SnapshotError("a RAM region is not whole pages");
        header.ram.push_back({source.gpa, source.bytes.size(), at});
        // Runs of non-zero pages, each one pwrite; zero pages stay holes.
        const uint8_t* base = source.bytes.data();
        const size_t pages = source.bytes.size() / kSnapshotPage;
        for (size_t page = 0; page < pages;) {
            if (all_zero(base + page * kSnapshotPage, kSnapshotPage)) {
                ++page;
                continue;
            }
            size_t end = page + 1;
            while (end < pages && !all_zero(base + end * kSnapshotPage, kSnapshotPage)) ++end;
            write_all(fd, base + page * kSnapshotPage, (end - page) * kSnapshotPage, at + page * kSnapshotPage, "guest RAM");
            page = end;
        }
        at += source.bytes.size();
    }
    header.state_offset = at;
    header.state_size = state.size();
    header.state_sha256 = sha256(state);
    write_all(fd, state.data(), state.size(), at, "machine state");
    // The file's length covers the last region's holes (the state may be empty in tests).
    if (::ftruncate(fd, static_cast<off_t>(page_align(at + state.size()))) != 0)
        throw SnapshotError(fmt::format("setting the snapshot's length: {}", std::strerror(errno)));
    const std::vector<uint8_t> head = encode_snapshot_header(header);
    write_all(fd, head.data(), head.size(), 0, "header");
    if (::fdatasync(fd) != 0) throw SnapshotError(fmt::format("flushing the snapshot: {}", std::strerror(errno)));
}

SnapshotFile SnapshotFile::open(const std::string& path) {
    SnapshotFile f;
    f.path_ = path;
    f.fd_ = UniqueFd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));  // a FIFO: no wait
    if (!f.fd_.valid()) throw SnapshotError(fmt::format("-restore {}: {}", path, std::strerror(errno)));
    struct stat st {};
    if (::fstat(f.fd_.get(), &st) != 0 || !S_ISREG(st.st_mode))
        throw SnapshotError(fmt::format("-restore {}: not a regular file", path));
    std::vector<uint8_t> head(kSnapshotHeaderSize);
    if (::pread(f.fd_.get(), head.data(), head.size(), 0) != static_cast<ssize_t>(head.size()))
        throw SnapshotError(fmt::format("-restore {}: not a minivmm snapshot (shorter than its header)", path));
    try {
        f.header_ = parse_snapshot_header(head);
    } catch (const SnapshotError& e) {
        throw SnapshotError(fmt::format("-restore {}: {}", path, e.what()));
    }
    const SnapshotHeader& h = f.header_;
    const auto size = static_cast<uint64_t>(st.st_size);
    if (h.state_offset > size || h.state_size > size - h.state_offset)
        throw SnapshotError(fmt::format("-restore {}: the file is cut short ({} bytes)", path, size));
    f.state_.resize(h.state_size);
    for (size_t done = 0; done < f.state_.size();) {
        ssize_t n = ::pread(f.fd_.get(), f.state_.data() + done, f.state_.size() - done,
                            static_cast<off_t>(h.state_offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw SnapshotError(fmt::format("-restore {}: reading its state: {}", path, n < 0 ? std::strerror(errno) : "cut short"));
        done += static_cast<size_t>(n);
    }
    if (sha256(f.state_) != h.state_sha256)
        throw SnapshotError(fmt::format("-restore {}: the machine state is damaged (its SHA-256 does not match)", path));
    return f;
}

}  // namespace minivmm
