// acpi_dump DIR [--cpus N] [--tpm 1.2|2.0|2.0-crb] [--no-tpm-irq] [--no-tpm-ppi]: (the TIS lists IRQ 13
// unless --no-tpm-irq; the TPM has the PPI _DSM unless --no-tpm-ppi, as minivmm) builds minivmm's default ACPI tables and writes each one as
// DIR/<SIGNATURE>.dat (DSDT.dat, FACP.dat, APIC.dat, ..., RSDP.dat) for iasl -d and acpiexec.
#include <fmt/core.h>

#include <cstdio>
#include <exception>
#include <fstream>
#include <string>
#include <string_view>

#include "acpi/acpi_builder.hpp"
#include "acpi/tpm_tables.hpp"
#include "vmm/base/platform.hpp"

int main(int argc, char** argv) {
    std::string dir;
    minivmm::AcpiConfig config;
    std::string tpm;
    bool tpm_irq = true, tpm_ppi = true;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--cpus" && i + 1 < argc) {
            try {
                config.cpus = static_cast<unsigned>(std::stoul(argv[++i]));
            } catch (const std::exception&) {
                fmt::print(stderr, "acpi_dump: bad --cpus value '{}'\n", argv[i]);
                return 2;
            }
        } else if (arg == "--tpm" && i + 1 < argc) {
            const std::string_view v = argv[++i];
            if (v != "1.2" && v != "2.0" && v != "2.0-crb") {
                fmt::print(stderr, "acpi_dump: --tpm takes 1.2, 2.0 or 2.0-crb\n");
                return 2;
            }
            tpm = v;
        } else if (arg == "--no-tpm-irq") {
            tpm_irq = false;
        } else if (arg == "--no-tpm-ppi") {
            tpm_ppi = false;
        } else if (dir.empty() && !arg.starts_with("-")) {
            dir = arg;
        } else {
            fmt::print(stderr, "usage: acpi_dump DIR [--cpus N] [--tpm 1.2|2.0|2.0-crb] [--no-tpm-irq] [--no-tpm-ppi]\n");
            return 2;
        }
    }
    if (dir.empty()) {
        fmt::print(stderr, "usage: acpi_dump DIR [--cpus N] [--tpm 1.2|2.0|2.0-crb] [--no-tpm-irq] [--no-tpm-ppi]\n");
        return 2;
    }
    if (!tpm.empty()) {
        const bool crb = tpm == "2.0-crb";
        minivmm::add_tpm_acpi(config, tpm == "1.2" ? minivmm::TpmVersion::v1_2 : minivmm::TpmVersion::v2_0,
                              crb ? minivmm::TpmInterface::crb : minivmm::TpmInterface::tis,
                              tpm_irq && !crb ? std::optional<uint8_t>(minivmm::platform::kTpmTisIrq) : std::nullopt,
                              tpm_ppi);
    }
    try {
        const minivmm::AcpiBlobs blobs = minivmm::build_acpi(config);
        for (const auto& [sig, bytes] : blobs.dumps) {
            const std::string path = dir + "/" + sig + ".dat";
            std::ofstream out(path, std::ios::binary);
            out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
            if (!out) {
                fmt::print(stderr, "acpi_dump: cannot write {}\n", path);
                return 1;
            }
            fmt::print("{} {} bytes\n", path, bytes.size());
        }
    } catch (const std::exception& e) {
        fmt::print(stderr, "acpi_dump: {}\n", e.what());
        return 1;
    }
    return 0;
}
