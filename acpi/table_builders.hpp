// Internal to acpi/: the individual tables build_acpi() places into "etc/acpi/tables". Each
// returns the table bytes with a zero checksum (the table-loader computes it after patching
// pointers); pointer fields hold offsets into "etc/acpi/tables".
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "acpi/acpi_builder.hpp"
#include "acpi/tables.hpp"

namespace minivmm::acpi {

using Bytes = std::vector<uint8_t>;

// Header with minivmm's OEM ids; `length` is the whole table size.
TableHeader make_header(std::string_view signature, uint8_t revision, uint32_t length);

Bytes build_facs();
Bytes build_dsdt(const AcpiConfig& config);
Bytes build_fadt(uint32_t facs_offset, uint32_t dsdt_offset);
Bytes build_madt(unsigned cpus);
// RSDT (entry_size 4) or XSDT (entry_size 8) listing the tables at `offsets`.
Bytes build_sdt(std::string_view signature, size_t entry_size, const std::vector<uint32_t>& offsets);
Bytes build_rsdp(uint32_t rsdt_offset, uint32_t xsdt_offset);

}  // namespace minivmm::acpi
