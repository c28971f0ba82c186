#include "vmm/tpm/swtpm_backend.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/core.h>

#include "vmm/base/log.hpp"
#include "vmm/tpm/swtpm_stateblob.hpp"

namespace minivmm {

using swtpm::CtrlCmd;
using swtpm::CtrlReply;
using swtpm::CtrlRequest;
using swtpm::IoResult;
using swtpm::IoStatus;

namespace {

std::string start_hint(const std::string& path) {
    return fmt::format("start it with: swtpm socket --tpmstate dir=DIR --ctrl type=unixio,path={} --tpm2", path);
}

std::string connect_reason(int err) {
    switch (err) {
    case ENOTSOCK: return "not a socket";
    case ENAMETOOLONG: return "path empty or too long for a unix socket (at most 107 bytes)";
    case ECONNREFUSED: return "Connection refused (no swtpm is listening on it)";
    case EAGAIN: return "swtpm is not accepting connections";
    default: return std::strerror(err);
    }
}

// A path too long for a socket address gets no start hint: the hint would repeat the path.
[[noreturn]] void throw_connect_error(const std::string& path, int err) {
    if (err == ENAMETOOLONG)
        throw std::runtime_error(fmt::format("cannot connect to swtpm control socket: {}", connect_reason(err)));
    throw std::runtime_error(
        fmt::format("cannot connect to swtpm control socket {}: {}; {}", path, connect_reason(err), start_hint(path)));
}

}  // namespace

void SwtpmBackend::check_socket(const std::string& ctrl_socket_path) {
    struct stat st {};
    int err = 0;
    if (ctrl_socket_path.empty() || ctrl_socket_path.size() >= sizeof(sockaddr_un{}.sun_path)) err = ENAMETOOLONG;
    else if (::stat(ctrl_socket_path.c_str(), &st) != 0) err = errno;
    else if (!S_ISSOCK(st.st_mode)) err = ENOTSOCK;
    else if (::faccessat(AT_FDCWD, ctrl_socket_path.c_str(), W_OK, AT_EACCESS) != 0) err = errno;  // connect() needs it
    if (err != 0) throw_connect_error(ctrl_socket_path, err);
}

SwtpmBackend::SwtpmBackend(std::string path, UniqueFd ctrl, Limits limits) noexcept
    : path_(std::move(path)), limits_(limits), ctrl_(std::move(ctrl)) {}

std::unique_ptr<SwtpmBackend> SwtpmBackend::connect(const std::string& ctrl_socket_path, Limits limits) {
    UniqueFd ctrl;
    if (int err = swtpm::connect_unix(ctrl_socket_path, ctrl); err != 0) throw_connect_error(ctrl_socket_path, err);
    std::unique_ptr<SwtpmBackend> backend(new SwtpmBackend(ctrl_socket_path, std::move(ctrl), limits));
    backend->handshake();
    return backend;
}

std::unique_ptr<SwtpmBackend> SwtpmBackend::adopt(UniqueFd ctrl, const std::string& state_dir, Limits limits) {
    std::unique_ptr<SwtpmBackend> backend(new SwtpmBackend(state_dir, std::move(ctrl), limits));
    backend->managed_ = true;
    backend->handshake();
    return backend;
}

void SwtpmBackend::fail_setup(const std::string& reason) const {
    if (managed_) throw std::runtime_error(fmt::format("the swtpm minivmm started for {} failed: {}", path_, reason));
    throw std::runtime_error(fmt::format("cannot use swtpm control socket {}: {}; {}", path_, reason, start_hint(path_)));
}

// Set-up sequence: capabilities, data channel, version probe, buffer size (QEMU
// tpm_emulator_handle_device_opts + tpm_emulator_get_buffer_size).
void SwtpmBackend::handshake() {
    auto expect_reply = [this](CtrlCmd cmd, const CtrlRequest& request, CtrlReply& reply, int pass_fd) {
        IoResult io = transact(request, reply, pass_fd, swtpm::ctrl_cmd_name(cmd));
        if (io.status == IoStatus::timeout)
            fail_setup(fmt::format("no answer to {} within {} ms (is another program such as QEMU or swtpm_ioctl "
                                   "connected to it? swtpm serves one control connection at a time)",
                                   swtpm::ctrl_cmd_name(cmd), limits_.start.count()));
        if (!io.ok()) fail_setup(fmt::format("{} failed: {}", swtpm::ctrl_cmd_name(cmd), io.describe()));
    };

    CtrlReply caps_reply(CtrlCmd::get_capability);
    expect_reply(CtrlCmd::get_capability, swtpm::encode_ctrl(CtrlCmd::get_capability), caps_reply, -1);
    if (caps_reply.result() != swtpm::kPtmSuccess || !swtpm::parse_capabilities(caps_reply.payload(), caps_))
        fail_setup(fmt::format("CMD_GET_CAPABILITY failed: {}", swtpm::ptm_result_text(caps_reply.result())));
    if (uint32_t missing = swtpm::required_caps(TpmVersion::v1_2) & ~caps_; missing != 0)
        fail_setup(fmt::format("swtpm lacks control commands {} (capabilities 0x{:x})", swtpm::cap_names(missing), caps_));

    auto [ours, theirs] = swtpm::make_data_socketpair();
    CtrlReply fd_reply(CtrlCmd::set_datafd);
    expect_reply(CtrlCmd::set_datafd, swtpm::encode_ctrl(CtrlCmd::set_datafd), fd_reply, theirs.get());
    if (fd_reply.result() == swtpm::kPtmIoError)
        fail_setup("CMD_SET_DATAFD refused: swtpm already has a data channel (is QEMU or another minivmm using it?)");
    if (fd_reply.result() != swtpm::kPtmSuccess)
        fail_setup(fmt::format("CMD_SET_DATAFD failed: {}", swtpm::ptm_result_text(fd_reply.result())));
    data_ = std::move(ours);
    theirs.reset();  // swtpm holds its own copy now

    version_ = probe_version();
    if (uint32_t missing = swtpm::required_caps(version_) & ~caps_; missing != 0)
        fail_setup(fmt::format("swtpm lacks control commands {} (capabilities 0x{:x})", swtpm::cap_names(missing), caps_));

    // SET_BUFFERSIZE(0) only queries, and works while the TPM runs.
    CtrlReply size_reply(CtrlCmd::set_buffersize);
    expect_reply(CtrlCmd::set_buffersize, swtpm::encode_ctrl_u32(CtrlCmd::set_buffersize, 0), size_reply, -1);
    swtpm::BufferSizes sizes;
    if (size_reply.result() != swtpm::kPtmSuccess || !swtpm::parse_buffer_sizes(size_reply.payload(), sizes))
        fail_setup(fmt::format("CMD_SET_BUFFERSIZE failed: {}", swtpm::ptm_result_text(size_reply.result())));
    size_t size = std::min<size_t>(sizes.max, kMaxBufferSize);
    if (size < kTpmHeaderSize || size < sizes.min)
        fail_setup(fmt::format("unusable TPM buffer sizes (min {}, max {}; need a size within 10..{})", sizes.min,
                               sizes.max, kMaxBufferSize));
    buffer_size_ = size;
    log::info("swtpm at {}: TPM {}, buffer size {}, capabilities 0x{:x}", path_,
              version_ == TpmVersion::v2_0 ? "2.0" : "1.2", buffer_size_, caps_);
}

TpmVersion SwtpmBackend::probe_version() {
    if (probe(swtpm::kTpm2ReadClock, kTpm2TagNoSessions)) return TpmVersion::v2_0;
    if (probe(swtpm::kTpm12GetTicks, kTpm12TagRspCommand)) return TpmVersion::v1_2;
    fail_setup("it does not answer like a TPM 1.2 or TPM 2.0 (version probe failed)");
}

bool SwtpmBackend::probe(std::span<const uint8_t> command, uint16_t expected_tag) {
    auto deadline = swtpm::Clock::now() + limits_.start;
    IoResult io = swtpm::send_all(data_.get(), command, deadline);
    if (!io.ok()) fail_setup(fmt::format("cannot write to the TPM data channel: {}", io.describe()));
    std::array<uint8_t, kMaxBufferSize> buf{};
    swtpm::TpmResponseReader reader(buf, buf.size());
    io = await_answer(data_.get(), deadline, "the TPM version probe");
    if (io.ok()) io = swtpm::recv_tpm_response(data_.get(), reader, deadline);
    if (io.status == IoStatus::timeout)
        fail_setup(fmt::format("no TPM response on the data channel within {} ms", limits_.start.count()));
    if (!io.ok()) fail_setup(fmt::format("cannot read from the TPM data channel: {}", io.describe()));
    if (reader.state() != swtpm::TpmResponseReader::State::complete)
        fail_setup(fmt::format("malformed TPM response during the version probe (size field {})", reader.declared_size()));
    return swtpm::probe_response_matches(std::span<const uint8_t>(buf.data(), reader.size()), expected_tag);
}

IoResult SwtpmBackend::transact(const CtrlRequest& request, CtrlReply& reply, int pass_fd, std::string_view wait_for) noexcept {
    const bool patient = !wait_for.empty();
    auto deadline = swtpm::Clock::now() + (patient ? limits_.start : limits_.control);
    IoResult io = swtpm::send_all(ctrl_.get(), request.view(), deadline, pass_fd);
    if (!io.ok()) return io;
    if (patient) {
        io = await_answer(ctrl_.get(), deadline, wait_for);
        if (!io.ok()) return io;
    }
    return swtpm::recv_ctrl_reply(ctrl_.get(), reply, deadline);
}

IoResult SwtpmBackend::await_answer(int fd, swtpm::Clock::time_point deadline, std::string_view what) noexcept {
    constexpr auto kTick = std::chrono::seconds(5);
    const auto start = swtpm::Clock::now();
    for (auto next = start + kTick;; next += kTick) {
        IoResult io = swtpm::wait_readable(fd, std::min(next, deadline));
        if (io.status != IoStatus::timeout || next >= deadline) return io;
        auto waited = std::chrono::duration_cast<std::chrono::seconds>(swtpm::Clock::now() - start);
        log::warn("waiting for swtpm at {} to answer {} ({} s so far, giving up after {} s)", path_, what,
                  waited.count(), std::chrono::duration_cast<std::chrono::seconds>(limits_.start).count());
    }
}

bool SwtpmBackend::run_ctrl(CtrlCmd cmd, const CtrlRequest& request, CtrlReply& reply) noexcept {
    std::lock_guard lock(ctrl_mutex_);
    return run_ctrl_locked(cmd, request, reply);
}

bool SwtpmBackend::run_ctrl_locked(CtrlCmd cmd, const CtrlRequest& request, CtrlReply& reply, bool patient) noexcept {
    if (failed()) return false;
    IoResult io = transact(request, reply, -1, patient ? swtpm::ctrl_cmd_name(cmd) : std::string_view{});
    if (io.ok()) return true;
    try {
        mark_dead(io.status == IoStatus::timeout
                      ? fmt::format("no answer to {} within {} ms", swtpm::ctrl_cmd_name(cmd),
                                    (patient ? limits_.start : limits_.control).count())
                      : fmt::format("{} failed: {}", swtpm::ctrl_cmd_name(cmd), io.describe()));
    } catch (...) {
        mark_dead("control channel failure");
    }
    return false;
}

void SwtpmBackend::mark_dead(const std::string& reason) noexcept {
    abandon_.store(true, std::memory_order_release);  // a command in flight stops waiting
    if (dead_.exchange(true, std::memory_order_acq_rel)) return;
    if (shut_down_.load(std::memory_order_acquire)) return;
    log::error("swtpm at {} stopped responding: {}; the guest's TPM commands now fail until minivmm exits "
               "(it never reconnects under a running guest)", path_, reason);
}

bool SwtpmBackend::power_cycle() noexcept {
    std::lock_guard lock(ctrl_mutex_);
    if (failed()) return false;
    return start_locked(nullptr);
}

// CMD_STOP, CMD_SET_BUFFERSIZE, [CMD_SET_STATEBLOB per part of `state`], CMD_INIT (QEMU
// tpm_emulator_startup_tpm; with a state: tpm_emulator_post_load, INIT with DELETE_VOLATILE so
// the volatile state is used once and its file does not outlive it).
bool SwtpmBackend::start_locked(const TpmStateBlob* state) noexcept {
    established_cache_.store(kEstablishedUnknown, std::memory_order_release);
    cur_locality_.store(kNoLocality, std::memory_order_release);
    const uint32_t init_flags = state ? swtpm::kInitFlagDeleteVolatile : 0;
    if (!ctrl_step_locked(CtrlCmd::stop, swtpm::encode_ctrl(CtrlCmd::stop)) ||
        !ctrl_step_locked(CtrlCmd::set_buffersize,
                          swtpm::encode_ctrl_u32(CtrlCmd::set_buffersize, static_cast<uint32_t>(buffer_size_))) ||
        (state && !set_state_blobs_locked(*state)) ||
        !ctrl_step_locked(CtrlCmd::init, swtpm::encode_ctrl_u32(CtrlCmd::init, init_flags)))
        return false;
    // A command abandoned before this power cycle (machine reset) has answered by now: swtpm
    // finishes a TPM command before it serves the control channel. Its bytes are not a reply.
    if (size_t stale = swtpm::drain_pending(data_.get()); stale != 0)
        log::debug("swtpm: discarded {} bytes of an abandoned command's response", stale);
    abandon_.store(false, std::memory_order_release);
    return true;
}

bool SwtpmBackend::ctrl_step_locked(CtrlCmd cmd, const CtrlRequest& request) noexcept {
    CtrlReply reply(cmd);
    if (!run_ctrl_locked(cmd, request, reply, true)) return false;
    if (reply.result() != swtpm::kPtmSuccess) {
        log::error("swtpm at {}: {} failed with {} while starting the TPM{}", path_, swtpm::ctrl_cmd_name(cmd),
                   swtpm::ptm_result_text(reply.result()),
                   cmd == CtrlCmd::init ? " (is its --tpmstate directory intact?)" : "");
        return false;
    }
    swtpm::BufferSizes sizes;
    if (cmd == CtrlCmd::set_buffersize &&
        (!swtpm::parse_buffer_sizes(reply.payload(), sizes) || sizes.current != buffer_size_)) {
        log::error("swtpm at {}: CMD_SET_BUFFERSIZE set {} instead of {}", path_, sizes.current, buffer_size_);
        return false;
    }
    return true;
}

size_t SwtpmBackend::execute(uint8_t locality, std::span<const uint8_t> command, std::span<uint8_t> response) noexcept {
    if (response.size() < kTpmHeaderSize) return 0;
    if (failed()) return write_failure_response(version_, response);
    // swtpm reads a command with one read() and waits for at least 10 bytes: a shorter command
    // would stall the data channel, so it is answered here (guest-triggerable: debug log).
    if (size_t n = reject_bad_command_size(version_, command, buffer_size_, response); n != 0) {
        log::debug("swtpm: rejecting a {}-byte TPM command (allowed 10..{})", command.size(), buffer_size_);
        return n;
    }
    if (cur_locality_.load(std::memory_order_acquire) != locality) {
        CtrlReply reply(CtrlCmd::set_locality);
        if (!run_ctrl(CtrlCmd::set_locality, swtpm::encode_ctrl_locality(CtrlCmd::set_locality, locality), reply))
            return write_failure_response(version_, response);
        if (reply.result() != swtpm::kPtmSuccess) {
            log::debug("swtpm: CMD_SET_LOCALITY {} failed: {}", locality, swtpm::ptm_result_text(reply.result()));
            return write_failure_response(version_, response);
        }
        cur_locality_.store(locality, std::memory_order_release);
    }
    // A healthy swtpm sends nothing unasked; stale bytes would be taken as this command's reply.
    if (size_t stale = swtpm::drain_pending(data_.get()); stale != 0) {
        mark_dead(fmt::format("{} unexpected bytes on the data channel", stale));
        return write_failure_response(version_, response);
    }
    if (abandon_.load(std::memory_order_acquire)) return write_failure_response(version_, response);
    auto deadline = swtpm::Clock::now() + limits_.command;
    IoResult io = swtpm::send_all(data_.get(), command, deadline);
    swtpm::TpmResponseReader reader(response, buffer_size_);
    if (io.ok()) io = swtpm::recv_tpm_response(data_.get(), reader, deadline, &abandon_);
    if (io.ok() && reader.state() == swtpm::TpmResponseReader::State::complete) return reader.size();
    try {
        if (io.ok())
            mark_dead(fmt::format("malformed TPM response (size field {}, allowed 10..{})", reader.declared_size(),
                                  std::min(buffer_size_, response.size())));
        else if (io.status == IoStatus::timeout)
            mark_dead(fmt::format("no TPM response within {} ms", limits_.command.count()));
        else if (io.status == IoStatus::closed)
            mark_dead("the data channel was closed (swtpm exited?)");
        else if (io.status != IoStatus::aborted)
            mark_dead(fmt::format("data channel error: {}", io.describe()));
    } catch (...) {
        mark_dead("data channel failure");
    }
    return write_failure_response(version_, response);
}

void SwtpmBackend::cancel() noexcept {
    if (!(caps_ & swtpm::kCapCancelTpmCmd)) return;
    CtrlReply reply(CtrlCmd::cancel_tpm_cmd);
    if (run_ctrl(CtrlCmd::cancel_tpm_cmd, swtpm::encode_ctrl(CtrlCmd::cancel_tpm_cmd), reply) &&
        reply.result() != swtpm::kPtmSuccess)
        log::debug("swtpm: CMD_CANCEL_TPM_CMD: {}", swtpm::ptm_result_text(reply.result()));
}

// Cached like QEMU's established_flag_cached: ACCESS reads are frequent, the flag changes only
// through reset_established() or a TPM restart.
bool SwtpmBackend::established() noexcept {
    int cached = established_cache_.load(std::memory_order_acquire);
    if (cached != kEstablishedUnknown) return cached != 0;
    // Asked and cached under the control lock: a TPM restart (start_locked, which forgets the
    // cache under the same lock; a -restore runs one beside the machine's set-up) cannot fall
    // between the answer and its caching.
    std::lock_guard lock(ctrl_mutex_);
    cached = established_cache_.load(std::memory_order_acquire);
    if (cached != kEstablishedUnknown) return cached != 0;
    CtrlReply reply(CtrlCmd::get_tpm_established);
    if (!run_ctrl_locked(CtrlCmd::get_tpm_established, swtpm::encode_ctrl(CtrlCmd::get_tpm_established), reply))
        return false;
    bool flag = false;
    if (reply.result() != swtpm::kPtmSuccess || !swtpm::parse_established(reply.payload(), flag)) {
        log::debug("swtpm: CMD_GET_TPMESTABLISHED: {}", swtpm::ptm_result_text(reply.result()));
        return false;  // TPM not running yet: do not cache
    }
    established_cache_.store(flag ? 1 : 0, std::memory_order_release);
    return flag;
}

void SwtpmBackend::reset_established(uint8_t locality) noexcept {
    CtrlReply reply(CtrlCmd::reset_tpm_established);
    if (run_ctrl(CtrlCmd::reset_tpm_established, swtpm::encode_ctrl_locality(CtrlCmd::reset_tpm_established, locality),
                 reply) &&
        reply.result() != swtpm::kPtmSuccess)
        log::debug("swtpm: CMD_RESET_TPMESTABLISHED {}: {}", locality, swtpm::ptm_result_text(reply.result()));
    established_cache_.store(kEstablishedUnknown, std::memory_order_release);
}

void SwtpmBackend::shutdown() noexcept {
    std::lock_guard lock(ctrl_mutex_);
    if (failed()) return;
    CtrlReply reply(CtrlCmd::shutdown);
    if (run_ctrl_locked(CtrlCmd::shutdown, swtpm::encode_ctrl(CtrlCmd::shutdown), reply) &&
        reply.result() != swtpm::kPtmSuccess)
        log::warn("swtpm at {}: CMD_SHUTDOWN failed with {}", path_, swtpm::ptm_result_text(reply.result()));
    shut_down_.store(true, std::memory_order_release);
    dead_.store(true, std::memory_order_release);
    abandon_.store(true, std::memory_order_release);
}

}  // namespace minivmm
