#include "firmware/firmware_events.hpp"

#include "firmware/tcg_event_log.hpp"

namespace minivmm {

std::vector<FirmwareEvent> firmware_events(std::string_view version,
                                           std::span<const std::pair<std::string, std::vector<uint8_t>>> config_files) {
    std::vector<FirmwareEvent> events;
    const std::string text = "minivmm " + std::string(version);
    std::vector<uint8_t> crtm;
    for (char c : text) {  // ASCII: UCS-2 little-endian is the byte and 0
        crtm.push_back(static_cast<uint8_t>(c));
        crtm.push_back(0);
    }
    crtm.insert(crtm.end(), {0, 0});
    events.push_back({0, tcg_log::kEvSCrtmVersion, crtm, crtm});
    for (const auto& [name, bytes] : config_files) {
        std::vector<uint8_t> data(name.begin(), name.end());
        data.push_back(0);
        events.push_back({1, tcg_log::kEvPlatformConfigFlags, std::move(data), bytes});
    }
    const std::vector<uint8_t> separator(4, 0);
    for (uint32_t pcr = 0; pcr <= 7; ++pcr) events.push_back({pcr, tcg_log::kEvSeparator, separator, separator});
    return events;
}

}  // namespace minivmm
