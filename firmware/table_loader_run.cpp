#include "firmware/table_loader_run.hpp"

#include <fmt/core.h>

#include "firmware/table_loader.hpp"
#include "vmm/base/bytes.hpp"

namespace minivmm {

namespace {

// Command numbers and field offsets (QEMU hw/acpi/bios-linker-loader.c BiosLinkerLoaderEntry).
constexpr uint32_t kAllocate = 1, kAddPointer = 2, kAddChecksum = 3, kWritePointer = 4;

struct Copy {
    uint64_t address;
    std::vector<uint8_t> bytes;
};

class Runner {
public:
    Runner(const std::map<std::string, std::vector<uint8_t>>& files, const LoaderZones& zones)
        : files_(files), zones_(zones), next_high_(zones.high_base), next_fseg_(zones.fseg_base) {}

    std::string command(std::span<const uint8_t> e) {
        const uint32_t code = static_cast<uint32_t>(load_le(e.subspan(0, 4)));
        std::string a, b;
        switch (code) {
        case kAllocate:
            if (!name(e.subspan(4), a)) return "ALLOCATE: file name not NUL-terminated";
            return allocate(a, static_cast<uint32_t>(load_le(e.subspan(60, 4))), e[64]);
        case kAddPointer: {
            if (!name(e.subspan(4), a) || !name(e.subspan(60), b)) return "ADD_POINTER: file name not NUL-terminated";
            Copy* dest = find(a);
            const Copy* src = find(b);
            const uint64_t offset = load_le(e.subspan(116, 4)), size = e[120];
            if (!dest || !src) return fmt::format("ADD_POINTER between {} and {}: not allocated", a, b);
            if ((size != 1 && size != 2 && size != 4 && size != 8) || offset > dest->bytes.size() ||
                size > dest->bytes.size() - offset)
                return fmt::format("ADD_POINTER into {}: field {}+{} outside the file", a, offset, size);
            auto field = std::span(dest->bytes).subspan(offset, size);
            store_le(field, load_le(field) + src->address);
            return {};
        }
        case kAddChecksum: {
            if (!name(e.subspan(4), a)) return "ADD_CHECKSUM: file name not NUL-terminated";
            Copy* file = find(a);
            const uint64_t offset = load_le(e.subspan(60, 4)), start = load_le(e.subspan(64, 4)),
                           length = load_le(e.subspan(68, 4));
            if (!file) return fmt::format("ADD_CHECKSUM in {}: not allocated", a);
            if (offset >= file->bytes.size() || start > file->bytes.size() || length > file->bytes.size() - start)
                return fmt::format("ADD_CHECKSUM in {}: range outside the file", a);
            uint8_t sum = 0;
            for (uint64_t i = 0; i < length; ++i) sum = static_cast<uint8_t>(sum + file->bytes[start + i]);
            file->bytes[offset] = static_cast<uint8_t>(file->bytes[offset] - sum);
            return {};
        }
        case kWritePointer:  // the address is in the result; the source must exist
            if (!name(e.subspan(60), b)) return "WRITE_POINTER: file name not NUL-terminated";
            return find(b) ? std::string() : fmt::format("WRITE_POINTER to {}: not allocated", b);
        default: return {};  // SeaBIOS skips unknown commands (the zero padding)
        }
    }

    bool write(const GuestMemory& memory) const {
        for (const auto& [file, copy] : copies_)
            if (!memory.write(copy.address, copy.bytes)) return false;
        return true;
    }
    LoaderResult result() const {
        LoaderResult r;
        r.ok = true;
        for (const auto& [file, copy] : copies_) r.addresses[file] = copy.address;
        r.high_used = next_high_ - zones_.high_base;
        return r;
    }

private:
    static bool name(std::span<const uint8_t> field, std::string& out) {
        for (size_t i = 0; i < TableLoader::kFileNameSize; ++i)
            if (field[i] == 0) {
                out.assign(reinterpret_cast<const char*>(field.data()), i);
                return true;
            }
        return false;
    }
    Copy* find(const std::string& file) {
        auto it = copies_.find(file);
        return it == copies_.end() ? nullptr : &it->second;
    }
    std::string allocate(const std::string& file, uint32_t align, uint8_t zone) {
        const auto it = files_.find(file);
        if (it == files_.end() || it->second.empty()) return fmt::format("ALLOCATE {}: no such file", file);
        if (copies_.count(file)) return fmt::format("ALLOCATE {}: allocated twice", file);
        if (align == 0 || (align & (align - 1)) != 0 || align > (1u << 20))
            return fmt::format("ALLOCATE {}: alignment {} is not a power of two up to 1 MiB", file, align);
        if (zone != static_cast<uint8_t>(TableLoader::Zone::high) && zone != static_cast<uint8_t>(TableLoader::Zone::fseg))
            return fmt::format("ALLOCATE {}: unknown zone {}", file, zone);
        const bool high = zone == static_cast<uint8_t>(TableLoader::Zone::high);
        uint64_t& next = high ? next_high_ : next_fseg_;
        const uint64_t end = high ? zones_.high_end : zones_.fseg_end;
        const uint64_t address = (next + align - 1) & ~uint64_t{align - 1};
        if (address > end || it->second.size() > end - address)
            return fmt::format("ALLOCATE {}: {} bytes do not fit the {} zone", file, it->second.size(), high ? "high" : "F-segment");
        next = address + it->second.size();
        copies_.emplace(file, Copy{address, it->second});
        return {};
    }

    const std::map<std::string, std::vector<uint8_t>>& files_;
    LoaderZones zones_;
    uint64_t next_high_, next_fseg_;
    std::map<std::string, Copy> copies_;
};

}  // namespace

LoaderResult run_table_loader(std::span<const uint8_t> script, const std::map<std::string, std::vector<uint8_t>>& files,
                              const LoaderZones& zones, const GuestMemory& memory) noexcept {
    LoaderResult failed;
    try {
        if (script.size() % TableLoader::kEntrySize != 0) {
            failed.error = "table loader: the script is not a whole number of 128-byte commands";
            return failed;
        }
        Runner runner(files, zones);
        for (size_t at = 0; at < script.size(); at += TableLoader::kEntrySize) {
            std::string error = runner.command(script.subspan(at, TableLoader::kEntrySize));
            if (!error.empty()) {
                failed.error = fmt::format("table loader: command {}: {}", at / TableLoader::kEntrySize, error);
                return failed;
            }
        }
        if (!runner.write(memory)) {
            failed.error = "table loader: a zone lies outside guest RAM";
            return failed;
        }
        return runner.result();
    } catch (const std::exception& e) {  // std::bad_alloc
        failed.error = fmt::format("table loader: {}", e.what());
        return failed;
    }
}

}  // namespace minivmm
