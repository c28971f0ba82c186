// The "etc/table-loader" command blob (QEMU's BIOS linker/loader; SeaBIOS src/fw/romfile_loader.c):
// 128-byte little-endian entries telling the firmware which fw_cfg files to allocate, which
// pointers inside them to patch and which checksums to fix. This is how ACPI tables reach
// SeaBIOS: the VMM never needs to know where the firmware puts them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace minivmm {

class TableLoader {
public:
    enum class Zone : uint8_t { high = 1, fseg = 2 };
    static constexpr size_t kEntrySize = 128;
    static constexpr size_t kFileNameSize = 56;  // includes the terminating NUL

    // ALLOCATE: copy fw_cfg file `file` into firmware memory aligned to `align` (power of two).
    void allocate(std::string_view file, uint32_t align, Zone zone);
    // ADD_POINTER: add the address of `src_file` to the `size`-byte LE value at
    // `dest_file`+`offset` (the value stored there beforehand is an offset into src_file).
    void add_pointer(std::string_view dest_file, std::string_view src_file, uint32_t offset, uint8_t size);
    // ADD_CHECKSUM: byte at `file`+`offset` -= 8-bit sum of [start, start+length).
    void add_checksum(std::string_view file, uint32_t offset, uint32_t start, uint32_t length);
    // WRITE_POINTER: the firmware writes the address it gave `src_file`, plus `src_offset`, as a
    // `size`-byte LE value into fw_cfg file `dest_file` at `dest_offset` (a DMA write: the VMM
    // learns where the firmware put `src_file`). `dest_file` must be guest-writable.
    void write_pointer(std::string_view dest_file, uint32_t dest_offset, std::string_view src_file, uint32_t src_offset,
                       uint8_t size);

    // The command blob, padded with zero entries (which the firmware skips) to a multiple of 4 KiB
    // as QEMU does.
    std::vector<uint8_t> blob() const;
    size_t entries() const noexcept { return entries_.size() / kEntrySize; }

private:
    uint8_t* new_entry(uint32_t command);
    static void put_name(uint8_t* dst, std::string_view name);
    std::vector<uint8_t> entries_;
};

}  // namespace minivmm
