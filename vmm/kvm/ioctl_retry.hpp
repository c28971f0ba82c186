// ioctl(2) on a KVM fd, retried while a signal interrupts it (EINTR): the vCPU kick and the
// termination signals may arrive during any call. Returns what ioctl returned (errno on failure).
#pragma once

#include <sys/ioctl.h>

#include <cerrno>

namespace minivmm {

template <typename... A>
int xioctl(int fd, unsigned long request, A... arg) noexcept {
    int r;
    do {
        r = ::ioctl(fd, request, arg...);
    } while (r < 0 && errno == EINTR);
    return r;
}

}  // namespace minivmm
