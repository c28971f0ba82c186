// The firmware side of the ACPI table tests: a small simulator of SeaBIOS's table-loader
// (src/fw/romfile_loader.c: allocate each fw_cfg file in its zone, add file addresses into pointer
// fields, fix checksums) and a walk of the result as an OS does it (RSDP -> RSDT/XSDT -> tables,
// FADT -> FACS/DSDT). Checks with doctest as it goes.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "acpi/acpi_builder.hpp"
#include "acpi/aml.hpp"
#include "acpi/tables.hpp"
#include "firmware/table_loader.hpp"
#include "vmm/base/bytes.hpp"

namespace minivmm::acpi_test {

using Bytes = std::vector<uint8_t>;

inline uint64_t le(const uint8_t* p, size_t n) { return load_le({p, n}); }

inline uint8_t sum8(const uint8_t* p, size_t n) {
    uint8_t s = 0;
    for (size_t i = 0; i < n; ++i) s = static_cast<uint8_t>(s + p[i]);
    return s;
}

inline bool contains(const Bytes& hay, const Bytes& needle) {
    return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) != hay.end();
}

class FirmwareSim {
public:
    struct Region {
        uint64_t addr;
        Bytes data;
    };
    std::map<std::string, Bytes> fw_cfg;  // the files the VMM publishes
    std::map<std::string, Region> mem;    // the allocated copies
    std::vector<std::string> alloc_order;

    void run(const Bytes& loader) {
        if (loader.size() % 128 != 0) throw std::runtime_error("loader size not a multiple of 128");
        for (size_t at = 0; at < loader.size(); at += 128) {
            const uint8_t* e = loader.data() + at;
            switch (le(e, 4)) {
            case 1: {
                const std::string file = name(e + 4);
                const auto it = fw_cfg.find(file);
                if (it == fw_cfg.end() || it->second.empty()) throw std::runtime_error("ALLOCATE of missing " + file);
                const uint64_t align = std::max<uint64_t>(le(e + 60, 4), 16);
                uint64_t& next = e[64] == 2 ? next_fseg_ : next_high_;
                if (e[64] != 1 && e[64] != 2) throw std::runtime_error("bad zone");
                const uint64_t addr = (next + align - 1) / align * align;
                next = addr + it->second.size();
                if (e[64] == 2 && next > 0x100000) throw std::runtime_error("FSEG full");
                mem[file] = Region{addr, it->second};
                alloc_order.push_back(file);
                break;
            }
            case 2: {
                Region& dest = region(name(e + 4));
                const Region& src = region(name(e + 60));
                const uint64_t off = le(e + 116, 4), size = e[120];
                if ((size != 1 && size != 2 && size != 4 && size != 8) || off + size > dest.data.size())
                    throw std::runtime_error("bad ADD_POINTER");
                uint64_t v = le(dest.data.data() + off, size) + src.addr;
                for (size_t i = 0; i < size; ++i) dest.data[off + i] = static_cast<uint8_t>(v >> (8 * i));
                break;
            }
            case 3: {
                Region& r = region(name(e + 4));
                const uint64_t off = le(e + 60, 4), start = le(e + 64, 4), len = le(e + 68, 4);
                if (off >= r.data.size() || start > r.data.size() || len > r.data.size() - start)
                    throw std::runtime_error("bad ADD_CHECKSUM");
                r.data[off] = static_cast<uint8_t>(r.data[off] - sum8(r.data.data() + start, len));
                break;
            }
            default: break;  // SeaBIOS skips unknown commands (the zero padding)
            }
        }
    }

    // Guest-physical read of [addr, addr + len) that must lie inside one allocated file.
    const uint8_t* at(uint64_t addr, size_t len) const {
        for (const auto& [file, r] : mem)
            if (addr >= r.addr && addr - r.addr + len <= r.data.size()) return r.data.data() + (addr - r.addr);
        throw std::runtime_error("pointer to unallocated memory");
    }
    // A whole table at `addr`, checked for signature, length and checksum.
    const uint8_t* table(uint64_t addr, const char* sig) const {
        const uint8_t* h = at(addr, sizeof(acpi::TableHeader));
        CHECK(std::string(reinterpret_cast<const char*>(h), 4) == sig);
        const uint32_t len = static_cast<uint32_t>(le(h + 4, 4));
        REQUIRE(len >= sizeof(acpi::TableHeader));
        const uint8_t* t = at(addr, len);
        CHECK(sum8(t, len) == 0);
        return t;
    }
    uint64_t addr_of(const std::string& file) const { return mem.at(file).addr; }

private:
    static std::string name(const uint8_t* p) {
        if (p[55] != 0) throw std::runtime_error("file name not NUL-terminated");
        return std::string(reinterpret_cast<const char*>(p));
    }
    Region& region(const std::string& file) {
        const auto it = mem.find(file);
        if (it == mem.end()) throw std::runtime_error("reference to unallocated " + file);
        return it->second;
    }
    uint64_t next_high_ = 0x7FFE'0000;
    uint64_t next_fseg_ = 0xF5000;
};

inline FirmwareSim load(const AcpiBlobs& blobs, std::map<std::string, Bytes> extra_files = {}) {
    FirmwareSim fw;
    fw.fw_cfg = std::move(extra_files);
    fw.fw_cfg[kAcpiTablesFile] = blobs.tables;
    fw.fw_cfg[kAcpiRsdpFile] = blobs.rsdp;
    fw.run(blobs.loader);
    return fw;
}

struct Walk {
    std::map<std::string, uint64_t> tables;  // signature -> address, from the XSDT
};

// RSDP -> RSDT and XSDT (must list the same tables) -> every table.
inline Walk walk(const FirmwareSim& fw) {
    const uint64_t rsdp_addr = fw.addr_of(kAcpiRsdpFile);
    CHECK(rsdp_addr >= 0xE0000);
    CHECK(rsdp_addr + sizeof(acpi::Rsdp) <= 0x100000);
    CHECK(rsdp_addr % 16 == 0);
    acpi::Rsdp rsdp;
    std::memcpy(&rsdp, fw.at(rsdp_addr, sizeof rsdp), sizeof rsdp);
    CHECK(std::memcmp(rsdp.signature, "RSD PTR ", 8) == 0);
    CHECK(rsdp.revision == 2);
    CHECK(rsdp.length == 36);
    CHECK(sum8(reinterpret_cast<const uint8_t*>(&rsdp), 20) == 0);
    CHECK(sum8(reinterpret_cast<const uint8_t*>(&rsdp), 36) == 0);

    const uint8_t* rsdt = fw.table(rsdp.rsdt_address, "RSDT");
    const uint8_t* xsdt = fw.table(rsdp.xsdt_address, "XSDT");
    const size_t n = (le(rsdt + 4, 4) - 36) / 4;
    REQUIRE(le(xsdt + 4, 4) == 36 + 8 * n);
    Walk w;
    for (size_t i = 0; i < n; ++i) {
        const uint64_t a32 = le(rsdt + 36 + 4 * i, 4), a64 = le(xsdt + 36 + 8 * i, 8);
        CHECK(a32 == a64);
        const std::string sig(reinterpret_cast<const char*>(fw.at(a64, 4)), 4);
        fw.table(a64, sig.c_str());
        w.tables[sig] = a64;
    }
    return w;
}

inline AcpiConfig::ExtraTable tpm2_like_table() {
    // A TPM2-shaped table (TCG ACPI Specification 1.3 §8.3, acpi/tpm_tables.cpp): LASA at +68 points into "etc/tpm/log".
    AcpiConfig::ExtraTable t;
    t.bytes.assign(76, 0);
    std::memcpy(t.bytes.data(), "TPM2", 4);
    t.bytes[8] = 4;
    t.bytes[48] = 6;  // start method: TIS
    t.bytes[66] = 1;  // LAML 0x10000
    t.patches.push_back({68, 8, "etc/tpm/log"});
    return t;
}

}  // namespace minivmm::acpi_test
