#include "vmm/kernel_boot.hpp"

#include <openssl/evp.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <stdexcept>

#include <fmt/core.h>

#include "firmware/elf_kernel.hpp"
#include "vmm/base/error.hpp"
#include "vmm/base/log.hpp"
#include "vmm/base/read_file.hpp"
#include "vmm/file_digests.hpp"
#include "vmm/kernel_cache.hpp"
#include "vmm/tpm/tpm_message.hpp"

namespace minivmm {

namespace {

// A whole input file, opened as the style asks (no symbolic links, not inherited), at most `limit`
// bytes: checked before reading, so a huge file is refused at once.
FileRead read_input(const std::string& path, const char* option, uint64_t limit) {
    FileRead f = read_whole_file(path, limit, /*follow_links=*/false);
    switch (f.status) {
    case FileRead::Status::ok: return f;
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

std::optional<tcg_log::Digest> tcg_digest(std::span<const uint8_t> bytes, uint16_t algorithm) {
    const EVP_MD* md = algorithm == tcg_log::kAlgSha1     ? EVP_sha1()
                       : algorithm == tcg_log::kAlgSha256 ? EVP_sha256()
                       : algorithm == tcg_log::kAlgSha384 ? EVP_sha384()
                       : algorithm == tcg_log::kAlgSha512 ? EVP_sha512()
                                                          : nullptr;
    if (!md) return std::nullopt;
    std::vector<uint8_t> value(static_cast<size_t>(EVP_MD_get_size(md)));
    unsigned size = 0;
    if (!EVP_Digest(bytes.data(), bytes.size(), value.data(), &size, md, nullptr) || size != value.size())
        throw SetupError(kExitInternal, fmt::format("OpenSSL could not compute a {} digest", EVP_MD_get0_name(md)));
    return tcg_log::Digest{algorithm, std::move(value)};
}

struct KernelBoot::DigestCache {
    std::mutex mutex;
    std::map<std::pair<size_t, uint16_t>, std::vector<uint8_t>> values;  // (measurement, algorithm) -> digest
    std::map<size_t, size_t> recorded;  // measurement -> how many digests its -kernel-cache record held
};

std::span<const uint8_t> KernelBoot::measured_bytes(size_t index) const noexcept {
    if (index == 0) return kernel_;
    if (index == 1) return {reinterpret_cast<const uint8_t*>(cmdline_.data()), cmdline_.size()};
    return initrd_;
}

void KernelBoot::prepare_digests(std::span<const uint16_t> algorithms) const {
    // One task per algorithm over the measured files it lacks, the first on this thread: SHA-384/512
    // of a distribution kernel and initrd take ~80 ms on one core, SHA-1 and SHA-256 with SHA-NI ~10 ms.
    std::map<uint16_t, std::vector<size_t>> missing;
    {
        std::lock_guard lock(digests_->mutex);
        // Only the four minivmm computes: the SeaBIOS path's list comes from the guest's memory, and a
        // vCPU thread, where that path runs (with every digest computed at start-up), may not start
        // threads (vmm/host/README.md "Sandbox").
        for (uint16_t algorithm : algorithms)
            if (std::count(std::begin(kKernelDigestAlgorithms), std::end(kKernelDigestAlgorithms), algorithm))
                for (size_t i = 0; i < measurements_.size(); ++i)
                    if (!digests_->values.count({i, algorithm})) missing[algorithm].push_back(i);
    }
    using Computed = std::vector<std::pair<size_t, tcg_log::Digest>>;
    auto hash = [this](uint16_t algorithm, const std::vector<size_t>& files) {
        Computed out;
        for (size_t i : files)
            if (std::optional<tcg_log::Digest> d = tcg_digest(measured_bytes(i), algorithm)) out.emplace_back(i, std::move(*d));
        return out;
    };
    std::vector<std::future<Computed>> others;
    for (auto it = std::next(missing.begin(), missing.empty() ? 0 : 1); it != missing.end(); ++it)
        others.push_back(std::async(std::launch::async, hash, it->first, it->second));
    std::vector<Computed> results;
    if (!missing.empty()) results.push_back(hash(missing.begin()->first, missing.begin()->second));
    for (auto& f : others) results.push_back(f.get());
    std::lock_guard lock(digests_->mutex);
    for (const Computed& computed : results)
        for (const auto& [i, d] : computed) digests_->values.emplace(std::pair(i, d.algorithm), d.value);
}

std::vector<tcg_log::Digest> KernelBoot::digests(size_t index, std::span<const uint16_t> algorithms) const {
    std::lock_guard lock(digests_->mutex);
    std::vector<tcg_log::Digest> out;
    for (uint16_t algorithm : algorithms) {
        auto it = digests_->values.find({index, algorithm});
        if (it == digests_->values.end()) {
            std::optional<tcg_log::Digest> d = tcg_digest(measured_bytes(index), algorithm);
            if (!d) continue;
            it = digests_->values.emplace(std::pair(index, algorithm), std::move(d->value)).first;
        }
        out.push_back({algorithm, it->second});
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

KernelBoot KernelBoot::load(const Files& files, uint64_t ram_below_4g, bool eager) {
    KernelBoot k;
    k.digests_ = std::make_shared<DigestCache>();
    FileRead kernel = read_input(files.kernel, "-kernel", ram_below_4g);
    k.kernel_ = std::move(kernel.bytes);
    k.stamps_[0] = kernel.stamp;
    if (files.initrd) {
        FileRead initrd = read_input(*files.initrd, "-initrd", ram_below_4g);
        k.initrd_ = std::move(initrd.bytes);
        k.stamps_[2] = initrd.stamp;
        if (k.initrd_.empty()) throw SetupError(kExitFile, fmt::format("-initrd {}: the file is empty", *files.initrd));
    }
    if (files.cache_dir) k.cache_dir_ = kernel_cache::directory(*files.cache_dir);
    k.cmdline_ = files.cmdline;
    k.elf_ = elf_kernel::is_elf(k.kernel_);
    try {
        // An ELF vmlinux (-bios none enters it through PVH, vmm/pvh_kernel.hpp): placed by its segments.
        k.plan_ = k.elf_ ? linux_boot::plan_elf(elf_kernel::parse(k.kernel_, linux_boot::kKernelAddr,
                                                                  ram_below_4g - linux_boot::kFirmwareReserve).highest,
                                                k.initrd_.size(), k.cmdline_, ram_below_4g)
                         : linux_boot::plan(k.kernel_, k.initrd_.size(), k.cmdline_, ram_below_4g);
    } catch (const std::invalid_argument& e) {
        throw SetupError(kExitFile, fmt::format("-kernel {}: {}", files.kernel, e.what()));
    }
    // The order GRUB's linux and initrd commands measure in (measured_bytes() follows it).
    k.measurements_.push_back({"kernel", 9, text_event(base_name(files.kernel))});
    // GRUB 2.06 grub_tpm_verify_string: the digest of the command line, the event text with a prefix.
    k.measurements_.push_back({"command line", 8, text_event("kernel_cmdline: " + k.cmdline_)});
    if (files.initrd) k.measurements_.push_back({"initrd", 9, text_event(base_name(*files.initrd))});
    if (k.cache_dir_) k.load_digest_records();
    if (eager) k.prepare_digests(kKernelDigestAlgorithms);
    return k;
}

bool KernelBoot::boot(const GuestMemory& memory, std::optional<uint64_t> log_address, uint64_t log_size,
                      TpmWorker* tpm) const noexcept {
    if (!linux_boot::load_into(memory, plan_, kernel_, initrd_, cmdline_)) {
        log::error("-kernel: the kernel could not be placed in guest RAM; the boot ROM gives up");
        return false;
    }
    if (tpm) measure_or_log(memory, log_address, log_size, *tpm);
    return true;
}

bool KernelBoot::boot_pvh(const GuestMemory& memory, std::optional<uint64_t> log_address, uint64_t log_size,
                          TpmWorker* tpm) const noexcept {
    const uint8_t nul[1] = {0};
    const std::span<const uint8_t> line(reinterpret_cast<const uint8_t*>(cmdline_.data()), cmdline_.size());
    if (!memory.write(linux_boot::kCmdlineAddr, line) || !memory.write(linux_boot::kCmdlineAddr + line.size(), nul) ||
        (!initrd_.empty() && !memory.write(plan_.initrd_addr, initrd_))) {
        log::error("-kernel: the command line or the initrd could not be placed in guest RAM");
        return false;
    }
    if (tpm) measure_or_log(memory, log_address, log_size, *tpm);
    return true;
}

void KernelBoot::load_digest_records() {
    for (size_t i : {size_t{0}, size_t{2}}) {
        if (!stamps_[i]) continue;
        const std::optional<std::string> text =
            kernel_cache::read_small(*cache_dir_, file_digests::record_name(*stamps_[i]), kMaxDigestRecord);
        const auto digests = text ? file_digests::parse(*text, *stamps_[i]) : std::nullopt;
        if (!digests) continue;
        for (const tcg_log::Digest& d : *digests) digests_->values.emplace(std::pair(i, d.algorithm), d.value);
        digests_->recorded[i] = digests->size();
        log::info("-kernel-cache: the {}'s {} digest(s) from {}", measurements_[i].what, digests->size(),
                  file_digests::record_name(*stamps_[i]));
    }
}

void KernelBoot::save_digest_records() const {
    if (!cache_dir_) return;
    timespec now {};
    ::clock_gettime(CLOCK_REALTIME, &now);
    for (size_t i : {size_t{0}, size_t{2}}) {
        if (!stamps_[i] || !file_digests::settled(*stamps_[i], now.tv_sec * 1'000'000'000ll + now.tv_nsec)) continue;
        std::vector<tcg_log::Digest> known;
        {
            std::lock_guard lock(digests_->mutex);
            for (uint16_t algorithm : kKernelDigestAlgorithms)
                if (auto it = digests_->values.find({i, algorithm}); it != digests_->values.end())
                    known.push_back({algorithm, it->second});
            if (known.size() <= digests_->recorded[i]) continue;  // nothing new since the record was read
            digests_->recorded[i] = known.size();
        }
        const std::string text = file_digests::format(*stamps_[i], known);
        kernel_cache::store(*cache_dir_, file_digests::record_name(*stamps_[i]),
                            {reinterpret_cast<const uint8_t*>(text.data()), text.size()}, "the digests");
    }
}

std::vector<uint8_t> KernelBoot::kernel_sha256() const {
    const uint16_t sha256[] = {tcg_log::kAlgSha256};
    return digests(0, sha256).at(0).value;
}

void KernelBoot::measure_or_log(const GuestMemory& memory, std::optional<uint64_t> log_address, uint64_t log_size,
                                TpmWorker& tpm) const noexcept {
    try {
        measure(memory, log_address, log_size, tpm);
    } catch (const std::exception& e) {
        log::error("-kernel: the kernel was not measured: {}", e.what());
    }
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
        std::vector<tcg_log::Digest> digests;
        std::vector<uint8_t> command;
        std::string what;
    };
    // The banks the log lists (the firmware lists the active ones); without a log, every bank we
    // can compute (a TPM ignores digests of banks it has not allocated).
    std::vector<uint16_t> banks;
    if (layout)
        for (const tcg_log::Algorithm& a : layout->algorithms) banks.push_back(a.id);
    else
        banks.assign(std::begin(kKernelDigestAlgorithms), std::end(kKernelDigestAlgorithms));
    prepare_digests(banks);
    std::vector<Step> steps;
    for (size_t i = 0; i < measurements_.size(); ++i) {
        const Measurement& m = measurements_[i];
        std::vector<tcg_log::Digest> digests = this->digests(i, banks);
        std::vector<uint8_t> command = pcr_extend_command(version, m.pcr, digests);
        steps.push_back({&m, std::move(digests), std::move(command),
                         fmt::format("-kernel: measuring the {} into PCR {}", m.what, m.pcr)});
    }
    unsigned logged = 0;
    for (Step& step : steps) {
        if (layout) {
            if (tcg_log::append(*area, *layout, step.m->pcr, tcg_log::kEvIpl, step.digests, step.m->event_data)) ++logged;
            else log::warn("-kernel: the {} event does not fit the TPM event log, or the log lists a hash algorithm "
                           "minivmm cannot compute", step.m->what);
        }
        tpm.submit_platform(std::move(step.command), std::move(step.what));
    }
    log::info("-kernel: {} measurement(s) into PCRs 8 and 9, {} logged after the firmware's events", steps.size(), logged);
}

}  // namespace minivmm
