// Fuzzes the Genesys notification envelope (genesys/notification.hpp): any
// text frame is classified, and only a JSON object with a string topicName is
// anything but `malformed`.
#include <tether/genesys/notification.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    tether::genesys::notification n;
    const auto type = tether::genesys::parse_notification(text, n);
    if (type != tether::genesys::message_type::malformed) {
        const auto j = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
        if (j.is_discarded() || !j.is_object() || !j.contains("topicName") ||
            !j["topicName"].is_string() || j["topicName"].get<std::string>() != n.topic)
            std::abort();
        if ((type == tether::genesys::message_type::heartbeat ||
             type == tether::genesys::message_type::pong) &&
            n.topic != "channel.metadata")
            std::abort();
    }
    if (std::string_view(tether::genesys::to_string(type)) == "?") std::abort();
    return 0;
}
