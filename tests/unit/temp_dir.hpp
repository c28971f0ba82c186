// A fresh directory under /tmp for one test, removed with its contents at the end: the one helper
// every unit test that needs files uses (TPM state directories, swtpm sockets, -kernel files).
#pragma once

#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>

namespace minivmm::testing {

struct TempDir {
    std::filesystem::path path;
    TempDir() {
        char tmpl[] = "/tmp/minivmm-test-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    // The path of `name` inside, as a string.
    std::string sub(const std::string& name) const { return (path / name).string(); }
};

}  // namespace minivmm::testing
