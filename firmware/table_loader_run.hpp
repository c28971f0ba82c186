// The firmware's side of the "etc/table-loader" script (firmware/table_loader.hpp), run by minivmm
// itself when there is no firmware (-bios none): every ALLOCATE copies a file into one of two
// zones of guest memory, ADD_POINTER adds a file's address into a field of another, ADD_CHECKSUM
// fixes a checksum, as SeaBIOS src/fw/romfile_loader.c does. WRITE_POINTER needs no DMA here: the
// caller reads the addresses from the result. The script is minivmm's own, but it is checked as
// input all the same: a bad command is an error line, never a write outside a file's copy.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "vmm/base/guest_memory.hpp"

namespace minivmm {

struct LoaderZones {
    uint64_t high_base = 0, high_end = 0;  // Zone::high: the tables (reserved in the e820 map)
    uint64_t fseg_base = 0, fseg_end = 0;  // Zone::fseg: the RSDP, where an OS scans for it (0xE0000-0xFFFFF)
};

struct LoaderResult {
    bool ok = false;
    std::string error;                           // one line when !ok
    std::map<std::string, uint64_t> addresses;   // each allocated file's guest-physical address
    uint64_t high_used = 0;                      // bytes of the high zone taken
};

// Runs `script` on copies of `files` and writes every allocated copy into `memory`; nothing is
// written unless every command succeeded.
LoaderResult run_table_loader(std::span<const uint8_t> script, const std::map<std::string, std::vector<uint8_t>>& files,
                              const LoaderZones& zones, const GuestMemory& memory) noexcept;

}  // namespace minivmm
