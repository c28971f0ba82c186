#include "vmm/host/output_queue.hpp"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <system_error>

#include <fmt/core.h>

#include "vmm/host/console.hpp"
#include "vmm/base/log.hpp"

namespace minivmm {

namespace {

// One write() at a time is at most this much, so that the destructor sees progress on a slow
// reader (and a pipe write of this size fits in one page of pipe buffer).
constexpr size_t kChunk = 4096;

}  // namespace

QueuedSink::State::~State() = default;

QueuedSink::QueuedSink(std::unique_ptr<FdSink> out, std::string name, size_t capacity)
    : state_(std::make_shared<State>()) {
    state_->out = std::move(out);
    state_->name = std::move(name);
    state_->capacity = std::max<size_t>(capacity, 1);
    state_->buffer.reserve(state_->capacity);
    try {
        thread_ = std::thread(run, state_);
    } catch (const std::system_error& e) {
        throw std::runtime_error(fmt::format("{}: cannot start the output thread: {}", state_->name, e.what()));
    }
}

QueuedSink::~QueuedSink() {
    const bool drained = flush(kStallMs);
    size_t abandoned = 0;
    {
        std::lock_guard lock(state_->mutex);
        state_->stop = true;
        abandoned = state_->buffer.size();
        if (!drained) state_->buffer.clear();  // nobody is reading: do not try any longer
    }
    state_->wake.notify_all();
    if (drained) {
        thread_.join();
    } else {
        // The writer is blocked in write(). It holds its own reference to the state (and the
        // fd) and ends with the process; joining could wait forever.
        log::debug("{}: output stalled for {} ms at exit; {} buffered bytes not written", state_->name, kStallMs,
                   abandoned);
        thread_.detach();
    }
}

void QueuedSink::write(std::span<const uint8_t> bytes) noexcept {
    if (bytes.empty()) return;
    {
        std::lock_guard lock(state_->mutex);
        if (state_->stop) return;
        const size_t room = state_->capacity - std::min(state_->capacity, state_->buffer.size());
        const size_t n = std::min(room, bytes.size());
        // reserve()d in the constructor: appending within the capacity never allocates.
        state_->buffer.insert(state_->buffer.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
        state_->dropped += bytes.size() - n;
    }
    state_->wake.notify_one();
}

uint64_t QueuedSink::dropped() const noexcept {
    std::lock_guard lock(state_->mutex);
    return state_->dropped;
}

bool QueuedSink::flush(int timeout_ms) noexcept {
    std::unique_lock lock(state_->mutex);
    while (!state_->buffer.empty() || state_->writing) {
        const uint64_t before = state_->written;
        const bool moved = state_->progress.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
            return state_->written != before || (state_->buffer.empty() && !state_->writing);
        });
        if (!moved) return false;
    }
    return true;
}

void QueuedSink::run(std::shared_ptr<State> state) noexcept {
    std::vector<uint8_t> chunk;
    chunk.reserve(kChunk);
    std::unique_lock lock(state->mutex);
    for (;;) {
        state->wake.wait(lock, [&] { return state->stop || !state->buffer.empty(); });
        if (state->buffer.empty()) break;  // stopped, and everything is written
        const size_t n = std::min(kChunk, state->buffer.size());
        chunk.assign(state->buffer.begin(), state->buffer.begin() + static_cast<std::ptrdiff_t>(n));
        state->buffer.erase(state->buffer.begin(), state->buffer.begin() + static_cast<std::ptrdiff_t>(n));
        state->writing = true;
        const uint64_t dropped = state->dropped;
        const bool log_drop = dropped > 0 && !state->drop_logged;
        state->drop_logged = state->drop_logged || log_drop;
        lock.unlock();
        if (log_drop)
            log::warn("{}: the output is not read fast enough; output that does not fit in {} KiB is dropped ({} bytes "
                      "so far)",
                      state->name, state->capacity / 1024, dropped);
        state->out->write(chunk);
        lock.lock();
        state->written += n;
        state->writing = false;
        state->progress.notify_all();
    }
    state->writing = false;
    state->progress.notify_all();
}

}  // namespace minivmm
