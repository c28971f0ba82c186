// Whether a freshly started server (swtpm) listens on its Unix socket yet. Header-only, no doctest,
// so that tests and tools (tests/tools/tpm_backend_bench.cpp) share it.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

namespace minivmm::testing {

// True once something accepts connections on the Unix socket `path`. The socket file appears at
// swtpm's bind(), before its listen(); a connect in between is refused. The probe connection is
// closed at once, which swtpm takes for a client that left.
inline bool accepts_connections(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof(addr.sun_path)) return false;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    ::close(fd);
    return ok;
}

}  // namespace minivmm::testing
