// What a -snapshot run does to the heap, under the real sandbox and without KVM: a thread (a vCPU)
// allocates the disk overlay in 4 KiB blocks, the main thread frees it at exit. Run as minivmm runs
// (sandbox::use_one_malloc_arena() first), it exits 0; with --per-thread-arenas (glibc's default)
// the free shrinks the thread's heap, glibc opens /proc/sys/vm/overcommit_memory, and the sandbox
// ends the process with status 7 and its line (tests/integration/test_sandbox_heap.py).
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "vmm/base/error.hpp"
#include "vmm/host/sandbox.hpp"

using namespace minivmm;

int main(int argc, char** argv) {
    const bool per_thread_arenas = argc > 1 && std::strcmp(argv[1], "--per-thread-arenas") == 0;
    if (!per_thread_arenas) sandbox::use_one_malloc_arena();
    int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);  // stands in for /dev/kvm
    try {
        sandbox::Policy policy;
        policy.kvm_fd = null_fd;
        sandbox::install(policy);
    } catch (const SetupError& e) {
        std::fprintf(stderr, "sandbox_heap_probe: %s\n", e.what());
        return e.code();
    }
    std::vector<std::unique_ptr<unsigned char[]>> overlay;
    std::thread vcpu([&] {
        sandbox::enter_vcpu_thread(0);
        for (int i = 0; i < 16384; ++i) overlay.emplace_back(new unsigned char[4096]());  // 64 MiB
    });
    vcpu.join();
    overlay.clear();
    static const char done[] = "sandbox_heap_probe: overlay freed\n";
    if (::write(STDERR_FILENO, done, sizeof done - 1) < 0) return 1;
    return 0;
}
