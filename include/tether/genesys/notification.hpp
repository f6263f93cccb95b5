// tether: Genesys notification messages, typed.
#ifndef TETHER_GENESYS_NOTIFICATION_HPP
#define TETHER_GENESYS_NOTIFICATION_HPP

#include <tether/version.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

TETHER_NAMESPACE_BEGIN
namespace genesys {

/// One message of the notification socket:
/// `{"topicName": ..., "eventBody": {...}, "metadata": {...}}`.
struct notification {
    std::string topic;       ///< topicName
    nlohmann::json body;     ///< eventBody (null when absent)
    nlohmann::json metadata; ///< metadata (null when absent)
    std::string channel_id;  ///< the channel (or stream) it arrived on
    std::chrono::system_clock::time_point received{};
};

/// What a message is, for the socket's own bookkeeping.
enum class message_type : unsigned char {
    event,          ///< an application notification
    heartbeat,      ///< channel.metadata "WebSocket Heartbeat"
    pong,           ///< channel.metadata "pong" (answer to {"message":"ping"})
    metadata,       ///< other channel.metadata (e.g. "subscribe rejected: ...")
    socket_closing, ///< v2.system.socket_closing: reconnect within a minute
    malformed,      ///< not JSON, or no string topicName
};

inline const char* to_string(message_type t) noexcept {
    switch (t) {
    case message_type::event: return "event";
    case message_type::heartbeat: return "heartbeat";
    case message_type::pong: return "pong";
    case message_type::metadata: return "metadata";
    case message_type::socket_closing: return "socket_closing";
    case message_type::malformed: return "malformed";
    }
    return "?";
}

/// Parses one text frame into `out` and says what it is.
inline message_type parse_notification(std::string_view text, notification& out) {
    auto j = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) return message_type::malformed;
    auto topic = j.find("topicName");
    if (topic == j.end() || !topic->is_string()) return message_type::malformed;
    out.topic = topic->get<std::string>();
    auto body = j.find("eventBody");
    out.body = body != j.end() ? std::move(*body) : nlohmann::json();
    auto meta = j.find("metadata");
    out.metadata = meta != j.end() ? std::move(*meta) : nlohmann::json();
    if (out.topic == "channel.metadata") {
        const auto m = out.body.is_object() ? out.body.find("message") : out.body.end();
        if (m != out.body.end() && m->is_string()) {
            if (*m == "WebSocket Heartbeat") return message_type::heartbeat;
            if (*m == "pong") return message_type::pong;
        }
        return message_type::metadata;
    }
    if (out.topic == "v2.system.socket_closing") return message_type::socket_closing;
    return message_type::event;
}

/// A window in which notifications may have been lost: from the last one
/// received before a connection dropped (or its open, if none came) to the
/// moment the next connection opened. Backfill it over REST. Handovers are
/// not gaps: both sockets deliver until the old one closes.
struct gap_event {
    std::chrono::system_clock::time_point from;
    std::chrono::system_clock::time_point to;
    std::string reason;  ///< why the connection dropped
    bool resumed = true; ///< false: reported at stop, the stream did not come back
};

/// A make-before-break switch to a new socket completed.
struct handover_event {
    std::string channel_id;
    std::chrono::milliseconds
        took; ///< from socket_closing to the new socket's open (0 for a renewal)
    bool after_socket_closing = true; ///< false: the client renewed its token (renew_before_expiry)
};

} // namespace genesys
TETHER_NAMESPACE_END

#endif
