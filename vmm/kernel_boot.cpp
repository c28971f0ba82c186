#include "vmm/kernel_boot.hpp"


#include <openssl/evp.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/core.h>

#include "vmm/base/error.hpp"
#include "vmm/base/log.hpp"
#include "vmm/base/read_file.hpp"
#include "vmm/tpm/tpm_message.hpp"

namespace minivmm {

namespace {

// A whole input file, opened as the style asks (no symbolic links, not inherited), at most `limit`
// bytes: checked before reading, so a huge file is refused at once.
std::vector<uint8_t> read_input(const std::string& path, const char* option, uint64_t limit) {
    FileRead f = read_whole_file(path, limit, /*follow_links=*/false);
    switch (f.status) {
    case FileRead::Status::ok: return std::move(f.bytes);
    case FileRead::Status::symbolic_link:
        throw SetupError(kExitFile, fmt::format("{} {}: is a symbolic link; give the file itself (readlink -f {})", option,
                                                path, path));
    case FileRead::Status::cannot_open:
        throw SetupError(kExitFile, fmt::format("{} {}: cannot open: {}", option, path, std::strerror(f.err)));
    case FileRead::Status::not_regular: throw SetupError(kExitFile, fmt::format("{} {}: not a regular file", option, path));
    case FileRead::Status::too_large:
        throw SetupError(kExitFile, fmt::format("{} {}: {} bytes, more than the guest's {} MiB of RAM below 4 GiB", option,
                                                path, f.size, limit >> 20));
    case FileRead::Status::cannot_read:
    case FileRead::Status::shrank: break;
    }
    throw SetupError(kExitFile, fmt::format("{} {}: cannot read: {}", option, path,
                                            f.err != 0 ? std::strerror(f.err) : "the file shrank while it was read"));
}

std::string base_name(const std::string& path) {
    const size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::vector<uint8_t> text_event(const std::string& text) {
    std::vector<uint8_t> data(text.begin(), text.end());
    data.push_back(0);
    return data;
}

}  // namespace

std::vector<tcg_log::Digest> tcg_digests(std::span<const uint8_t> bytes) {
    const std::pair<uint16_t, const EVP_MD*> algorithms[] = {{tcg_log::kAlgSha1, EVP_sha1()},
                                                             {tcg_log::kAlgSha256, EVP_sha256()},
                                                             {tcg_log::kAlgSha384, EVP_sha384()},
                                                             {tcg_log::kAlgSha512, EVP_sha512()}};
    std::vector<tcg_log::Digest> out;
    for (const auto& [id, md] : algorithms) {
        std::vector<uint8_t> value(static_cast<size_t>(EVP_MD_get_size(md)));
        unsigned size = 0;
        if (!EVP_Digest(bytes.data(), bytes.size(), value.data(), &size, md, nullptr) || size != value.size())
            throw SetupError(kExitInternal, fmt::format("OpenSSL could not compute a {} digest", EVP_MD_get0_name(md)));
        out.push_back({id, std::move(value)});
    }
    return out;
}

std::vector<uint8_t> pcr_extend_command(TpmVersion version, uint32_t pcr, std::span<const tcg_log::Digest> digests) {
    if (version == TpmVersion::v1_2) {
        for (const tcg_log::Digest& d : digests)
            if (d.algorithm == tcg_log::kAlgSha1) return TpmCommand(0x00C1, 0x14).u32(pcr).bytes(d.value).done();
        throw std::invalid_argument("TPM_Extend needs a SHA-1 digest");
    }
    TpmCommand c(0x8002, 0x182);  // TPM_ST_SESSIONS, TPM2_CC_PCR_Extend
    c.u32(pcr).password_session().u32(static_cast<uint32_t>(digests.size()));
    for (const tcg_log::Digest& d : digests) c.u16(d.algorithm).bytes(d.value);
    return c.done();
}

KernelBoot KernelBoot::load(const Files& files, uint64_t ram_below_4g) {
    KernelBoot k;
    k.kernel_ = read_input(files.kernel, "-kernel", ram_below_4g);
    if (files.initrd) {
        k.initrd_ = read_input(*files.initrd, "-initrd", ram_below_4g);
        if (k.initrd_.empty()) throw SetupError(kExitFile, fmt::format("-initrd {}: the file is empty", *files.initrd));
    }
    k.cmdline_ = files.cmdline;
    try {
        k.plan_ = linux_boot::plan(k.kernel_, k.initrd_.size(), k.cmdline_, ram_below_4g);
    } catch (const std::invalid_argument& e) {
        throw SetupError(kExitFile, fmt::format("-kernel {}: {}", files.kernel, e.what()));
    }
    // The order GRUB's linux and initrd commands measure in.
    k.measurements_.push_back({"kernel", 9, tcg_digests(k.kernel_), text_event(base_name(files.kernel))});
    // GRUB 2.06 grub_tpm_verify_string: the digest of the command line, the event text with a prefix.
    k.measurements_.push_back({"command line", 8,
                               tcg_digests(std::span(reinterpret_cast<const uint8_t*>(k.cmdline_.data()), k.cmdline_.size())),
                               text_event("kernel_cmdline: " + k.cmdline_)});
    if (files.initrd)
        k.measurements_.push_back({"initrd", 9, tcg_digests(k.initrd_), text_event(base_name(*files.initrd))});
    return k;
}

bool KernelBoot::boot(const GuestMemory& memory, std::optional<uint64_t> log_address, uint64_t log_size,
                      TpmWorker* tpm) const noexcept {
    if (!linux_boot::load_into(memory, plan_, kernel_, initrd_, cmdline_)) {
        log::error("-kernel: the kernel could not be placed in guest RAM; the boot ROM gives up");
        return false;
    }
    if (!tpm) return true;
    try {
        measure(memory, log_address, log_size, *tpm);
    } catch (const std::exception& e) {
        log::error("-kernel: the kernel was not measured: {}", e.what());
    }
    return true;
}

bool KernelBoot::boot_pvh(const GuestMemory& memory, std::optional<uint64_t> log_address, uint64_t log_size,
                          TpmWorker* tpm) const noexcept {
    std::vector<uint8_t> cmdline(cmdline_.begin(), cmdline_.end());
    cmdline.push_back(0);
    if (!memory.write(linux_boot::kCmdlineAddr, cmdline) || (!initrd_.empty() && !memory.write(plan_.initrd_addr, initrd_))) {
        log::error("-kernel: the command line or the initrd could not be placed in guest RAM");
        return false;
    }
    if (!tpm) return true;
    try {
        measure(memory, log_address, log_size, *tpm);
    } catch (const std::exception& e) {
        log::error("-kernel: the kernel was not measured: {}", e.what());
    }
    return true;
}

const std::vector<uint8_t>& KernelBoot::kernel_sha256() const noexcept {
    for (const tcg_log::Digest& d : measurements_.front().digests)
        if (d.algorithm == tcg_log::kAlgSha256) return d.value;
    return measurements_.front().digests.front().value;  // not reached: tcg_digests always computes SHA-256
}

void KernelBoot::measure(const GuestMemory& memory, std::optional<uint64_t> log_address, uint64_t log_size,
                         TpmWorker& tpm) const {
    const TpmVersion version = tpm.version();
    std::optional<std::span<uint8_t>> area = log_address ? memory.span(*log_address, log_size) : std::nullopt;
    std::optional<tcg_log::Layout> layout = area ? tcg_log::parse(*area, version) : std::nullopt;
    if (!area)
        log::warn("-kernel: the firmware's TPM event log is not in guest RAM (address {}): PCRs 8 and 9 are extended "
                  "but the events are not logged", log_address ? fmt::format("{:#x}", *log_address) : "never reported");
    else if (!layout)
        log::warn("-kernel: the firmware's TPM event log at {:#x} is malformed: PCRs 8 and 9 are extended but the "
                  "events are not logged", *log_address);
    // Everything that can fail to allocate first: then every event is logged and extended, or none.
    struct Step {
        const Measurement* m;
        std::vector<uint8_t> command;
        std::string what;
    };
    std::vector<Step> steps;
    for (const Measurement& m : measurements_) {
        // The banks the log lists (SeaBIOS lists the active ones); without a log, every bank we
        // can compute (a TPM ignores digests of banks it has not allocated).
        std::vector<tcg_log::Digest> digests;
        for (const tcg_log::Digest& d : m.digests)
            if (!layout || std::any_of(layout->algorithms.begin(), layout->algorithms.end(),
                                       [&](const tcg_log::Algorithm& a) { return a.id == d.algorithm; }))
                digests.push_back(d);
        steps.push_back({&m, pcr_extend_command(version, m.pcr, digests),
                         fmt::format("-kernel: measuring the {} into PCR {}", m.what, m.pcr)});
    }
    unsigned logged = 0;
    for (Step& step : steps) {
        if (layout) {
            if (tcg_log::append(*area, *layout, step.m->pcr, tcg_log::kEvIpl, step.m->digests, step.m->event_data)) ++logged;
            else log::warn("-kernel: the {} event does not fit the TPM event log, or the log lists a hash algorithm "
                           "minivmm cannot compute", step.m->what);
        }
        tpm.submit_platform(std::move(step.command), std::move(step.what));
    }
    log::info("-kernel: {} measurement(s) into PCRs 8 and 9, {} logged after the firmware's events", steps.size(), logged);
}

}  // namespace minivmm
