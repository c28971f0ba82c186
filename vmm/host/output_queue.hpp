// Console output that never blocks a vCPU. The UART and debug port write while their vCPU holds
// the device lock; a blocking write() to a pipe nobody reads (or a stopped terminal) would hold
// that vCPU, and whoever waits for the lock, forever, and SIGTERM could not end minivmm. So
// device output goes into a bounded buffer and a writer thread of its own does the write()s:
// when the buffer is full, output is dropped and counted (logged once, by the writer), never
// waited for.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "devices/device.hpp"

namespace minivmm {

class FdSink;

class QueuedSink final : public ByteSink {
public:
    static constexpr size_t kDefaultCapacity = 256 * 1024;
    // How long the destructor waits for output that makes no progress (a reader that is gone
    // or stuck) before it gives up on it.
    static constexpr int kStallMs = 500;

    // Starts the writer thread, which writes to `out` (blocking as it likes). `name` is for the
    // log ("-serial"). Throws std::runtime_error if the thread cannot be started.
    QueuedSink(std::unique_ptr<FdSink> out, std::string name, size_t capacity = kDefaultCapacity);
    // Flushes what is buffered while the output makes progress; if it is stuck for kStallMs,
    // leaves the writer thread blocked (detached, owning the fd) and returns, so that minivmm can
    // exit: the thread ends with the process.
    ~QueuedSink() override;
    QueuedSink(const QueuedSink&) = delete;
    QueuedSink& operator=(const QueuedSink&) = delete;

    // Copies what fits into the buffer and wakes the writer; never blocks on the output.
    void write(std::span<const uint8_t> bytes) noexcept override;
    uint64_t dropped() const noexcept;
    // Waits until everything buffered has been written or `timeout_ms` passed without progress;
    // returns whether the buffer is empty.
    bool flush(int timeout_ms) noexcept;

private:
    // Shared with the writer thread, which may outlive the sink (see the destructor).
    struct State {
        std::unique_ptr<FdSink> out;
        std::string name;
        size_t capacity;
        mutable std::mutex mutex;
        std::condition_variable wake;      // writer: data or stop
        std::condition_variable progress;  // flush: the writer wrote something
        std::vector<uint8_t> buffer;       // bytes waiting, in order
        uint64_t written = 0;              // bytes handed to write() so far
        uint64_t dropped = 0;
        bool drop_logged = false;
        bool writing = false;              // the writer holds a chunk outside the lock
        bool stop = false;
        ~State();
    };
    static void run(std::shared_ptr<State> state) noexcept;

    std::shared_ptr<State> state_;
    std::thread thread_;
};

}  // namespace minivmm
