#include "firmware/table_loader.hpp"

#include <cstring>
#include <stdexcept>

#include "devices/device.hpp"

namespace minivmm {

namespace {
// SeaBIOS src/fw/romfile_loader.h ROMFILE_LOADER_COMMAND_*.
enum Command : uint32_t { kAllocate = 1, kAddPointer = 2, kAddChecksum = 3, kWritePointer = 4 };
}

uint8_t* TableLoader::new_entry(uint32_t command) {
    entries_.resize(entries_.size() + kEntrySize, 0);
    uint8_t* e = entries_.data() + entries_.size() - kEntrySize;
    store_le({e, 4}, command);
    return e;
}

void TableLoader::put_name(uint8_t* dst, std::string_view name) {
    // byte 55 must stay NUL or SeaBIOS rejects the entry
    if (name.empty() || name.size() >= kFileNameSize)
        throw std::invalid_argument("table-loader: bad fw_cfg file name '" + std::string(name) + "'");
    std::memcpy(dst, name.data(), name.size());
}

void TableLoader::allocate(std::string_view file, uint32_t align, Zone zone) {
    if (align == 0 || (align & (align - 1)) != 0) throw std::invalid_argument("table-loader: alignment not a power of two");
    uint8_t* e = new_entry(kAllocate);
    put_name(e + 4, file);
    store_le({e + 60, 4}, align);
    e[64] = static_cast<uint8_t>(zone);
}

void TableLoader::add_pointer(std::string_view dest_file, std::string_view src_file, uint32_t offset, uint8_t size) {
    if (size != 1 && size != 2 && size != 4 && size != 8) throw std::invalid_argument("table-loader: bad pointer size");
    uint8_t* e = new_entry(kAddPointer);
    put_name(e + 4, dest_file);
    put_name(e + 60, src_file);
    store_le({e + 116, 4}, offset);
    e[120] = size;
}

void TableLoader::add_checksum(std::string_view file, uint32_t offset, uint32_t start, uint32_t length) {
    uint8_t* e = new_entry(kAddChecksum);
    put_name(e + 4, file);
    store_le({e + 60, 4}, offset);
    store_le({e + 64, 4}, start);
    store_le({e + 68, 4}, length);
}

void TableLoader::write_pointer(std::string_view dest_file, uint32_t dest_offset, std::string_view src_file,
                                uint32_t src_offset, uint8_t size) {
    if (size != 1 && size != 2 && size != 4 && size != 8) throw std::invalid_argument("table-loader: bad pointer size");
    uint8_t* e = new_entry(kWritePointer);
    put_name(e + 4, dest_file);
    put_name(e + 60, src_file);
    store_le({e + 116, 4}, dest_offset);
    store_le({e + 120, 4}, src_offset);
    e[124] = size;
}

std::vector<uint8_t> TableLoader::blob() const {
    std::vector<uint8_t> out = entries_;
    out.resize((out.size() + 4095) / 4096 * 4096, 0);
    if (out.empty()) out.resize(4096, 0);
    return out;
}

}  // namespace minivmm
