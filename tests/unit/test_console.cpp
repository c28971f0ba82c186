// Host-side console plumbing: FdSink, TerminalRawMode, StdinReader (vmm/host/console.hpp).
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "vmm/host/console.hpp"
#include "vmm/host/output_queue.hpp"

using namespace minivmm;
using namespace std::chrono_literals;

namespace {

// A pipe whose ends close themselves.
struct Pipe {
    int fds[2] = {-1, -1};
    Pipe() { REQUIRE(::pipe2(fds, O_CLOEXEC) == 0); }
    ~Pipe() {
        close_read();
        close_write();
    }
    int r() const { return fds[0]; }
    int w() const { return fds[1]; }
    void close_read() {
        if (fds[0] >= 0) ::close(fds[0]);
        fds[0] = -1;
    }
    void close_write() {
        if (fds[1] >= 0) ::close(fds[1]);
        fds[1] = -1;
    }
    void put(std::string_view s) const { REQUIRE(::write(fds[1], s.data(), s.size()) == static_cast<ssize_t>(s.size())); }
};

template <typename Predicate>
bool wait_until(Predicate done, std::chrono::milliseconds limit = 5000ms) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

// A thread-safe consumer for StdinReader.
struct Collector {
    std::mutex mutex;
    std::string text;
    size_t limit_per_call = SIZE_MAX;
    bool refuse_every_other = false;
    int calls = 0;
    size_t deliver(std::span<const uint8_t> bytes) {
        std::lock_guard lock(mutex);
        ++calls;
        if (refuse_every_other && calls % 2 == 0) return 0;
        const size_t n = std::min(bytes.size(), limit_per_call);
        text.append(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
        return n;
    }
    std::string get() {
        std::lock_guard lock(mutex);
        return text;
    }
    StdinReader::Deliver fn() {
        return [this](std::span<const uint8_t> b) { return deliver(b); };
    }
};

}  // namespace

// --- FdSink ---------------------------------------------------------------------------------

TEST_CASE("FdSink: writes everything to a pipe, including more than the pipe holds") {
    Pipe p;
    FdSink sink(p.w(), false);
    const std::string hello = "hello\n";
    sink.write(std::span(reinterpret_cast<const uint8_t*>(hello.data()), hello.size()));
    std::array<char, 16> buf{};
    REQUIRE(::read(p.r(), buf.data(), buf.size()) == 6);
    CHECK(std::string(buf.data(), 6) == hello);

    std::vector<uint8_t> big(300'000);
    for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i * 7);
    std::vector<uint8_t> got;
    std::thread reader([&] {
        std::array<uint8_t, 8192> chunk{};
        while (got.size() < big.size()) {
            const ssize_t n = ::read(p.r(), chunk.data(), chunk.size());
            if (n <= 0) break;
            got.insert(got.end(), chunk.begin(), chunk.begin() + n);
        }
    });
    sink.write(big);
    reader.join();
    CHECK(got == big);
}

TEST_CASE("FdSink: owned fd is closed, broken fd is survived") {
    Pipe p;
    const int dup = ::dup(p.w());
    REQUIRE(dup >= 0);
    {
        FdSink owner(dup, true);
    }
    CHECK(::fcntl(dup, F_GETFD) == -1);
    {
        FdSink borrower(p.w(), false);
    }
    CHECK(::fcntl(p.w(), F_GETFD) != -1);

    auto old = std::signal(SIGPIPE, SIG_IGN);
    p.close_read();
    FdSink broken(p.w(), false);
    const uint8_t b = 'x';
    broken.write(std::span(&b, 1));  // EPIPE: dropped, no crash, no hang
    std::signal(SIGPIPE, old);
    FdSink invalid(-1, false);
    invalid.write(std::span(&b, 1));
}

TEST_CASE("open_file_sink / make_byte_sink") {
    const auto dir = std::filesystem::temp_directory_path() / ("minivmm-legacy-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto path = (dir / "serial.log").string();
    {
        std::FILE* f = std::fopen(path.c_str(), "w");
        REQUIRE(f != nullptr);
        std::fputs("old contents that must disappear", f);
        std::fclose(f);
    }
    const mode_t old_mask = ::umask(022);
    {
        auto sink = make_byte_sink("file:" + path);
        REQUIRE(sink != nullptr);
        const std::string s = "boot\n";
        sink->write(std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
    }
    CHECK(std::filesystem::file_size(path) == 5);
    std::filesystem::remove(path);
    { auto sink = open_file_sink(path); }
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);  // private whatever the umask (vmm/host/README.md "Sandbox")
    ::umask(old_mask);

    // Never through a symbolic link, never into a file it must not be (the disk image): both
    // refused with the file left as it was.
    const auto precious = (dir / "precious.img").string();
    std::FILE* f = std::fopen(precious.c_str(), "w");
    REQUIRE(f != nullptr);
    std::fputs("disk contents", f);
    std::fclose(f);
    const auto link = (dir / "link.log").string();
    std::filesystem::create_symlink(precious, link);
    CHECK_THROWS_WITH_AS(open_file_sink(link),
                         ("cannot open '" + link + "' for writing: it is a symbolic link; give the file itself").c_str(),
                         std::runtime_error);
    const std::vector<FileIdentity> never{*identify_file(precious, "the disk image")};
    CHECK_THROWS_WITH_AS(open_file_sink(precious, never),
                         ("cannot open '" + precious + "' for writing: it is the disk image").c_str(), std::runtime_error);
    CHECK(std::filesystem::file_size(precious) == 13);
    std::filesystem::remove(link);
    std::filesystem::remove(precious);

    const std::string bad = (dir / "no-such-dir" / "x.log").string();
    try {
        open_file_sink(bad);
        FAIL("expected std::runtime_error");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()).find(bad) != std::string::npos);
    }
    CHECK_THROWS_AS(make_byte_sink("file:" + bad), std::runtime_error);
    CHECK(make_byte_sink("none") == nullptr);
    CHECK(make_byte_sink("null") == nullptr);
    auto out = make_byte_sink("stdio");
    REQUIRE(out != nullptr);
    CHECK(out->fd() == STDOUT_FILENO);
    CHECK_THROWS_AS(make_byte_sink("file:"), std::invalid_argument);
    CHECK_THROWS_AS(make_byte_sink("tcp:1234"), std::invalid_argument);
    CHECK_THROWS_AS(make_byte_sink(""), std::invalid_argument);
    std::filesystem::remove_all(dir);
}

// --- TerminalRawMode ------------------------------------------------------------------------

TEST_CASE("TerminalRawMode: no-op on a pipe, raw mode and restore on a pty") {
    Pipe p;
    {
        TerminalRawMode raw(p.r());
        CHECK_FALSE(raw.active());
    }
    TerminalRawMode::restore();  // nothing active: harmless

    const int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    REQUIRE(master >= 0);
    REQUIRE(::grantpt(master) == 0);
    REQUIRE(::unlockpt(master) == 0);
    const int slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
    REQUIRE(slave >= 0);
    termios before{};
    REQUIRE(::tcgetattr(slave, &before) == 0);
    REQUIRE((before.c_lflag & ECHO) != 0);
    {
        TerminalRawMode raw(slave);
        CHECK(raw.active());
        termios now{};
        REQUIRE(::tcgetattr(slave, &now) == 0);
        CHECK((now.c_lflag & (ECHO | ICANON | ISIG)) == 0);
        CHECK((now.c_iflag & (ICRNL | IXON)) == 0);
        CHECK(now.c_cc[VMIN] == 1);
        TerminalRawMode second(slave);  // only one owner of the saved state
        CHECK_FALSE(second.active());
        SUBCASE("static restore (signal path), then the destructor is harmless") {
            TerminalRawMode::restore();
            REQUIRE(::tcgetattr(slave, &now) == 0);
            CHECK((now.c_lflag & ECHO) != 0);
        }
    }
    termios after{};
    REQUIRE(::tcgetattr(slave, &after) == 0);
    CHECK(after.c_lflag == before.c_lflag);
    CHECK(after.c_iflag == before.c_iflag);
    {
        TerminalRawMode again(slave);  // the slot was released
        CHECK(again.active());
    }
    ::close(slave);
    ::close(master);
}

// --- StdinReader ----------------------------------------------------------------------------

TEST_CASE("StdinReader: forwards bytes and ends on EOF") {
    Pipe p;
    Collector c;
    StdinReader reader(c.fn(), {}, p.r());
    p.put("hello");
    CHECK(wait_until([&] { return c.get() == "hello"; }));
    CHECK_FALSE(reader.finished());
    p.put(" world");
    p.close_write();
    CHECK(wait_until([&] { return reader.finished(); }));
    CHECK(c.get() == "hello world");
}

TEST_CASE("StdinReader: Ctrl-A escapes") {
    Pipe p;
    Collector c;
    std::atomic<int> quits{0};
    StdinReader reader(c.fn(), [&] { ++quits; }, p.r());
    p.put("a\x01\x01" "b");  // Ctrl-A Ctrl-A -> one 0x01
    CHECK(wait_until([&] { return c.get() == "a\x01" "b"; }));
    p.put("\x01z");  // not a command: both bytes pass
    CHECK(wait_until([&] { return c.get() == "a\x01" "b\x01z"; }));
    p.put("\x01");  // escape split across reads
    std::this_thread::sleep_for(5ms);
    p.put("x");
    CHECK(wait_until([&] { return quits.load() == 1; }));
    p.put("c");
    CHECK(wait_until([&] { return c.get() == "a\x01" "b\x01z" "c"; }));
    CHECK(quits.load() == 1);
}

TEST_CASE("StdinReader: on_quit may call stop() on the reader thread") {
    Pipe p;
    Collector c;
    StdinReader* self = nullptr;
    StdinReader reader(c.fn(), [&] { self->stop(); }, p.r());
    self = &reader;
    p.put("\x01x");
    CHECK(wait_until([&] { return reader.finished(); }));
}

TEST_CASE("StdinReader: back-pressure keeps every byte, in order") {
    Pipe p;
    Collector c;
    c.limit_per_call = 1;
    c.refuse_every_other = true;  // like a 1-byte RBR the guest has not read yet
    std::string input;
    for (int i = 0; i < 1000; ++i) input.push_back(static_cast<char>('!' + i % 90));
    StdinReader reader(c.fn(), {}, p.r());
    p.put(input.substr(0, 300));
    p.put(input.substr(300));
    p.close_write();
    CHECK(wait_until([&] { return reader.finished(); }, 20000ms));
    CHECK(c.get() == input);
}

TEST_CASE("StdinReader: deliver can be swapped and cleared while running") {
    Pipe p;
    Collector a, b;
    StdinReader reader(a.fn(), {}, p.r());
    p.put("12");
    CHECK(wait_until([&] { return a.get() == "12"; }));
    reader.set_deliver(nullptr);  // machine being rebuilt: input is held
    p.put("34");
    std::this_thread::sleep_for(20ms);
    CHECK(a.get() == "12");
    reader.set_deliver(b.fn());
    CHECK(wait_until([&] { return b.get() == "34"; }));
    p.put("56");
    CHECK(wait_until([&] { return b.get() == "3456"; }));
    CHECK(a.get() == "12");
}

TEST_CASE("StdinReader: stop() ends an idle reader; read errors end it too") {
    Pipe p;
    Collector c;
    {
        StdinReader reader(c.fn(), {}, p.r());
        std::this_thread::sleep_for(5ms);
        reader.stop();
        CHECK(reader.finished());
        reader.stop();  // twice is fine
    }
    StdinReader negative(c.fn(), {}, -1);
    CHECK(wait_until([&] { return negative.finished(); }));
    // A closed fd number that no later open() will reuse: poll reports POLLNVAL, read EBADF.
    const int closed = ::dup2(p.r(), 1000);
    REQUIRE(closed == 1000);
    ::close(closed);
    StdinReader bad(c.fn(), {}, closed);
    CHECK(wait_until([&] { return bad.finished(); }));
    CHECK(c.get().empty());
}

// --- QueuedSink: device output never blocks the writer (a vCPU holding the device lock) ------

TEST_CASE("QueuedSink: a pipe nobody reads neither blocks write() nor the destructor") {
    ::signal(SIGPIPE, SIG_IGN);
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    ::fcntl(fds[1], F_SETPIPE_SZ, 4096);
    {
        QueuedSink sink(std::make_unique<FdSink>(fds[1], false), "test", 64 * 1024);
        const std::vector<uint8_t> piece(1024, 'x');
        for (int i = 0; i < 1024; ++i) sink.write(piece);  // 1 MiB into 4 KiB of pipe + 64 KiB of buffer
        CHECK(sink.dropped() >= 1024 * 1024 - 64 * 1024 - 2 * 4096 - 4096);
        CHECK_FALSE(sink.flush(100));
    }  // gives up on the stuck writer after kStallMs; a write() or destructor that blocked would
       // hang here until meson's timeout fails the test (no wall-clock assertion: time is
       // measured by benchmarks, never asserted in tests)
    ::close(fds[0]);  // the detached writer's write() now fails with EPIPE and the thread ends
    // fds[1] stays open: the detached writer may still be inside write() on it, and closing it
    // under that thread would be a race (and could hand its number to an unrelated open()).
}

TEST_CASE("QueuedSink: a reader gets every byte in order and the destructor flushes") {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    std::string received;
    std::thread reader([&] {
        char buf[4096];
        for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) received.append(buf, static_cast<size_t>(n));
    });
    std::string sent;
    {
        QueuedSink sink(std::make_unique<FdSink>(fds[1], true), "test");
        for (int i = 0; i < 2000; ++i) {
            const std::string line = "line " + std::to_string(i) + "\n";
            sent += line;
            sink.write(std::span(reinterpret_cast<const uint8_t*>(line.data()), line.size()));
        }
        CHECK(sink.dropped() == 0);
    }  // flushed, then the fd is closed: the reader sees EOF
    reader.join();
    ::close(fds[0]);
    CHECK(received == sent);
}
