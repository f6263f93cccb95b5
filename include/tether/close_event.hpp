// tether: how a connection ended, and what the client does about it.
#ifndef TETHER_CLOSE_EVENT_HPP
#define TETHER_CLOSE_EVENT_HPP

#include <tether/error.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <system_error>

TETHER_NAMESPACE_BEGIN

/// RFC 6455 section 7.4.1 close codes, plus the IANA-registered 1012-1014.
namespace close_code {
inline constexpr std::uint16_t none = 0; ///< no close frame (handshake failure, drop)
inline constexpr std::uint16_t normal = 1000;
inline constexpr std::uint16_t going_away = 1001;
inline constexpr std::uint16_t protocol_error = 1002;
inline constexpr std::uint16_t unsupported_data = 1003;
inline constexpr std::uint16_t no_status = 1005;
inline constexpr std::uint16_t abnormal = 1006;
inline constexpr std::uint16_t invalid_payload = 1007;
inline constexpr std::uint16_t policy_violation = 1008;
inline constexpr std::uint16_t message_too_big = 1009;
inline constexpr std::uint16_t mandatory_extension = 1010;
inline constexpr std::uint16_t internal_error = 1011;
inline constexpr std::uint16_t service_restart = 1012;
inline constexpr std::uint16_t try_again_later = 1013;
inline constexpr std::uint16_t bad_gateway = 1014;
inline constexpr std::uint16_t tls_handshake = 1015;
} // namespace close_code

/// Everything known about the end of one connection attempt: a close frame,
/// a refused handshake, or a transport failure.
struct close_event {
    std::uint16_t code = close_code::none; ///< close frame code, 0 when there was none
    std::string reason;                    ///< close frame reason
    int http_status = 0;                   ///< non-zero when the handshake was refused
    /// The HTTP proxy's status when it refused the CONNECT tunnel (then
    /// `error` is proxy_auth_required, proxy_denied or proxy_error, and
    /// http_status stays 0: the origin never answered).
    int proxy_status = 0;
    std::optional<std::chrono::milliseconds> retry_after; ///< parsed Retry-After
    std::string body_excerpt;                             ///< bounded excerpt of a refusal's body
    std::error_code error;          ///< transport error (DNS, TCP, TLS, liveness)
    std::string detail;             ///< resolver / OpenSSL reason text
    bool was_open = false;          ///< the WebSocket had opened
    bool initiated_locally = false; ///< we closed first (stop, liveness, handover)
    /// The connection had been replaced by a handover and was draining: the
    /// client acts on the ClosePolicy's verdict only to learn whether the
    /// token it carried is spent. A stateful policy should not count it.
    bool replaced = false;
    std::chrono::nanoseconds uptime{0}; ///< time spent open (filled by the client)

    bool handshake_refused() const noexcept { return !was_open && http_status != 0; }
};

/// What the client does after a close.
enum class close_action : unsigned char {
    reconnect,                    ///< back off, then reconnect with the current token
    refresh_token_then_reconnect, ///< the token is spent: report it, refresh, then reconnect
    stop,                         ///< do not reconnect
};

/// Which backoff ladder a failure climbs.
enum class failure_class : unsigned char {
    network,  ///< drops, refused connections, timeouts, 1006
    auth,     ///< rejected or expired credentials
    overload, ///< the server asked us to slow down (429, 503, 1013)
};
inline constexpr std::size_t failure_class_count = 3;

inline const char* to_string(close_action a) noexcept {
    switch (a) {
    case close_action::reconnect: return "reconnect";
    case close_action::refresh_token_then_reconnect: return "refresh_token";
    case close_action::stop: return "stop";
    }
    return "?";
}
inline const char* to_string(failure_class c) noexcept {
    switch (c) {
    case failure_class::network: return "network";
    case failure_class::auth: return "auth";
    case failure_class::overload: return "overload";
    }
    return "?";
}

/// A ClosePolicy's verdict on one close_event.
struct reconnect_decision {
    close_action action = close_action::reconnect;
    failure_class cls = failure_class::network;
    /// Wait at least this long (Retry-After); the Backoff may add more.
    std::optional<std::chrono::milliseconds> min_delay;
    /// The final reason reported when action == stop.
    std::error_code stop_reason;

    static reconnect_decision reconnect(failure_class c = failure_class::network) {
        return {close_action::reconnect, c, std::nullopt, {}};
    }
    static reconnect_decision refresh_token() {
        return {close_action::refresh_token_then_reconnect, failure_class::auth, std::nullopt, {}};
    }
    static reconnect_decision stop(std::error_code why) {
        return {close_action::stop, failure_class::network, std::nullopt, why};
    }
};

TETHER_NAMESPACE_END

#endif
