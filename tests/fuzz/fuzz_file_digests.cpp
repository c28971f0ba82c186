// libFuzzer target for the -kernel-cache digest record (vmm/file_digests.hpp): a file in a directory
// the user names, so any bytes may be there. The input is the record's text, read for a fixed stamp.
// Checks: parse() never reads outside the text (ASan: an exactly-sized heap block); what it accepts
// has only the four algorithms, each once, with digests of their size, and formats back to exactly
// the input (the format has one spelling per record).
#include <cstddef>
#include <cstdint>
#include <string>

#include "tests/fuzz/fuzz_support.hpp"
#include "vmm/file_digests.hpp"

using namespace minivmm;
using namespace minivmm::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    const FileStamp stamp{2049, 131077, 8247232, 1796604995547746658, 1796604995547746659};
    const auto digests = file_digests::parse(text, stamp);
    if (!digests) return 0;
    for (size_t i = 0; i < digests->size(); ++i) {
        const tcg_log::Digest& d = (*digests)[i];
        const size_t want = d.algorithm == tcg_log::kAlgSha1     ? 20
                            : d.algorithm == tcg_log::kAlgSha256 ? 32
                            : d.algorithm == tcg_log::kAlgSha384 ? 48
                            : d.algorithm == tcg_log::kAlgSha512 ? 64
                                                                 : 0;
        check(want != 0 && d.value.size() == want);
        for (size_t j = 0; j < i; ++j) check((*digests)[j].algorithm != d.algorithm);
    }
    check(file_digests::format(stamp, *digests) == text);
    return 0;
}
