// TpmBackend that runs libtpms in-process (-tpm-state DIR), TPM 1.2 or 2.0, behaving like the swtpm
// backend towards the machine: power_cycle() on every power-on (TPMLIB_Terminate + TPMLIB_MainInit;
// the firmware then sends TPM_Startup), failure responses instead of exceptions at run time,
// one log line for host-side trouble.
//
// libtpms keeps its TPM in process-global state and calls back through plain C function
// pointers (struct libtpms_callbacks), so at most one LibtpmsBackend exists at a time; the
// constructor of a second one throws. The NVRAM callbacks store libtpms's blobs in the state
// directory through TpmStateDir (atomic replace, checksummed header):
//   TPM 2.0: tpm2-00.permall (NV, written after every NV-changing command), tpm2-00.volatilestate
//   TPM 1.2: tpm-00.permall, tpm-00.savestate (TPM_SaveState), tpm-00.volatilestate
// The volatile state (PCRs, sessions, loaded objects) is written at a clean shutdown() only.
// Every power-on is a TPM power-on followed by TPM_Startup(CLEAR), which discards volatile state,
// so power_cycle() removes it before starting the TPM (otherwise libtpms would resume the old
// TPM and the firmware's TPM_Startup would fail with TPM_RC_INITIALIZE).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/tpm/tpm_backend.hpp"
#include "vmm/tpm/tpm_state_blob.hpp"
#include "vmm/tpm/tpm_state_dir.hpp"

namespace minivmm {

class LibtpmsBackend final : public TpmBackend {
public:
    // The TIS buffer is 4096 bytes, as for swtpm (QEMU's TPM_TIS_BUFFER_MAX).
    static constexpr size_t kMaxBufferSize = 4096;

    // Opens the state directory (created with mode 0700 if missing, then locked), checks every
    // state file of `version` (header, checksum, TPM version) and refuses a directory that holds
    // the other version's state, then starts libtpms once so that a state libtpms cannot load is
    // reported now. Leaves the TPM running; call power_cycle() before the guest runs (as for
    // swtpm). Throws TpmStateError with one line naming the directory or file, or
    // std::runtime_error if libtpms fails or another LibtpmsBackend exists.
    LibtpmsBackend(const std::string& state_dir, TpmVersion version);
    // The constructor's checks of the directory and its files, without creating, locking or
    // writing anything and without starting libtpms (TpmStateDir::inspect). Throws TpmStateError.
    static void check(const std::string& state_dir, TpmVersion version);
    // Stops libtpms (without writing the volatile state: that is shutdown()'s job) and unlocks
    // the directory.
    ~LibtpmsBackend() override;
    LibtpmsBackend(const LibtpmsBackend&) = delete;
    LibtpmsBackend& operator=(const LibtpmsBackend&) = delete;

    TpmVersion version() const noexcept override { return version_; }
    size_t buffer_size() const noexcept override { return buffer_size_; }
    void limit_buffer_size(size_t limit) noexcept override { buffer_size_ = std::min(buffer_size_, limit); }
    // TPMLIB_Terminate, remove the volatile state, TPMLIB_SetBufferSize, TPMLIB_MainInit.
    bool power_cycle() noexcept override;
    // `response` should hold buffer_size() bytes (at least 10, else 0 is returned). Commands
    // shorter than 10 or longer than buffer_size() bytes get TPM_RC_COMMAND_SIZE /
    // TPM_BAD_PARAM_SIZE, as with swtpm. When the TPM is not running (start failed, shut down)
    // the answer is TPM_RC_FAILURE / TPM_FAIL.
    size_t execute(uint8_t locality, std::span<const uint8_t> command, std::span<uint8_t> response) noexcept override;
    // TPMLIB_CancelCommand (TPM 2.0; libtpms cannot cancel TPM 1.2 commands). Lock-free: called
    // while execute() runs. libtpms clears the request when the next command starts.
    void cancel() noexcept override;
    // The tpmEstablished flag. Never waits for a running command: answers from a cache that is
    // refreshed after every command, power cycle and reset_established().
    bool established() noexcept override;
    // TPM_IO_TpmEstablished_Reset at `locality` (libtpms honours it only from locality 3 or 4).
    void reset_established(uint8_t locality) noexcept override;
    // Writes the volatile state, stops libtpms. Afterwards commands fail fast, silently.
    void shutdown() noexcept override;
    // TPMLIB_GetState of the running TPM: permanent, volatile and (TPM 1.2 after TPM_SaveState)
    // save state (libtpms_backend_state.cpp).
    bool save_state(std::vector<uint8_t>& out) noexcept override;
    // TPMLIB_Terminate, TPMLIB_SetState of the three parts, TPMLIB_MainInit: the TPM runs on from
    // the restored volatile state. Then the state directory gets the restored permanent state
    // (and save state; the volatile file is removed), as libtpms's NV writes would have left it.
    // A blob libtpms refuses, or a directory that cannot be written, puts the previous running
    // state back (TPMLIB_GetState before the change) and returns false. A swtpm blob restores
    // here unless swtpm kept it encrypted.
    bool restore_state(std::span<const uint8_t> blob) noexcept override;

    const std::string& state_dir() const noexcept { return dir_.path(); }
    // The locked state directory (for the EK certificates' CA files, vmm/tpm/ek_ca_store.hpp).
    const TpmStateDir& state() const noexcept { return dir_; }
    bool running() const noexcept { return running_.load(std::memory_order_acquire); }
    // "tpm2-00.permall" for (2.0, "permall"); the name libtpms uses (TPM_PERMANENT_ALL_NAME,
    // TPM_SAVESTATE_NAME, TPM_VOLATILESTATE_NAME) prefixed as swtpm names its files.
    static std::string state_file_name(TpmVersion version, std::string_view libtpms_name);

private:
    // Claims the process-wide libtpms for `owner` for the lifetime of the object.
    class ProcessClaim {
    public:
        explicit ProcessClaim(LibtpmsBackend* owner);
        ~ProcessClaim();
        ProcessClaim(const ProcessClaim&) = delete;
        ProcessClaim& operator=(const ProcessClaim&) = delete;
    };

    static void check_state_files(const TpmStateDir& dir, TpmVersion version);
    // TPMLIB_SetBufferSize + TPMLIB_MainInit; on failure terminates again. mutex_ held.
    uint32_t start_locked() noexcept;
    void stop_locked() noexcept;
    void refresh_established_locked() noexcept;
    bool persist_restored_locked(const TpmStateBlob& state);

    // libtpms callbacks (static: libtpms passes no context); they act on the claimed backend.
    static uint32_t cb_nvram_init() noexcept;
    static uint32_t cb_nvram_loaddata(unsigned char** data, uint32_t* length, uint32_t tpm_number, const char* name) noexcept;
    static uint32_t cb_nvram_storedata(const unsigned char* data, uint32_t length, uint32_t tpm_number, const char* name) noexcept;
    static uint32_t cb_nvram_deletename(uint32_t tpm_number, const char* name, unsigned char must_exist) noexcept;
    static uint32_t cb_io_init() noexcept;
    static uint32_t cb_io_getlocality(uint32_t* locality, uint32_t tpm_number) noexcept;
    static uint32_t cb_io_getphysicalpresence(unsigned char* physical_presence, uint32_t tpm_number) noexcept;
    static LibtpmsBackend* active() noexcept;

    ProcessClaim claim_;  // first: released last, also when the constructor throws
    const TpmVersion version_;
    TpmStateDir dir_;
    size_t buffer_size_ = kMaxBufferSize;

    std::mutex mutex_;  // every libtpms call except TPMLIB_CancelCommand
    std::atomic<bool> running_{false};
    std::atomic<bool> shut_down_{false};
    std::atomic<uint8_t> locality_{0};        // what tpm_io_getlocality reports
    std::atomic<bool> established_{false};    // cache, see established()
    std::atomic<bool> store_failed_{false};   // the last state write failed (logged once)
    std::atomic<bool> process_failed_{false}; // TPMLIB_Process failed before (logged once)
    unsigned char* response_buf_ = nullptr;   // libtpms's response buffer (malloc'ed, it may realloc)
    uint32_t response_cap_ = 0;
    std::vector<uint8_t> command_buf_;
};

}  // namespace minivmm
