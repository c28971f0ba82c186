#include "vmm/tpm/libtpms_backend.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include <fmt/core.h>
#include <libtpms/tpm_error.h>
#include <libtpms/tpm_library.h>
#include <libtpms/tpm_nvfilename.h>
#include <libtpms/tpm_tis.h>

#include "vmm/base/log.hpp"
#include "vmm/tpm/tpm_message.hpp"

namespace minivmm {

namespace {

// The backend whose state libtpms's callbacks act on (libtpms passes them no context).
std::atomic<LibtpmsBackend*> g_active{nullptr};

std::string_view version_text(TpmVersion v) { return tpmstate::version_text(v); }

TpmVersion other_version(TpmVersion v) { return v == TpmVersion::v2_0 ? TpmVersion::v1_2 : TpmVersion::v2_0; }

}  // namespace

LibtpmsBackend::ProcessClaim::ProcessClaim(LibtpmsBackend* owner) {
    LibtpmsBackend* expected = nullptr;
    if (!g_active.compare_exchange_strong(expected, owner, std::memory_order_acq_rel))
        throw std::runtime_error(
            "only one in-process libtpms TPM can exist at a time (libtpms keeps its TPM in global state)");
}

LibtpmsBackend::ProcessClaim::~ProcessClaim() { g_active.store(nullptr, std::memory_order_release); }

LibtpmsBackend* LibtpmsBackend::active() noexcept { return g_active.load(std::memory_order_acquire); }

std::string LibtpmsBackend::state_file_name(TpmVersion version, std::string_view libtpms_name) {
    // TPM number 0 (libtpms supports one); swtpm's naming: tpm-00.* (1.2), tpm2-00.* (2.0).
    return fmt::format("{}-00.{}", version == TpmVersion::v2_0 ? "tpm2" : "tpm", libtpms_name);
}

LibtpmsBackend::LibtpmsBackend(const std::string& state_dir, TpmVersion version)
    : claim_(this), version_(version), dir_(state_dir) {
    check_state_files(dir_, version_);

    if (TPMLIB_ChooseTPMVersion(version == TpmVersion::v2_0 ? TPMLIB_TPM_VERSION_2 : TPMLIB_TPM_VERSION_1_2) != TPM_SUCCESS)
        throw std::runtime_error(fmt::format("this libtpms does not support TPM {}", version_text(version)));
    static struct libtpms_callbacks callbacks = {
        .sizeOfStruct = sizeof(struct libtpms_callbacks),
        .tpm_nvram_init = &LibtpmsBackend::cb_nvram_init,
        .tpm_nvram_loaddata = &LibtpmsBackend::cb_nvram_loaddata,
        .tpm_nvram_storedata = &LibtpmsBackend::cb_nvram_storedata,
        .tpm_nvram_deletename = &LibtpmsBackend::cb_nvram_deletename,
        .tpm_io_init = &LibtpmsBackend::cb_io_init,
        .tpm_io_getlocality = &LibtpmsBackend::cb_io_getlocality,
        .tpm_io_getphysicalpresence = &LibtpmsBackend::cb_io_getphysicalpresence,
    };
    if (TPMLIB_RegisterCallbacks(&callbacks) != TPM_SUCCESS)
        throw std::runtime_error("libtpms refused its callbacks (TPMLIB_RegisterCallbacks)");

    uint32_t min_size = 0, max_size = 0;
    TPMLIB_SetBufferSize(0, &min_size, &max_size);
    buffer_size_ = std::min<size_t>(max_size, kMaxBufferSize);
    if (buffer_size_ < min_size || buffer_size_ < kTpmHeaderSize)
        throw std::runtime_error(fmt::format("libtpms buffer sizes {}..{} do not fit the TIS buffer of {} bytes",
                                             min_size, max_size, kMaxBufferSize));
    command_buf_.reserve(buffer_size_);

    std::lock_guard lock(mutex_);
    if (uint32_t rc = start_locked(); rc != TPM_SUCCESS)
        throw TpmStateError(fmt::format("libtpms could not start TPM {} from the state in {} (error 0x{:x}); move "
                                        "its files away to start a fresh TPM",
                                        version_text(version), dir_.path(), rc));
    log::info("libtpms TPM {}: state in {}, buffer size {}", version_text(version), dir_.path(), buffer_size_);
}

LibtpmsBackend::~LibtpmsBackend() {
    {
        std::lock_guard lock(mutex_);
        stop_locked();
    }
    std::free(response_buf_);
}

// Refuses what would otherwise silently become a fresh TPM: the other version's state, or a
// file that is truncated, corrupt or from another TPM version (checked again by every load).
void LibtpmsBackend::check_state_files(const TpmStateDir& dir, TpmVersion version) {
    std::string other_permall = state_file_name(other_version(version), TPM_PERMANENT_ALL_NAME);
    if (dir.exists(other_permall))
        throw TpmStateError(fmt::format("TPM state directory {} holds TPM {} state ({}), not TPM {}; use -tpm-version "
                                        "{} or another -tpm-state directory",
                                        dir.path(), version_text(other_version(version)), other_permall,
                                        version_text(version), version_text(other_version(version))));
    for (const char* name : {TPM_PERMANENT_ALL_NAME, TPM_SAVESTATE_NAME, TPM_VOLATILESTATE_NAME}) {
        auto r = dir.read(state_file_name(version, name), version);
        if (r.status == TpmStateDir::ReadResult::Status::error) throw TpmStateError(r.error);
    }
}

void LibtpmsBackend::check(const std::string& state_dir, TpmVersion version) {
    if (auto dir = TpmStateDir::inspect(state_dir)) check_state_files(*dir, version);
}

uint32_t LibtpmsBackend::start_locked() noexcept {
    TPMLIB_SetBufferSize(static_cast<uint32_t>(buffer_size_), nullptr, nullptr);
    TPM_RESULT rc = TPMLIB_MainInit();
    if (rc != TPM_SUCCESS) {
        // MainInit keeps the version choice locked even when it fails; Terminate releases it.
        TPMLIB_Terminate();
        return rc;
    }
    running_.store(true, std::memory_order_release);
    refresh_established_locked();
    return TPM_SUCCESS;
}

void LibtpmsBackend::stop_locked() noexcept {
    if (!running_.exchange(false, std::memory_order_acq_rel)) return;
    TPMLIB_Terminate();
}

void LibtpmsBackend::refresh_established_locked() noexcept {
    if (!running()) return;
    TPM_BOOL flag = 0;
    if (TPM_IO_TpmEstablished_Get(&flag) == TPM_SUCCESS) established_.store(flag != 0, std::memory_order_release);
}

// A machine power-on (tpm_tis_reset in QEMU): the TPM loses power and gets _TPM_Init; the
// firmware then sends TPM_Startup(CLEAR). NV state persists; the volatile state does not.
bool LibtpmsBackend::power_cycle() noexcept {
    std::lock_guard lock(mutex_);
    if (shut_down_.load(std::memory_order_acquire)) return false;
    stop_locked();
    try {
        if (std::string err = dir_.remove(state_file_name(version_, TPM_VOLATILESTATE_NAME)); !err.empty()) {
            log::error("{}; the TPM is not started and the guest's TPM commands fail", err);
            return false;
        }
    } catch (...) {
        log::error("out of memory power-cycling the TPM");
        return false;
    }
    if (uint32_t rc = start_locked(); rc != TPM_SUCCESS) {
        log::error("libtpms TPM {} in {} could not be started (TPMLIB_MainInit error 0x{:x}); the guest's TPM commands "
                   "fail",
                   version_text(version_), dir_.path(), rc);
        return false;
    }
    return true;
}

size_t LibtpmsBackend::execute(uint8_t locality, std::span<const uint8_t> command, std::span<uint8_t> response) noexcept {
    if (response.size() < kTpmHeaderSize) return 0;
    if (size_t n = reject_bad_command_size(version_, command, buffer_size_, response); n != 0) {
        log::debug("libtpms: rejecting a {}-byte TPM command (allowed 10..{})", command.size(), buffer_size_);
        return n;
    }
    std::lock_guard lock(mutex_);
    if (!running()) return write_failure_response(version_, response);
    locality_.store(locality, std::memory_order_release);
    // TPMLIB_Process takes a non-const command buffer; the capacity was reserved up front.
    command_buf_.assign(command.begin(), command.end());
    uint32_t size = 0;
    TPM_RESULT rc = TPMLIB_Process(&response_buf_, &size, &response_cap_, command_buf_.data(),
                                   static_cast<uint32_t>(command_buf_.size()));
    refresh_established_locked();
    if (rc != TPM_SUCCESS || response_buf_ == nullptr || size < kTpmHeaderSize || size > response_cap_ ||
        size > std::min(response.size(), buffer_size_)) {
        // Logged once at error level: a guest repeating the command must not flood the log.
        if (!process_failed_.exchange(true))
            log::error("libtpms: TPMLIB_Process failed (error 0x{:x}, {}-byte response, at most {} fit); the guest "
                       "gets a TPM failure response",
                       rc, size, std::min(response.size(), buffer_size_));
        else
            log::debug("libtpms: TPMLIB_Process failed (error 0x{:x}, {}-byte response)", rc, size);
        return write_failure_response(version_, response);
    }
    std::memcpy(response.data(), response_buf_, size);
    return size;
}

void LibtpmsBackend::cancel() noexcept {
    // libtpms's TPM 1.2 has no cancel (TPM12_CancelCommand returns TPM_FAIL).
    if (version_ != TpmVersion::v2_0 || !running()) return;
    if (TPMLIB_CancelCommand() != TPM_SUCCESS) log::debug("libtpms: TPMLIB_CancelCommand failed");
}

bool LibtpmsBackend::established() noexcept {
    std::unique_lock lock(mutex_, std::try_to_lock);
    if (lock.owns_lock()) refresh_established_locked();
    return established_.load(std::memory_order_acquire);
}

void LibtpmsBackend::reset_established(uint8_t locality) noexcept {
    std::lock_guard lock(mutex_);
    if (!running()) return;
    // As swtpm's CMD_RESET_TPMESTABLISHED: the reset is made at the given locality.
    uint8_t saved = locality_.exchange(locality, std::memory_order_acq_rel);
    if (TPM_RESULT rc = TPM_IO_TpmEstablished_Reset(); rc != TPM_SUCCESS)
        log::debug("libtpms: resetting tpmEstablished from locality {}: error 0x{:x}", locality, rc);
    locality_.store(saved, std::memory_order_release);
    refresh_established_locked();
}

void LibtpmsBackend::shutdown() noexcept {
    std::lock_guard lock(mutex_);
    if (shut_down_.exchange(true, std::memory_order_acq_rel) || !running()) return;
    unsigned char* buffer = nullptr;
    uint32_t length = 0;
    if (TPM_RESULT rc = TPMLIB_VolatileAll_Store(&buffer, &length); rc != TPM_SUCCESS || buffer == nullptr) {
        log::warn("libtpms could not save the TPM's volatile state (error 0x{:x})", rc);
    } else {
        try {
            std::string err = dir_.write(state_file_name(version_, TPM_VOLATILESTATE_NAME), version_,
                                         std::span<const uint8_t>(buffer, length));
            if (!err.empty()) log::warn("{}", err);
        } catch (...) {
            log::warn("out of memory saving the TPM's volatile state");
        }
    }
    std::free(buffer);
    stop_locked();
}

// ---- libtpms callbacks (struct libtpms_callbacks) ----

uint32_t LibtpmsBackend::cb_nvram_init() noexcept { return TPM_SUCCESS; }
uint32_t LibtpmsBackend::cb_io_init() noexcept { return TPM_SUCCESS; }

// TPM_RETRY means "no such state" (libtpms then manufactures a fresh TPM, or skips the volatile
// state); anything else but TPM_SUCCESS is fatal for the load. libtpms free()s *data.
uint32_t LibtpmsBackend::cb_nvram_loaddata(unsigned char** data, uint32_t* length, uint32_t tpm_number, const char* name) noexcept {
    LibtpmsBackend* self = active();
    if (!self || !data || !length || !name || tpm_number != 0) return TPM_FAIL;
    *data = nullptr;
    *length = 0;
    try {
        auto r = self->dir_.read(state_file_name(self->version_, name), self->version_);
        if (r.status == TpmStateDir::ReadResult::Status::missing) return TPM_RETRY;
        if (r.status == TpmStateDir::ReadResult::Status::error) {
            log::error("{}", r.error);
            return TPM_FAIL;
        }
        auto* copy = static_cast<unsigned char*>(std::malloc(std::max<size_t>(r.payload.size(), 1)));
        if (!copy) return TPM_FAIL;
        std::memcpy(copy, r.payload.data(), r.payload.size());
        *data = copy;
        *length = static_cast<uint32_t>(r.payload.size());
        return TPM_SUCCESS;
    } catch (...) {
        return TPM_FAIL;
    }
}

uint32_t LibtpmsBackend::cb_nvram_storedata(const unsigned char* data, uint32_t length, uint32_t tpm_number,
                                            const char* name) noexcept {
    LibtpmsBackend* self = active();
    if (!self || (!data && length) || !name || tpm_number != 0) return TPM_FAIL;
    try {
        std::string err = self->dir_.write(state_file_name(self->version_, name), self->version_,
                                           std::span<const uint8_t>(data, length));
        if (!err.empty()) {
            // A host problem (disk full, directory removed); the guest sees NV failures.
            if (!self->store_failed_.exchange(true)) log::error("{}; the TPM's changes are not saved", err);
            else log::debug("{}", err);
            return TPM_FAIL;
        }
        if (self->store_failed_.exchange(false)) log::info("TPM state saved again to {}", self->dir_.path());
        return TPM_SUCCESS;
    } catch (...) {
        return TPM_FAIL;
    }
}

uint32_t LibtpmsBackend::cb_nvram_deletename(uint32_t tpm_number, const char* name, unsigned char must_exist) noexcept {
    LibtpmsBackend* self = active();
    if (!self || !name || tpm_number != 0) return TPM_FAIL;
    try {
        std::string file = state_file_name(self->version_, name);
        if (must_exist && !self->dir_.exists(file)) return TPM_FAIL;
        if (std::string err = self->dir_.remove(file); !err.empty()) {
            log::error("{}", err);
            return TPM_FAIL;
        }
        return TPM_SUCCESS;
    } catch (...) {
        return TPM_FAIL;
    }
}

uint32_t LibtpmsBackend::cb_io_getlocality(uint32_t* locality, uint32_t tpm_number) noexcept {
    LibtpmsBackend* self = active();
    if (!self || !locality || tpm_number != 0) return TPM_FAIL;
    *locality = self->locality_.load(std::memory_order_acquire);
    return TPM_SUCCESS;
}

// No physical-presence pin, as swtpm: TPM 1.2 firmware asserts presence with TSC_PhysicalPresence.
uint32_t LibtpmsBackend::cb_io_getphysicalpresence(unsigned char* physical_presence, uint32_t tpm_number) noexcept {
    if (!physical_presence || tpm_number != 0) return TPM_FAIL;
    *physical_presence = 0;
    return TPM_SUCCESS;
}

}  // namespace minivmm
