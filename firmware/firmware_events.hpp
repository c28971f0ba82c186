// The measurements minivmm makes as the platform's firmware when there is none (-bios none), in
// the order a PC Client firmware makes them before it hands over to a boot loader (TCG PC Client
// Platform Firmware Profile 1.05, §3.3.4 "PCR Usage" and §10.4.1 "Event Types"):
//   PCR 0  EV_S_CRTM_VERSION     "minivmm <version>" as a NUL-terminated UCS-2 string (§10.4.1:
//                                the S-CRTM version is a UCS-2 string), the digest that of those bytes
//   PCR 1  EV_PLATFORM_CONFIG_FLAGS, once per ACPI file as the guest finds it (pointers patched,
//                                checksums fixed) and once for the SMBIOS structure table, the event
//                                data the blob's fw_cfg name: the tables are the platform's
//                                configuration (§3.3.4.2, PCR 1 "host platform configuration", which
//                                names SMBIOS); each as installed, so a verifier replays what the OS
//                                reads, and the names say which blob is which (SeaBIOS logs an
//                                EV_EVENT_TAG holding the SMBIOS table's SHA-1, src/tcgbios.c
//                                tpm_smbios_measure: a SHA-1 inside every bank's measurement, where
//                                this gives each bank its own digest of the table)
//   PCR 0-7 EV_SEPARATOR          4 zero bytes, hashed (§3.3.2.2: firmware ends its measurements into
//                                PCRs 0-7 with a separator before the boot loader runs)
// The kernel, command line and initrd follow (vmm/kernel_boot.hpp). Pure: the digests are computed
// by the caller over `measured`.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace minivmm {

struct FirmwareEvent {
    uint32_t pcr;
    uint32_t type;
    std::vector<uint8_t> data;      // the event data logged
    std::vector<uint8_t> measured;  // the bytes whose digests are extended
};

// `config_files`: the ACPI files and the SMBIOS table as installed ({"etc/acpi/rsdp", bytes}, ...),
// in the order given.
std::vector<FirmwareEvent> firmware_events(std::string_view version,
                                           std::span<const std::pair<std::string, std::vector<uint8_t>>> config_files);

}  // namespace minivmm
