#include "vmm/base/unique_fd.hpp"

#include <unistd.h>

namespace minivmm {

void UniqueFd::reset(int fd) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
}

}  // namespace minivmm
