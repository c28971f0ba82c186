// TpmBackend for an external swtpm ("swtpm socket --ctrl type=unixio,path=P"), speaking the
// control-channel protocol as QEMU's -tpmdev emulator does (backends/tpm/tpm_emulator.c):
// the TPM commands travel over a socketpair whose far end is handed to swtpm with
// CMD_SET_DATAFD; the control socket carries power, locality, cancel and established-flag
// commands. Every read and write is bounded by a timeout. When swtpm dies, hangs or talks
// nonsense the backend logs one line and from then on answers every command at once with a
// TPM failure response; it never throws after connect() and never blocks longer than one timeout.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>

#include "vmm/tpm/swtpm_channel.hpp"
#include "vmm/tpm/tpm_backend.hpp"
#include "vmm/tpm/tpm_state_blob.hpp"

namespace minivmm {

// How long each kind of exchange may take before swtpm counts as gone.
struct SwtpmLimits {
    // Set-up and every power-on (connect(), power_cycle(): CMD_INIT may load a large state,
    // and a loaded host may not schedule swtpm for a while). Progress lines every 5 s.
    std::chrono::milliseconds start{120000};
    // Control commands while the guest runs (locality, cancel, established flag).
    std::chrono::milliseconds control{10000};
    // One TPM command. Meanwhile the TIS shows the command executing, as real hardware
    // does; the guest's driver decides when to give up. 300 s is the longest TPM 2.0 command
    // duration Linux waits for (TPM2_DURATION_LONG_LONG).
    std::chrono::milliseconds command{300000};
};

class SwtpmBackend final : public TpmBackend {
public:
    static constexpr std::chrono::milliseconds kDefaultTimeout{10000};
    using Limits = SwtpmLimits;
    // The TIS buffer is 4096 bytes (QEMU caps the swtpm buffer size at TPM_TIS_BUFFER_MAX).
    static constexpr size_t kMaxBufferSize = 4096;

    // Connects to swtpm's control socket, checks its capabilities, passes it the data channel,
    // detects the TPM version (TPM 1.2 or 2.0, as QEMU's tpm_util_test_tpmdev) and queries the
    // buffer size. Does not start the TPM: call power_cycle() before the guest runs. `limits`
    // bound each kind of exchange (SwtpmLimits; set-up uses `start`). Throws std::runtime_error with one line
    // naming the socket and how to start swtpm if it is missing, refused, not a socket, does
    // not answer or is not a usable swtpm.
    // What connect() checks first, without connecting: the path fits a socket address, exists,
    // is a socket and may be connected to. Throws std::runtime_error with connect()'s message.
    static void check_socket(const std::string& ctrl_socket_path);
    static std::unique_ptr<SwtpmBackend> connect(const std::string& ctrl_socket_path, Limits limits = {});
    // Every exchange bounded by `timeout` (tests and tools).
    static std::unique_ptr<SwtpmBackend> connect(const std::string& ctrl_socket_path,
                                                 std::chrono::milliseconds timeout) {
        return connect(ctrl_socket_path, Limits{timeout, timeout, timeout});
    }

    // The same handshake on a control channel that is already connected: the swtpm minivmm
    // started itself (-tpm-swtpm, swtpm_process.hpp); messages name it by its state directory.
    static std::unique_ptr<SwtpmBackend> adopt(UniqueFd ctrl, const std::string& state_dir, Limits limits);

    ~SwtpmBackend() override = default;
    SwtpmBackend(const SwtpmBackend&) = delete;
    SwtpmBackend& operator=(const SwtpmBackend&) = delete;

    TpmVersion version() const noexcept override { return version_; }
    size_t buffer_size() const noexcept override { return buffer_size_; }
    void limit_buffer_size(size_t limit) noexcept override { buffer_size_ = std::min(buffer_size_, limit); }
    // CMD_STOP, CMD_SET_BUFFERSIZE(buffer_size()), CMD_INIT (QEMU tpm_emulator_startup_tpm).
    bool power_cycle() noexcept override;
    // `response` should hold buffer_size() bytes (at least 10, else nothing is written and 0 is
    // returned). Called from one thread at a time (the TPM worker).
    size_t execute(uint8_t locality, std::span<const uint8_t> command, std::span<uint8_t> response) noexcept override;
    void cancel() noexcept override;
    bool established() noexcept override;
    void reset_established(uint8_t locality) noexcept override;
    // CMD_SHUTDOWN: swtpm saves its state and exits. Afterwards every call fails fast, silently.
    void shutdown() noexcept override;
    // Stops waiting for the command in flight (execute() returns a failure response within
    // 100 ms); its late response is discarded by the next power_cycle().
    void abandon() noexcept override { abandon_.store(true, std::memory_order_release); }
    // CMD_GET_STATEBLOB for the permanent, volatile and savestate blobs (QEMU
    // tpm_emulator_get_state_blobs; needs PTM_CAP_GET_STATEBLOB). swtpm 0.8+ releases its
    // state-directory lock after the savestate blob (for migration); it is taken back with
    // CMD_LOCK_STORAGE when swtpm has it, as QEMU does when the VM goes on running.
    bool save_state(std::vector<uint8_t>& out) noexcept override;
    // The current state is fetched first (the TPM is started if it is not running yet), then
    // CMD_STOP, CMD_SET_BUFFERSIZE, CMD_SET_STATEBLOB for each non-empty part (as QEMU), CMD_INIT
    // with PTM_INIT_FLAG_DELETE_VOLATILE. If swtpm refuses the blob or the TPM does not start
    // from it, the fetched state is put back the same way and false returned. Needs
    // PTM_CAP_GET_STATEBLOB, _SET_STATEBLOB, _STOP.
    bool restore_state(std::span<const uint8_t> blob) noexcept override;

    const std::string& socket_path() const noexcept { return path_; }
    uint32_t capabilities() const noexcept { return caps_; }
    // True once swtpm stopped responding (or was shut down): commands now fail at once.
    bool failed() const noexcept { return dead_.load(std::memory_order_acquire); }

private:
    SwtpmBackend(std::string path, UniqueFd ctrl, Limits limits) noexcept;

    // The set-up half of connect(); throws.
    void handshake();
    [[noreturn]] void fail_setup(const std::string& reason) const;
    TpmVersion probe_version();
    bool probe(std::span<const uint8_t> command, uint16_t expected_tag);

    // One control command without locking or failure handling (ctrl_mutex_ held or set-up).
    // Bounded by limits_.control, or, given `wait_for` (what is awaited, for the progress
    // lines), by limits_.start with a progress line every 5 s.
    swtpm::IoResult transact(const swtpm::CtrlRequest& request, swtpm::CtrlReply& reply, int pass_fd = -1,
                             std::string_view wait_for = {}) noexcept;
    // Waits for `fd` to become readable until `deadline`, saying every 5 s what it waits for.
    swtpm::IoResult await_answer(int fd, swtpm::Clock::time_point deadline, std::string_view what) noexcept;
    // One control command at run time: takes ctrl_mutex_ unless `locked`, fails fast once dead,
    // marks the backend dead on I/O failure. Returns false if no reply was received.
    bool run_ctrl(swtpm::CtrlCmd cmd, const swtpm::CtrlRequest& request, swtpm::CtrlReply& reply) noexcept;
    bool run_ctrl_locked(swtpm::CtrlCmd cmd, const swtpm::CtrlRequest& request, swtpm::CtrlReply& reply,
                         bool patient = false) noexcept;
    // Starting the TPM (power_cycle, restore_state); ctrl_mutex_ held. Each failure logs one line.
    bool start_locked(const TpmStateBlob* state) noexcept;
    bool ctrl_step_locked(swtpm::CtrlCmd cmd, const swtpm::CtrlRequest& request) noexcept;
    // swtpm_backend_state.cpp; ctrl_mutex_ held. get_state_locked() reports a TPM that is not
    // running as `not_running` without logging.
    bool get_state_locked(TpmStateBlob& out, bool& not_running);
    bool get_part_locked(uint32_t type, TpmStatePart& out, bool& not_running);
    bool set_state_blobs_locked(const TpmStateBlob& state) noexcept;
    bool has_caps(uint32_t caps, std::string_view what) const noexcept;

    // Logs "swtpm at PATH stopped responding: REASON; ..." the first time only.
    void mark_dead(const std::string& reason) noexcept;

    static constexpr int kNoLocality = -1;
    static constexpr int kEstablishedUnknown = -1;

    const std::string path_;
    const Limits limits_;
    bool managed_ = false;  // adopt(): no socket path, and no "start it with" hint in messages
    TpmVersion version_ = TpmVersion::v2_0;
    size_t buffer_size_ = kMaxBufferSize;
    uint32_t caps_ = 0;

    std::mutex ctrl_mutex_;  // the control socket: one command and its reply at a time
    UniqueFd ctrl_;
    UniqueFd data_;     // used only by execute() (and the probe in connect())

    std::atomic<bool> dead_{false};
    std::atomic<bool> shut_down_{false};
    std::atomic<bool> abandon_{false};  // abandon(): stop waiting for the command in flight
    std::atomic<int> cur_locality_{kNoLocality};
    std::atomic<int> established_cache_{kEstablishedUnknown};
};

}  // namespace minivmm
