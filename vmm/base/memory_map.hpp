// RAII owner of host memory mappings (and, through unique_fd.hpp, of file descriptors).
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include "vmm/base/unique_fd.hpp"

namespace minivmm {

// An mmap()ed region, unmapped on destruction.
class Mapping {
public:
    Mapping() = default;
    // Anonymous private memory (guest RAM): zero-filled, populated lazily, MAP_NORESERVE.
    static Mapping anonymous(size_t size);
    // A shared mapping of a file descriptor (the vCPU's kvm_run area).
    static Mapping of_fd(int fd, size_t size);
    // A private, writable mapping of [offset, offset + size) of a file (guest RAM restored from a
    // snapshot): pages are read on first touch, writes stay in this process, never reach the file.
    static Mapping private_file(int fd, size_t size, uint64_t offset);

    Mapping(Mapping&& o) noexcept
        : addr_(std::exchange(o.addr_, nullptr)), size_(std::exchange(o.size_, 0)) {}
    Mapping& operator=(Mapping&& o) noexcept;
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    ~Mapping() { release(); }

    uint8_t* data() const noexcept { return static_cast<uint8_t*>(addr_); }
    size_t size() const noexcept { return size_; }

private:
    Mapping(void* addr, size_t size) noexcept : addr_(addr), size_(size) {}
    void release() noexcept;
    void* addr_ = nullptr;
    size_t size_ = 0;
};

}  // namespace minivmm
