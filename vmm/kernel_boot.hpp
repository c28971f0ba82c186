// -kernel/-initrd/-append: direct kernel boot through SeaBIOS, measured like GRUB measures it.
// The files are read, checked against the boot protocol (firmware/linux_boot.hpp) and hashed at
// start-up, once: the vCPU threads never touch the file system, and the bytes measured are the
// bytes loaded. At every power-on the boot ROM's request (devices/linux_boot_port.hpp) places them
// in guest RAM and, with a TPM, measures them before the kernel runs:
//   PCR 9, EV_IPL, the kernel file     (event data: its file name)
//   PCR 8, EV_IPL, the command line    (event data: "kernel_cmdline: <command line>"; GRUB 2.06 tpm.c)
//   PCR 9, EV_IPL, the initrd file      (event data: its file name), with -initrd
// Each event is appended to the firmware's event log after SeaBIOS's last event (the log's own
// format and algorithm list, firmware/tcg_event_log.hpp) and the PCR is extended in every bank the
// log lists, by commands queued on the TPM worker ahead of any command of the kernel.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "firmware/linux_boot.hpp"
#include "firmware/tcg_event_log.hpp"
#include "vmm/base/guest_memory.hpp"
#include "vmm/base/read_file.hpp"
#include "vmm/tpm/tpm_worker.hpp"

namespace minivmm {

class KernelBoot {
public:
    struct Files {
        std::string kernel;
        std::optional<std::string> initrd;
        std::string cmdline;
        std::optional<std::string> cache_dir = std::nullopt;  // -kernel-cache: the files' digests are kept there
    };
    // Reads and checks everything for a guest with `ram_below_4g` bytes of RAM below 4 GiB. Throws
    // SetupError(kExitFile) with one line: a file that cannot be opened or read (a symbolic link
    // included: O_NOFOLLOW), an empty initrd, or a kernel the boot protocol refuses (not a bzImage,
    // protocol older than 2.06, too large, command line too long, initrd too large for the RAM). An
    // ELF vmlinux is checked as firmware/elf_kernel.hpp says and placed by linux_boot::plan_elf.
    // The digests are computed when first needed, for the banks asked (digests()); `eager` computes
    // all four now (the SeaBIOS path: its log says which banks only when the kernel is loaded, on a
    // vCPU; so the hashing stays at start-up, off the vCPU).
    static KernelBoot load(const Files& files, uint64_t ram_below_4g, bool eager = true);

    struct Measurement {
        std::string what;  // "kernel", "command line", "initrd"
        uint32_t pcr;
        std::vector<uint8_t> event_data;  // NUL-terminated text, as GRUB logs it
    };
    const std::vector<Measurement>& measurements() const noexcept { return measurements_; }
    // Measurement `index`'s digests in `algorithms` (SHA-1, SHA-256, SHA-384, SHA-512; others are
    // left out), each computed once and kept. Throws SetupError(kExitInternal) if OpenSSL fails.
    std::vector<tcg_log::Digest> digests(size_t index, std::span<const uint16_t> algorithms) const;
    const linux_boot::Plan& plan() const noexcept { return plan_; }

    // One power-on: loads into `memory`; with a TPM (`tpm` non-null) appends the events to the
    // log of `log_size` bytes at `log_address` (nullopt: the firmware did not say where it is) and
    // queues the PCR extends. False if the kernel could not be placed (the ROM then gives up).
    bool boot(const GuestMemory& memory, std::optional<uint64_t> log_address, uint64_t log_size,
              TpmWorker* tpm) const noexcept;
    // -bios none through PVH (vmm/pvh_kernel.hpp): the command line and the initrd where the plan
    // says (the kernel is the caller's), then the measurements as boot() makes them.
    bool boot_pvh(const GuestMemory& memory, std::optional<uint64_t> log_address, uint64_t log_size,
                  TpmWorker* tpm) const noexcept;

    std::span<const uint8_t> kernel_bytes() const noexcept { return kernel_; }
    // The kernel is an ELF vmlinux, not a bzImage: it boots only through PVH (-bios none).
    bool is_elf() const noexcept { return elf_; }
    // The bzImage's SHA-256 (its measurement's digest; the -kernel-cache key).
    std::vector<uint8_t> kernel_sha256() const;
    // With Files::cache_dir: writes the kernel's and the initrd's digest records
    // (vmm/file_digests.hpp) when digests were computed that their records lack. A record that
    // cannot be written is a warning. On the main thread, before the sandbox (it opens files).
    void save_digest_records() const;

private:
    KernelBoot() = default;
    // measure(), its failure a log line (boot() and boot_pvh() are noexcept).
    void measure_or_log(const GuestMemory& memory, std::optional<uint64_t> log_address, uint64_t log_size,
                        TpmWorker& tpm) const noexcept;
    void measure(const GuestMemory& memory, std::optional<uint64_t> log_address, uint64_t log_size,
                 TpmWorker& tpm) const;

    std::span<const uint8_t> measured_bytes(size_t index) const noexcept;
    // Every measurement's digests in `algorithms`, an algorithm per thread (std::async).
    void prepare_digests(std::span<const uint16_t> algorithms) const;
    // The digests the -kernel-cache records hold for the files as read (a record of another
    // version of a file is ignored).
    void load_digest_records();
    static constexpr size_t kMaxDigestRecord = 1024;

    std::vector<uint8_t> kernel_, initrd_;
    std::optional<FileStamp> stamps_[3];  // per measurement: the kernel's and the initrd's (0 and 2)
    std::optional<std::string> cache_dir_;
    bool elf_ = false;
    std::string cmdline_;
    linux_boot::Plan plan_;
    std::vector<Measurement> measurements_;
    struct DigestCache;  // the digests computed so far, under a mutex (boot() may run on a vCPU)
    std::shared_ptr<DigestCache> digests_;
};

// The four hash algorithms minivmm computes, as TPM_ALG_IDs.
inline constexpr uint16_t kKernelDigestAlgorithms[] = {tcg_log::kAlgSha1, tcg_log::kAlgSha256, tcg_log::kAlgSha384,
                                                       tcg_log::kAlgSha512};

// The digest of `bytes` in `algorithm` (OpenSSL): SHA-1, SHA-256, SHA-384 or SHA-512; nullopt for
// an algorithm minivmm does not compute.
std::optional<tcg_log::Digest> tcg_digest(std::span<const uint8_t> bytes, uint16_t algorithm);

// The TPM command that extends `pcr` with `digests`: TPM2_PCR_Extend with an empty password
// session (TPM 2.0 Part 3 §22.2), or TPM_Extend with the SHA-1 digest (TPM 1.2 Part 3 §16.1).
std::vector<uint8_t> pcr_extend_command(TpmVersion version, uint32_t pcr, std::span<const tcg_log::Digest> digests);

}  // namespace minivmm
