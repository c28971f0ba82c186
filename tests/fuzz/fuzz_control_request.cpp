// libFuzzer target for the control socket's request parser (vmm/host/control_protocol.hpp): any
// local user who can open the socket sends these bytes. The input is one request line.
// Checks: no exception and no read outside the line (ASan: an exactly-sized heap block); an
// accepted request has only the fields its command allows and a usable save path; an accepted
// line is an object that parses back to the same request with whitespace around it; every
// refusal and every answer is one line of valid JSON (nlohmann-json parses it back), even one
// that quotes the raw input; an accepted path comes back unchanged in an answer.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <variant>

#include <nlohmann/json.hpp>

#include "tests/fuzz/fuzz_support.hpp"
#include "vmm/host/control_protocol.hpp"

using namespace minivmm;
using namespace minivmm::fuzz;

namespace {

void check_answer(const std::string& line) {
    check(line.find('\n') == std::string::npos);
    const auto j = nlohmann::json::parse(line, nullptr, false);
    check(!j.is_discarded() && j.is_object() && j.contains("ok"));
}

bool same(const ControlRequest& a, const ControlRequest& b) {
    return a.cmd == b.cmd && a.path == b.path && a.resume_after == b.resume_after;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // An exactly-sized copy: a read one past the end is an ASan report.
    auto bytes = std::make_unique<char[]>(size);
    std::copy(data, data + size, bytes.get());
    const std::string_view line(bytes.get(), size);
    const auto result = parse_control_request(line);
    if (const auto* error = std::get_if<std::string>(&result)) {
        check(!error->empty());
        check_answer(format_control_error(*error));
        check_answer(format_control_error(line));
        return 0;
    }
    const auto& request = std::get<ControlRequest>(result);
    check(size <= kMaxRequestLine);
    if (request.cmd == ControlRequest::Cmd::save) {
        check(save_path_problem(request.path) == nullptr);
    } else {
        check(request.path.empty() && !request.resume_after);
    }
    if (size + 2 <= kMaxRequestLine) {
        const auto again = parse_control_request(" " + std::string(line) + "\t");
        check(std::holds_alternative<ControlRequest>(again) && same(std::get<ControlRequest>(again), request));
    }
    const ControlField fields[] = {{"path", std::string_view(request.path)}, {"resume", request.resume_after}};
    check_answer(format_control_ok(fields));
    check_answer(format_control_status(request.resume_after, fields));
    const auto echoed = nlohmann::json::parse(format_control_ok(fields), nullptr, false);
    check(echoed["path"].get<std::string>() == request.path);  // accepted paths are valid UTF-8: no replacement
    return 0;
}
