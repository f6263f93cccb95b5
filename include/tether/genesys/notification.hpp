// tether: Genesys notification messages, typed.
#ifndef TETHER_GENESYS_NOTIFICATION_HPP
#define TETHER_GENESYS_NOTIFICATION_HPP

#include <tether/detail/printable.hpp>
#include <tether/version.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

TETHER_NAMESPACE_BEGIN
namespace genesys {

/// One message of the notification socket:
/// `{"topicName": ..., "version": ..., "eventBody": {...}, "metadata": {...}}`.
struct notification {
    std::string topic;   ///< topicName
    std::string version; ///< envelope `version` (a number is kept as its text; empty when absent)
    nlohmann::json body; ///< eventBody (null when absent)
    nlohmann::json metadata; ///< metadata (null when absent)
    std::string channel_id;  ///< the channel (or stream) it arrived on
    std::chrono::system_clock::time_point received{};
};

/// What a message is, for the socket's own bookkeeping.
enum class message_type : unsigned char {
    event,                ///< an application notification
    heartbeat,            ///< channel.metadata "WebSocket Heartbeat"
    pong,                 ///< channel.metadata "pong" (answer to {"message":"ping"})
    metadata,             ///< other channel.metadata (e.g. "subscribe rejected: ...")
    socket_closing,       ///< v2.system.socket_closing: reconnect within a minute
    token_revoked,        ///< v2.system.token_revoked[.id]: the channel's token was revoked
    no_longer_subscribed, ///< v2.system.no_longer_subscribed[.id]: the subscriptions are gone
    reply,                ///< {"result": "200", ...}: the answer to a socket request (or a refusal)
    malformed,            ///< not JSON, or neither topicName nor result
    too_large,            ///< over the size limit: not parsed
    too_deep,             ///< nested deeper than the depth limit: not parsed
};

inline const char* to_string(message_type t) noexcept {
    switch (t) {
    case message_type::event: return "event";
    case message_type::heartbeat: return "heartbeat";
    case message_type::pong: return "pong";
    case message_type::metadata: return "metadata";
    case message_type::socket_closing: return "socket_closing";
    case message_type::token_revoked: return "token_revoked";
    case message_type::no_longer_subscribed: return "no_longer_subscribed";
    case message_type::reply: return "reply";
    case message_type::malformed: return "malformed";
    case message_type::too_large: return "too_large";
    case message_type::too_deep: return "too_deep";
    }
    return "?";
}

/// Limits applied before a frame is parsed. Genesys documents no size; the
/// largest shapes in its SDKs' topic models are conversation events
/// (participants x communications x attributes), kilobytes to tens of
/// kilobytes; 256 KiB leaves about ten times that. The depth of those models
/// is under ten levels; 32 leaves room. A DOM costs up to ~40 times the
/// text (16 MiB of `[` took 619 MB), so both bounds are what keeps one frame
/// from taking the I/O thread's memory and time (docs/genesys.md).
struct parse_limits {
    std::size_t max_bytes = 256 * 1024;
    std::size_t max_depth = 32;
};

/// Deepest nesting of `[`/`{` in JSON text, without building anything;
/// stops counting once `limit` is exceeded. Strings are skipped.
inline std::size_t json_depth(std::string_view text, std::size_t limit) noexcept {
    std::size_t depth = 0, deepest = 0;
    bool in_string = false, escaped = false;
    for (const char c : text) {
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c == '"')
            in_string = true;
        else if (c == '[' || c == '{') {
            if (++depth > deepest && (deepest = depth) > limit) return deepest;
        } else if ((c == ']' || c == '}') && depth > 0)
            --depth;
    }
    return deepest;
}

/// The body of a system topic (Genesys' SystemMessage: channelId, reason,
/// message; other fields are kept in `body`). Text fields are as sent: print
/// them through printable().
struct system_message {
    std::string channel_id;
    std::string reason;
    std::string message;
};

inline system_message parse_system_message(const nlohmann::json& body) {
    system_message m;
    if (!body.is_object()) return m;
    auto text = [&body](const char* key) {
        const auto it = body.find(key);
        return it != body.end() && it->is_string() ? it->template get<std::string>()
                                                   : std::string();
    };
    m.channel_id = text("channelId");
    m.reason = text("reason");
    m.message = text("message");
    return m;
}

/// The status of a socket reply (`{"result": "404", ...}`; a number is
/// accepted too); 0 when it is not one.
inline int reply_status(const nlohmann::json& j) noexcept {
    const auto r = j.find("result");
    if (r == j.end()) return 0;
    if (r->is_number_integer()) {
        const auto v = r->get<long long>();
        return v >= 100 && v <= 599 ? static_cast<int>(v) : 0;
    }
    if (!r->is_string()) return 0;
    const auto& s = r->get_ref<const std::string&>();
    if (s.size() != 3) return 0;
    int v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return 0;
        v = v * 10 + (c - '0');
    }
    return v >= 100 && v <= 599 ? v : 0;
}

/// Does `topic` name the system topic `base` (`v2.system.token_revoked`),
/// with or without the `.{id}` suffix?
inline bool is_system_topic(std::string_view topic, std::string_view base) noexcept {
    return topic.substr(0, base.size()) == base &&
           (topic.size() == base.size() || topic[base.size()] == '.');
}

/// Parses one text frame into `out` and says what it is. Frames over the
/// limits are not parsed at all. For a reply, `out.body` is the whole object.
inline message_type parse_notification(std::string_view text, notification& out,
                                       const parse_limits& limits = parse_limits()) {
    if (text.size() > limits.max_bytes) return message_type::too_large;
    if (json_depth(text, limits.max_depth) > limits.max_depth) return message_type::too_deep;
    auto j = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) return message_type::malformed;
    auto topic = j.find("topicName");
    if (topic == j.end() || !topic->is_string()) {
        if (reply_status(j) == 0) return message_type::malformed;
        out.topic.clear();
        out.version.clear();
        out.metadata = nlohmann::json();
        out.body = std::move(j);
        return message_type::reply;
    }
    out.topic = topic->get<std::string>();
    const auto version = j.find("version");
    out.version = version == j.end() || version->is_null() ? std::string()
                  : version->is_string()                   ? version->get<std::string>()
                                                           : version->dump();
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
    if (is_system_topic(out.topic, "v2.system.token_revoked")) return message_type::token_revoked;
    if (is_system_topic(out.topic, "v2.system.no_longer_subscribed"))
        return message_type::no_longer_subscribed;
    return message_type::event;
}

/// Channel ids go into REST paths and URLs: only `[A-Za-z0-9-]`, 1 to 128
/// characters, are accepted (Genesys' are `streaming-0-` and a few dozen
/// alphanumerics); anything else is refused, never escaped.
inline bool is_valid_channel_id(std::string_view id) noexcept {
    if (id.empty() || id.size() > 128) return false;
    for (char c : id)
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-'))
            return false;
    return true;
}

/// A channel id for logs and error details: it is the socket's credential,
/// so only its first characters are shown.
inline std::string shorten_id(std::string_view id) {
    if (id.size() <= 20) return std::string(id);
    return std::string(id.substr(0, 18)) + "...";
}

/// Text the server chose (messages, reasons), bounded and without control
/// characters, for logs.
inline std::string printable(std::string_view text, std::size_t max = 200) {
    return detail::body_excerpt(text, max);
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
