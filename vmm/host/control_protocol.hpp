// The control socket's protocol (vmm/host/control_socket.hpp carries it): one JSON object per
// line each way, UTF-8 (RFC 8259), like QEMU's QMP or Firecracker's API but much smaller.
//
//   request                                   answer
//   {"cmd":"pause"}                           {"ok":true}
//   {"cmd":"resume"}                          {"ok":true}
//   {"cmd":"save","path":"F"}                 {"ok":true}   (the VM stays paused)
//   {"cmd":"save","path":"F","resume":true}   {"ok":true}   (the VM runs on after the save)
//   {"cmd":"status"}                          {"ok":true,"state":"running"|"paused",...}
//   {"cmd":"quit"}                            {"ok":true}
//   anything refused                          {"ok":false,"error":"..."}
//
// Requests come from whoever can open the socket, so parsing never throws for bad input (only
// std::bad_alloc can escape) and refuses anything not exactly as above: unknown or duplicate keys,
// wrong types, lines over kMaxRequestLine bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace minivmm {

// The longest request line accepted, without its '\n'.
inline constexpr size_t kMaxRequestLine = 4096;

struct ControlRequest {
    enum class Cmd { pause, resume, save, status, quit };
    Cmd cmd = Cmd::status;
    std::string path;           // save only: not empty, no NUL byte, shorter than PATH_MAX
    bool resume_after = false;  // save only: "resume": true
};

// One request line (without '\n'; JSON whitespace around the object is fine) into a request, or
// the reason it is refused (one sentence, for the error answer).
std::variant<ControlRequest, std::string> parse_control_request(std::string_view line);

// Why `path` cannot name a save file (empty, a NUL byte, PATH_MAX bytes or more), or nullptr.
const char* save_path_problem(std::string_view path) noexcept;

// A value in an answer: a boolean, an integer or a string (any bytes; invalid UTF-8 is replaced
// by U+FFFD so that the answer stays valid JSON).
using ControlValue = std::variant<bool, std::int64_t, std::uint64_t, std::string_view>;
using ControlField = std::pair<std::string_view, ControlValue>;

// Answer lines, without the '\n'. Fields follow "ok" (and "state") in the order given; a field
// named "ok" (or "state" in a status answer) is ignored.
std::string format_control_ok(std::span<const ControlField> fields = {});
std::string format_control_status(bool paused, std::span<const ControlField> fields = {});
std::string format_control_error(std::string_view message);

// The command's name as requests spell it ("pause", ...).
const char* control_cmd_name(ControlRequest::Cmd cmd) noexcept;

}  // namespace minivmm
