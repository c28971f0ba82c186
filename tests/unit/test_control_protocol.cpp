// The control socket's protocol (vmm/host/control_protocol.hpp): every request, every refusal,
// and answers that are valid JSON whatever bytes go into them (checked by parsing them back
// with nlohmann-json, the parser a client in C++ would use, and byte for byte).
#include <doctest/doctest.h>

#include <limits.h>

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vmm/host/control_protocol.hpp"

using namespace minivmm;
using Cmd = ControlRequest::Cmd;

namespace {

ControlRequest accepted(std::string_view line) {
    auto r = parse_control_request(line);
    INFO(line);
    if (auto* e = std::get_if<std::string>(&r)) FAIL("refused: " << *e);
    return std::get<ControlRequest>(r);
}

std::string refused(std::string_view line) {
    auto r = parse_control_request(line);
    INFO(line);
    REQUIRE(std::holds_alternative<std::string>(r));
    return std::get<std::string>(r);
}

}  // namespace

TEST_CASE("every request") {
    CHECK(accepted(R"({"cmd":"pause"})").cmd == Cmd::pause);
    CHECK(accepted(R"({"cmd":"resume"})").cmd == Cmd::resume);
    CHECK(accepted(R"({"cmd":"status"})").cmd == Cmd::status);
    CHECK(accepted(R"({"cmd":"quit"})").cmd == Cmd::quit);
    ControlRequest save = accepted(R"({"cmd":"save","path":"/var/lib/vm/snap"})");
    CHECK(save.cmd == Cmd::save);
    CHECK(save.path == "/var/lib/vm/snap");
    CHECK_FALSE(save.resume_after);
    CHECK(accepted(R"({"path":"s","resume":true,"cmd":"save"})").resume_after);
    CHECK_FALSE(accepted(R"({"cmd":"save","path":"s","resume":false})").resume_after);
    CHECK(accepted(R"({"cmd":"pause"})").path.empty());
    for (Cmd c : {Cmd::pause, Cmd::resume, Cmd::save, Cmd::status, Cmd::quit})
        CHECK(std::string(control_cmd_name(c)) != "?");
    CHECK(std::string(control_cmd_name(Cmd::save)) == "save");
}

TEST_CASE("JSON whitespace anywhere between tokens; nothing else") {
    CHECK(accepted(" \t{ \"cmd\" :\r\n \"status\" }\r").cmd == Cmd::status);
    CHECK(accepted("{\"cmd\":\"save\",\n\"path\":\"a b\"\t}").path == "a b");
    CHECK(refused("\f{\"cmd\":\"status\"}") == "request is not valid JSON");      // form feed: not JSON whitespace
    CHECK(refused("\xC2\xA0{\"cmd\":\"status\"}") == "request is not valid JSON");  // U+00A0
    CHECK(refused(R"({"cmd":"status"} {"cmd":"quit"})") == "request is not valid JSON");
    CHECK(refused(R"({"cmd":"status"} // hi)") == "request is not valid JSON");  // no comments
    CHECK(refused(R"({"cmd":"status",})") == "request is not valid JSON");
    CHECK(refused("") == "request is not valid JSON");
    CHECK(refused("   ") == "request is not valid JSON");
}

TEST_CASE("escapes in strings are decoded; invalid UTF-8 and lone surrogates are not JSON") {
    CHECK(accepted(R"({"cmd":"s\u0074atus"})").cmd == Cmd::status);
    CHECK(accepted(R"({"cmd":"save","path":"a\"b\\c\/d\u00e9\ud83d\ude00"})").path == "a\"b\\c/d\xC3\xA9\xF0\x9F\x98\x80");
    CHECK(accepted("{\"cmd\":\"save\",\"path\":\"\xC3\xA9\"}").path == "\xC3\xA9");
    CHECK(refused("{\"cmd\":\"save\",\"path\":\"\xC3\"}") == "request is not valid JSON");
    CHECK(refused("{\"cmd\":\"save\",\"path\":\"\xFF\"}") == "request is not valid JSON");
    CHECK(refused("{\"cmd\":\"save\",\"path\":\"\xED\xA0\x80\"}") == "request is not valid JSON");  // CESU surrogate
    CHECK(refused(R"({"cmd":"save","path":"\ud800"})") == "request is not valid JSON");
    CHECK(refused("{\"cmd\":\"save\",\"path\":\"a\tb\"}") == "request is not valid JSON");  // raw control character
}

TEST_CASE("not an object") {
    for (const char* line : {"[]", R"(["cmd","status"])", R"("status")", "42", "null", "true"})
        CHECK(refused(line) == "request is not a JSON object");
    CHECK(refused("{") == "request is not valid JSON");
    CHECK(refused("pause") == "request is not valid JSON");
}

TEST_CASE("cmd missing, of the wrong type or unknown") {
    CHECK(refused("{}") == "request has no \"cmd\"");
    CHECK(refused(R"({"CMD":"status"})") == "request has no \"cmd\"");  // keys are case-sensitive
    for (const char* line : {R"({"cmd":1})", R"({"cmd":null})", R"({"cmd":["status"]})", R"({"cmd":{"x":1}})", R"({"cmd":true})"})
        CHECK(refused(line) == "\"cmd\" must be a string");
    CHECK(refused(R"({"cmd":"Pause"})") == "unknown cmd \"Pause\"");
    CHECK(refused(R"({"cmd":""})") == "unknown cmd \"\"");
    CHECK(refused(R"({"cmd":"pause\u0000"})") == std::string("unknown cmd \"pause\0\"", 20));
    const std::string long_cmd(100, 'x');
    CHECK(refused(R"({"cmd":")" + long_cmd + "\"}") == "unknown cmd \"" + std::string(40, 'x') + "...\"");
}

TEST_CASE("unknown keys, for every command; path and resume belong to save") {
    CHECK(refused(R"({"cmd":"status","verbose":true})") == "unknown key \"verbose\" for cmd \"status\"");
    CHECK(refused(R"({"cmd":"pause","path":"x"})") == "unknown key \"path\" for cmd \"pause\"");
    CHECK(refused(R"({"cmd":"resume","resume":true})") == "unknown key \"resume\" for cmd \"resume\"");
    CHECK(refused(R"({"cmd":"quit","":1})") == "unknown key \"\" for cmd \"quit\"");
    CHECK(refused(R"({"cmd":"save","path":"x","Path":"y"})") == "unknown key \"Path\" for cmd \"save\"");
}

TEST_CASE("duplicate keys are refused, not resolved") {
    CHECK(refused(R"({"cmd":"status","cmd":"quit"})") == "request has a duplicate key");
    CHECK(refused(R"({"cmd":"save","path":"a","path":"b"})") == "request has a duplicate key");
    CHECK(refused(R"({"cmd":"save","path":"a","resume":true,"resume":false})") == "request has a duplicate key");
    CHECK(refused(R"({"cmd":"save","path":"a","p\u0061th":"b"})") == "request has a duplicate key");  // after decoding
    // Inside a nested value a duplicate is no worse than the nested value itself.
    CHECK(refused(R"({"cmd":"status","x":{"a":1,"a":2}})") == "unknown key \"x\" for cmd \"status\"");
}

TEST_CASE("save: path and resume of the right types and shapes") {
    CHECK(refused(R"({"cmd":"save"})") == "save needs a \"path\"");
    CHECK(refused(R"({"cmd":"save","resume":true})") == "save needs a \"path\"");
    for (const char* line : {R"({"cmd":"save","path":1})", R"({"cmd":"save","path":null})", R"({"cmd":"save","path":["a"]})",
                             R"({"cmd":"save","path":{"a":"b"}})", R"({"cmd":"save","path":false})"})
        CHECK(refused(line) == "\"path\" must be a string");
    CHECK(refused(R"({"cmd":"save","path":""})") == "\"path\" is empty");
    CHECK(refused(R"({"cmd":"save","path":"a\u0000b"})") == "\"path\" contains a NUL byte");
    for (const char* line : {R"({"cmd":"save","path":"a","resume":1})", R"({"cmd":"save","path":"a","resume":"true"})",
                             R"({"cmd":"save","path":"a","resume":null})", R"({"cmd":"save","path":"a","resume":{}})"})
        CHECK(refused(line) == "\"resume\" must be true or false");
}

TEST_CASE("huge numbers and deep nesting are refused without trouble") {
    // nlohmann-json refuses a number out of double's range outright.
    CHECK(refused(R"({"cmd":"save","path":"a","resume":1e99999})") == "request is not valid JSON");
    CHECK(refused(R"({"cmd":"save","path":"a","resume":1e308})") == "\"resume\" must be true or false");
    CHECK(refused(R"({"cmd":"save","path":"a","resume":-123456789012345678901234567890})") == "\"resume\" must be true or false");
    CHECK(refused(R"({"cmd":"status","n":18446744073709551616})") == "unknown key \"n\" for cmd \"status\"");
    CHECK(refused(R"({"cmd":123456789012345678901234567890})") == "\"cmd\" must be a string");
    std::string deep = R"({"cmd":"status","x":)" + std::string(2000, '[') + std::string(2000, ']') + "}";
    CHECK(refused(deep) == "unknown key \"x\" for cmd \"status\"");
    std::string deep_objects = "{\"cmd\":";
    for (int i = 0; i < 500; ++i) deep_objects += "{\"a\":";
    deep_objects += "1" + std::string(501, '}');
    CHECK(refused(deep_objects) == "\"cmd\" must be a string");
    CHECK(refused(std::string(4000, '[')) == "request is not valid JSON");
}

TEST_CASE("a line of at most 4096 bytes") {
    const std::string head = R"({"cmd":"save","path":")";
    std::string fits = head + std::string(kMaxRequestLine - head.size() - 2, 'p') + "\"}";
    REQUIRE(fits.size() == kMaxRequestLine);
    CHECK(accepted(fits).path.size() == kMaxRequestLine - head.size() - 2);
    CHECK(refused(fits + " ") == "request longer than 4096 bytes");
}

TEST_CASE("the save path limits: PATH_MAX counts the NUL") {
    // A request line cannot carry a path this long (the line's limit is PATH_MAX too), so the
    // check is tested on its own.
    CHECK(save_path_problem("a") == nullptr);
    CHECK(save_path_problem(std::string(PATH_MAX - 1, 'a')) == nullptr);
    CHECK(std::string(save_path_problem(std::string(PATH_MAX, 'a'))) == "\"path\" is longer than PATH_MAX");
    CHECK(std::string(save_path_problem("")) == "\"path\" is empty");
    CHECK(std::string(save_path_problem(std::string_view("a\0b", 3))) == "\"path\" contains a NUL byte");
}

TEST_CASE("answers: one line of JSON, fields in order") {
    CHECK(format_control_ok() == R"({"ok":true})");
    CHECK(format_control_status(false) == R"({"ok":true,"state":"running"})");
    CHECK(format_control_status(true) == R"({"ok":true,"state":"paused"})");
    const ControlField fields[] = {{"path", std::string_view("/s")}, {"bytes", std::uint64_t{1} << 40},
                                   {"delta", std::int64_t{-3}}, {"resumed", true}};
    CHECK(format_control_ok(fields) == R"({"ok":true,"path":"/s","bytes":1099511627776,"delta":-3,"resumed":true})");
    const ControlField status_fields[] = {{"vcpus", std::uint64_t{2}}, {"state", std::string_view("lie")}, {"ok", false}};
    CHECK(format_control_status(true, status_fields) == R"({"ok":true,"state":"paused","vcpus":2})");
    CHECK(format_control_error("unknown cmd \"x\"") == R"({"ok":false,"error":"unknown cmd \"x\""})");
}

TEST_CASE("answers escape whatever bytes they carry and stay valid UTF-8 JSON") {
    const std::string nasty = std::string("q\" b\\ nl\n cr\r tab\t nul") + std::string(1, '\0') + "\x01\x1f\x7f \xC3\xA9 \xFF \xC3";
    const std::string line = format_control_error(nasty);
    CHECK(line.find('\n') == std::string::npos);
    CHECK(line == "{\"ok\":false,\"error\":\"q\\\" b\\\\ nl\\n cr\\r tab\\t nul\\u0000\\u0001\\u001f\x7f \xC3\xA9 \xEF\xBF\xBD \xEF\xBF\xBD\"}");
    const auto back = nlohmann::json::parse(line, nullptr, false);
    REQUIRE_FALSE(back.is_discarded());
    CHECK(back["ok"] == false);
    // A refusal that quotes client text cut in the middle of a UTF-8 sequence is still valid.
    const std::string cut_cmd = R"({"cmd":")" + std::string(39, 'x') + "\xC3\xA9\"}";
    const std::string reason = refused(cut_cmd);
    const auto answer = nlohmann::json::parse(format_control_error(reason), nullptr, false);
    REQUIRE_FALSE(answer.is_discarded());
    CHECK(answer["error"] == "unknown cmd \"" + std::string(39, 'x') + "\xEF\xBF\xBD...\"");
    const ControlField odd[] = {{"k\"ey\n", std::string_view("v\xFF")}};
    CHECK(format_control_ok(odd) == "{\"ok\":true,\"k\\\"ey\\n\":\"v\xEF\xBF\xBD\"}");
}
