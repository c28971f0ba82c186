#include "vmm/base/memory_map.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace minivmm {

Mapping Mapping::anonymous(size_t size) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        throw std::runtime_error("cannot allocate " + std::to_string(size >> 20) + " MiB of guest memory: " +
                                 std::strerror(errno));
    return Mapping(p, size);
}

Mapping Mapping::of_fd(int fd, size_t size) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) throw std::runtime_error(std::string("mmap failed: ") + std::strerror(errno));
    return Mapping(p, size);
}

Mapping Mapping::private_file(int fd, size_t size, uint64_t offset) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, static_cast<off_t>(offset));
    if (p == MAP_FAILED) throw std::runtime_error(std::string("mmap of the snapshot's RAM failed: ") + std::strerror(errno));
    return Mapping(p, size);
}

Mapping& Mapping::operator=(Mapping&& o) noexcept {
    if (this != &o) {
        release();
        addr_ = std::exchange(o.addr_, nullptr);
        size_ = std::exchange(o.size_, 0);
    }
    return *this;
}

void Mapping::release() noexcept {
    if (addr_) ::munmap(addr_, size_);
    addr_ = nullptr;
    size_ = 0;
}

}  // namespace minivmm
