#include "vmm/file_digests.hpp"

#include <fmt/core.h>

namespace minivmm::file_digests {

namespace {

constexpr std::string_view kHeader = "minivmm-digests 1";

struct Algorithm {
    uint16_t id;
    std::string_view name;
    size_t size;
};
constexpr Algorithm kAlgorithms[] = {{tcg_log::kAlgSha1, "sha1", 20},
                                     {tcg_log::kAlgSha256, "sha256", 32},
                                     {tcg_log::kAlgSha384, "sha384", 48},
                                     {tcg_log::kAlgSha512, "sha512", 64}};

const Algorithm* by_id(uint16_t id) noexcept {
    for (const Algorithm& a : kAlgorithms)
        if (a.id == id) return &a;
    return nullptr;
}

const Algorithm* by_name(std::string_view name) noexcept {
    for (const Algorithm& a : kAlgorithms)
        if (a.name == name) return &a;
    return nullptr;
}

// The next line of `text` (without its '\n'), or nullopt when no complete line is left.
std::optional<std::string_view> next_line(std::string_view& text) noexcept {
    const size_t end = text.find('\n');
    if (end == std::string_view::npos) return std::nullopt;
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end + 1);
    return line;
}

std::string stamp_line(const FileStamp& s) {
    return fmt::format("stamp {} {} {} {} {}", s.dev, s.ino, s.size, s.mtime_ns, s.ctime_ns);
}

std::optional<std::vector<uint8_t>> lower_hex(std::string_view text, size_t bytes) noexcept {
    if (text.size() != bytes * 2) return std::nullopt;
    std::vector<uint8_t> out(bytes);
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        const int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0) return std::nullopt;
        out[i / 2] = static_cast<uint8_t>(out[i / 2] << 4 | v);
    }
    return out;
}

}  // namespace

std::string format(const FileStamp& s, std::span<const tcg_log::Digest> digests) {
    std::string out = fmt::format("{}\n{}\n", kHeader, stamp_line(s));
    for (const tcg_log::Digest& d : digests)
        if (const Algorithm* a = by_id(d.algorithm); a && d.value.size() == a->size) {
            out += a->name;
            out += ' ';
            for (uint8_t b : d.value) out += fmt::format("{:02x}", b);
            out += '\n';
        }
    return out;
}

std::optional<std::vector<tcg_log::Digest>> parse(std::string_view text, const FileStamp& stamp) noexcept {
    try {
        if (next_line(text) != kHeader) return std::nullopt;
        // The stamp exactly as format() spells it for this file: one spelling, nothing to parse.
        std::optional<std::string_view> line = next_line(text);
        if (line != stamp_line(stamp)) return std::nullopt;
        std::vector<tcg_log::Digest> out;
        while (!text.empty()) {
            line = next_line(text);
            if (!line) return std::nullopt;  // a last line without its newline: cut short
            const size_t space = line->find(' ');
            const Algorithm* a = space == std::string_view::npos ? nullptr : by_name(line->substr(0, space));
            if (!a) return std::nullopt;
            for (const tcg_log::Digest& d : out)
                if (d.algorithm == a->id) return std::nullopt;
            std::optional<std::vector<uint8_t>> value = lower_hex(line->substr(space + 1), a->size);
            if (!value) return std::nullopt;
            out.push_back({a->id, std::move(*value)});
        }
        return out;
    } catch (...) {  // std::bad_alloc: the record is then only a cache miss
        return std::nullopt;
    }
}

std::string record_name(const FileStamp& s) { return fmt::format("{}-{}.digests", s.dev, s.ino); }

bool settled(const FileStamp& s, int64_t now_ns) noexcept {
    return s.ctime_ns <= now_ns - kSettledSeconds * 1'000'000'000ll;
}

}  // namespace minivmm::file_digests
