// The control socket server (vmm/host/control_socket.hpp) with real clients on a real socket file:
// line assembly, one client at a time, clients that misbehave, and the socket file's life.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/unit/control_client.hpp"
#include "tests/unit/temp_dir.hpp"
#include "vmm/base/error.hpp"
#include "vmm/host/control_protocol.hpp"
#include "vmm/host/control_socket.hpp"

using namespace minivmm;
using namespace minivmm::testing;
using Lines = std::vector<std::string>;

namespace {

const std::string kStatus = R"({"cmd":"status"})";

ExitCode listen_error(const std::string& path) {
    try {
        ControlSocket::listen(path);
    } catch (const SetupError& e) {
        return e.code();
    }
    FAIL("listen succeeded: " << path);
    return kExitInternal;
}

// A socket file nobody listens on: what a minivmm killed by SIGKILL leaves behind.
void make_stale_socket(const std::string& path) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
}

}  // namespace

TEST_CASE("the socket file: 0600 whatever the umask, removed when the server goes") {
    TempDir dir;
    const std::string path = dir.sub("ctl");
    const mode_t old_umask = ::umask(0);
    {
        ControlSocket server = ControlSocket::listen(path);
        ::umask(old_umask);
        struct stat st {};
        REQUIRE(::lstat(path.c_str(), &st) == 0);
        CHECK(S_ISSOCK(st.st_mode));
        CHECK((st.st_mode & 07777) == 0600);
        CHECK(server.path() == path);
        CHECK(server.listen_fd() >= 0);
        CHECK(server.dir_fd() >= 0);
        CHECK((::fcntl(server.listen_fd(), F_GETFD) & FD_CLOEXEC) != 0);
        CHECK((::fcntl(server.listen_fd(), F_GETFL) & O_NONBLOCK) != 0);
        CHECK((::fcntl(server.dir_fd(), F_GETFL) & O_PATH) != 0);
        CHECK(server.poll_fds()[1] == -1);
        CHECK(server.on_readable().empty());  // nothing there: returns at once
        CHECK_FALSE(server.reply(R"({"ok":true})"));  // no client
        ControlSocket moved = std::move(server);      // the moved-from one removes nothing
    }
    CHECK_FALSE(std::filesystem::exists(std::filesystem::symlink_status(path)));
}

TEST_CASE("a request split across writes, two in one write, answers in order") {
    TempDir dir;
    ControlSocket server = ControlSocket::listen(dir.sub("ctl"));
    ControlClient client(server.path());
    CHECK(serve(server).empty());  // accepted
    CHECK(server.connected());
    client.send(R"({"cmd":)");
    CHECK(serve(server).empty());
    client.send(R"("status"})");
    CHECK(serve(server).empty());
    client.send("\n" + kStatus.substr(0, 3));
    CHECK(serve(server) == Lines{kStatus});
    CHECK(server.reply(format_control_status(false)));
    CHECK(client.line() == R"({"ok":true,"state":"running"})");
    client.send(kStatus.substr(3) + "\n{\"cmd\":\"pause\"}\n\n");
    CHECK(serve(server) == Lines{kStatus, R"({"cmd":"pause"})", ""});  // an empty line is a request (refused)
    CHECK(server.reply("1"));
    CHECK(server.reply("2"));
    CHECK(server.reply("3"));
    CHECK(client.line() == "1");
    CHECK(client.line() == "2");
    CHECK(client.line() == "3");
    CHECK(server.connected());
}

TEST_CASE("many requests in a burst arrive whole across several reads") {
    TempDir dir;
    ControlSocket server = ControlSocket::listen(dir.sub("ctl"));
    ControlClient client(server.path());
    std::string burst;
    for (int i = 0; i < 3000; ++i) burst += R"({"cmd":"save","path":"/s/)" + std::to_string(i) + "\"}\n";
    REQUIRE(burst.size() > 16 * 4096);  // more than one on_readable() takes
    client.send(burst);
    Lines all;
    while (all.size() < 3000) {
        const Lines lines = serve(server);
        REQUIRE_FALSE(lines.empty());
        all.insert(all.end(), lines.begin(), lines.end());
        for (size_t i = 0; i < lines.size(); ++i) {  // answers read as they come: each is a buffer of its own
            REQUIRE(server.reply(std::to_string(all.size() - lines.size() + i)));
            REQUIRE(client.line() == std::to_string(all.size() - lines.size() + i));
        }
    }
    CHECK(all.size() == 3000);
    CHECK(all.front() == R"({"cmd":"save","path":"/s/0"})");
    CHECK(all.back() == R"({"cmd":"save","path":"/s/2999"})");
}

TEST_CASE("a line of 4096 bytes is a request; one byte more is answered with an error and the client closed") {
    TempDir dir;
    ControlSocket server = ControlSocket::listen(dir.sub("ctl"));
    const std::string longest(kMaxRequestLine, 'x');
    SUBCASE("without a newline yet, after a good request") {
        ControlClient client(server.path());
        client.send(kStatus + "\n" + longest + "y");
        CHECK(serve(server) == Lines{kStatus});
        CHECK(server.connected());
        CHECK(server.poll_fds()[1] == -1);  // nothing more is read from it
        CHECK(server.reply(R"({"ok":true})"));
        CHECK(client.line() == R"({"ok":true})");
        CHECK(client.line() == R"({"ok":false,"error":"request line longer than 4096 bytes"})");
        CHECK(client.line() == "<EOF>");
        CHECK_FALSE(server.connected());
    }
    SUBCASE("exactly 4096 bytes is a line; one more, in pieces, is not, nor what follows it") {
        ControlClient client(server.path());
        CHECK(serve(server).empty());
        client.send(longest);
        CHECK(serve(server).empty());
        client.send("\n");
        CHECK(serve(server) == Lines{longest});
        CHECK(server.reply("a"));
        client.send(longest);
        CHECK(serve(server).empty());
        client.send("y\n" + kStatus + "\n");
        CHECK(serve(server).empty());
        CHECK_FALSE(server.connected());
        CHECK(client.line() == "a");
        CHECK(client.line() == R"({"ok":false,"error":"request line longer than 4096 bytes"})");
        CHECK(client.line() == "<EOF>");
    }
    // The next client is served as usual.
    ControlClient next(server.path());
    next.send(kStatus + "\n");
    CHECK(serve(server) == Lines{kStatus});
}

TEST_CASE("a second client gets one error line and is closed; the first goes on") {
    TempDir dir;
    ControlSocket server = ControlSocket::listen(dir.sub("ctl"));
    ControlClient first(server.path());
    CHECK(serve(server).empty());
    ControlClient second(server.path());
    second.send(kStatus + "\n");  // never read
    CHECK(serve(server).empty());
    CHECK(second.line() == R"({"ok":false,"error":"another client is connected"})");
    CHECK(second.line() == "<EOF>");
    first.send(kStatus + "\n");
    CHECK(serve(server) == Lines{kStatus});
    CHECK(server.reply("ok"));
    CHECK(first.line() == "ok");
    // Once the first leaves, a new client is taken.
    first.close();
    CHECK(serve(server).empty());
    CHECK_FALSE(server.connected());
    ControlClient third(server.path());
    third.send(kStatus + "\n");
    CHECK(serve(server) == Lines{kStatus});
    CHECK(server.connected());
}

TEST_CASE("a client that leaves mid-line: the partial line is dropped") {
    TempDir dir;
    ControlSocket server = ControlSocket::listen(dir.sub("ctl"));
    ControlClient client(server.path());
    client.send(kStatus + "\n" + R"({"cmd":"qu)");
    client.close();
    CHECK(serve(server) == Lines{kStatus});  // the whole line before it is still a request
    CHECK(server.connected());              // until it is answered
    CHECK_FALSE(server.reply(R"({"ok":true})"));  // nobody reads it: EPIPE
    CHECK_FALSE(server.connected());
    ControlClient quiet(server.path());
    quiet.send(R"({"cmd":"qu)");
    quiet.close();
    CHECK(serve(server).empty());  // accepted, read, closed in one go
    CHECK_FALSE(server.connected());
}

TEST_CASE("a client that stops sending (shutdown) gets every answer, then EOF") {
    TempDir dir;
    ControlSocket server = ControlSocket::listen(dir.sub("ctl"));
    ControlClient client(server.path());
    client.send(kStatus + "\n" + R"({"cmd":"quit"})" + "\n");
    client.shutdown_sending();
    CHECK(serve(server) == Lines{kStatus, R"({"cmd":"quit"})"});
    CHECK(server.poll_fds()[1] == -1);
    ControlClient other(server.path());  // refused while the first waits for its answers
    CHECK(server.on_readable().empty());
    CHECK(other.line() == R"({"ok":false,"error":"another client is connected"})");
    CHECK(server.reply("one"));
    CHECK(server.connected());
    CHECK(server.reply("two"));
    CHECK_FALSE(server.connected());
    CHECK(client.line() == "one");
    CHECK(client.line() == "two");
    CHECK(client.line() == "<EOF>");
}

TEST_CASE("a client that does not read its answers is closed, never waited for") {
    TempDir dir;
    ControlSocket server = ControlSocket::listen(dir.sub("ctl"));
    ControlClient client(server.path());
    client.send(kStatus + "\n");
    REQUIRE(serve(server).size() == 1);
    const std::string big = format_control_error(std::string(60000, 'e'));
    int sent = 0;
    while (sent < 1000 && server.reply(big)) ++sent;
    CHECK(sent < 1000);
    CHECK_FALSE(server.connected());
    CHECK_FALSE(server.reply("x"));
}

TEST_CASE("a stale socket is replaced; a live one, a file, a symlink or a directory is refused") {
    TempDir dir;
    const std::string path = dir.sub("ctl");
    make_stale_socket(path);
    {
        ControlSocket server = ControlSocket::listen(path);
        ControlClient client(path);  // the new socket answers
        CHECK(serve(server).empty());
        CHECK(server.connected());
        CHECK(listen_error(path) == kExitFile);  // someone listens
        CHECK(std::filesystem::is_socket(path));  // and it is still theirs
    }
    spit(path, {'k', 'e', 'e', 'p'});
    ::chmod(path.c_str(), 0640);
    CHECK(listen_error(path) == kExitFile);
    CHECK(slurp(path) == std::vector<uint8_t>{'k', 'e', 'e', 'p'});
    struct stat st {};
    REQUIRE(::lstat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0640);
    const std::string stale = dir.sub("stale");
    make_stale_socket(stale);
    const std::string link = dir.sub("link");
    REQUIRE(::symlink(stale.c_str(), link.c_str()) == 0);
    CHECK(listen_error(link) == kExitFile);
    CHECK(std::filesystem::is_symlink(link));
    REQUIRE(::mkdir(dir.sub("d").c_str(), 0700) == 0);
    CHECK(listen_error(dir.sub("d")) == kExitFile);
}

TEST_CASE("paths: the sun_path limit, no file name, a missing directory, a relative name") {
    TempDir dir;
    const std::string base = dir.path.string() + "/";
    const size_t limit = sizeof(sockaddr_un::sun_path) - 1;  // 107 bytes and the NUL
    REQUIRE(base.size() < limit);
    CHECK(listen_error(base + std::string(limit + 1 - base.size(), 'n')) == kExitUsage);
    CHECK_FALSE(std::filesystem::exists(base + std::string(limit + 1 - base.size(), 'n')));
    {
        ControlSocket longest = ControlSocket::listen(base + std::string(limit - base.size(), 'n'));
        CHECK(longest.path().size() == limit);
    }
    CHECK(listen_error("") == kExitUsage);
    CHECK(listen_error(base) == kExitUsage);
    CHECK(listen_error(base + "..") == kExitUsage);
    CHECK(listen_error(std::string("a\0b", 3)) == kExitUsage);
    CHECK(listen_error(base + "missing/ctl") == kExitFile);
    const UniqueFd cwd(::open(".", O_PATH | O_DIRECTORY | O_CLOEXEC));
    REQUIRE(::chdir(dir.path.c_str()) == 0);
    {
        ControlSocket relative = ControlSocket::listen("rel");
        CHECK(std::filesystem::is_socket(dir.sub("rel")));
        ControlClient client(dir.sub("rel"));
        client.send(kStatus + "\n");
        CHECK(serve(relative) == Lines{kStatus});
        REQUIRE(::fchdir(cwd.get()) == 0);  // the directory fd, not the cwd, is where it is removed
    }
    CHECK_FALSE(std::filesystem::exists(dir.sub("rel")));
}
