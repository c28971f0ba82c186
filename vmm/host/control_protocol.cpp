// JSON through nlohmann-json with exceptions turned off where input decides (parse(..., false)
// yields a "discarded" value; dump() with error_handler_t::replace never throws on bad UTF-8),
// so only std::bad_alloc can leave these functions.
#include "vmm/host/control_protocol.hpp"

#include <limits.h>

#include <algorithm>
#include <array>
#include <type_traits>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

namespace minivmm {

namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;
using Cmd = ControlRequest::Cmd;

constexpr std::array<std::pair<std::string_view, Cmd>, 5> kCmds{{
    {"pause", Cmd::pause}, {"resume", Cmd::resume}, {"save", Cmd::save}, {"status", Cmd::status}, {"quit", Cmd::quit}}};

// Client text quoted in an error: at most this many bytes (format_control_error repairs a cut
// UTF-8 sequence).
constexpr size_t kQuoteMax = 40;

std::string quote(std::string_view text) {
    std::string q = "\"" + std::string(text.substr(0, kQuoteMax));
    q += text.size() > kQuoteMax ? "...\"" : "\"";
    return q;
}

std::string dump(const OrderedJson& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

void add_fields(OrderedJson& j, std::span<const ControlField> fields, std::string_view reserved) {
    for (const auto& [key, value] : fields) {
        if (key == "ok" || key == reserved) continue;
        OrderedJson& slot = j[std::string(key)];
        std::visit([&slot](const auto& v) {
            if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::string_view>) slot = std::string(v);
            else slot = v;
        }, value);
    }
}

}  // namespace

const char* control_cmd_name(ControlRequest::Cmd cmd) noexcept {
    for (const auto& [name, c] : kCmds)
        if (c == cmd) return name.data();
    return "?";
}

const char* save_path_problem(std::string_view path) noexcept {
    if (path.empty()) return "\"path\" is empty";
    if (path.find('\0') != std::string_view::npos) return "\"path\" contains a NUL byte";
    if (path.size() >= PATH_MAX) return "\"path\" is longer than PATH_MAX";  // PATH_MAX counts the NUL
    return nullptr;
}

std::variant<ControlRequest, std::string> parse_control_request(std::string_view line) {
    if (line.size() > kMaxRequestLine) return fmt::format("request longer than {} bytes", kMaxRequestLine);
    // nlohmann keeps the last of duplicate keys silently; count the top-level object's keys as
    // they are parsed (depth 1) and compare with what it ends up holding.
    size_t top_keys = 0;
    auto count_keys = [&top_keys](int depth, Json::parse_event_t event, Json&) {
        if (depth == 1 && event == Json::parse_event_t::key) ++top_keys;
        return true;
    };
    const Json j = Json::parse(line.begin(), line.end(), count_keys, /*allow_exceptions=*/false);
    if (j.is_discarded()) return std::string("request is not valid JSON");
    if (!j.is_object()) return std::string("request is not a JSON object");
    if (top_keys != j.size()) return std::string("request has a duplicate key");

    const auto cmd_it = j.find("cmd");
    if (cmd_it == j.end()) return std::string("request has no \"cmd\"");
    if (!cmd_it->is_string()) return std::string("\"cmd\" must be a string");
    const auto& cmd_name = cmd_it->get_ref<const std::string&>();
    const auto known = std::find_if(kCmds.begin(), kCmds.end(), [&](const auto& c) { return c.first == cmd_name; });
    if (known == kCmds.end()) return "unknown cmd " + quote(cmd_name);
    ControlRequest request;
    request.cmd = known->second;

    const bool save = request.cmd == Cmd::save;
    for (const auto& [key, value] : j.items()) {
        if (key == "cmd" || (save && (key == "path" || key == "resume"))) continue;
        return fmt::format("unknown key {} for cmd \"{}\"", quote(key), cmd_name);
    }
    if (!save) return request;

    const auto path_it = j.find("path");
    if (path_it == j.end()) return std::string("save needs a \"path\"");
    if (!path_it->is_string()) return std::string("\"path\" must be a string");
    request.path = path_it->get<std::string>();
    if (const char* problem = save_path_problem(request.path)) return std::string(problem);
    if (const auto resume_it = j.find("resume"); resume_it != j.end()) {
        if (!resume_it->is_boolean()) return std::string("\"resume\" must be true or false");
        request.resume_after = resume_it->get<bool>();
    }
    return request;
}

std::string format_control_ok(std::span<const ControlField> fields) {
    OrderedJson j;
    j["ok"] = true;
    add_fields(j, fields, "ok");
    return dump(j);
}

std::string format_control_status(bool paused, std::span<const ControlField> fields) {
    OrderedJson j;
    j["ok"] = true;
    j["state"] = paused ? "paused" : "running";
    add_fields(j, fields, "state");
    return dump(j);
}

std::string format_control_error(std::string_view message) {
    OrderedJson j;
    j["ok"] = false;
    j["error"] = std::string(message);
    return dump(j);
}

}  // namespace minivmm
