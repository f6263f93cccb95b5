// tether: the library's error codes and their std::error_category.
#ifndef TETHER_ERROR_HPP
#define TETHER_ERROR_HPP

#include <tether/version.hpp>

#include <string>
#include <system_error>

TETHER_NAMESPACE_BEGIN

/// Every error tether reports itself. Values are stable; never reuse one.
enum class error {
    // client lifecycle
    stopped_by_user = 1, ///< stop() was called (a normal final reason)
    unauthorized,        ///< auth-failure breaker: fresh tokens rejected K times in a row
    stop_close_code,     ///< the server closed with a code the ClosePolicy maps to stop
    handshake_refused,   ///< the handshake got an HTTP status the ClosePolicy maps to stop
    retries_exhausted,   ///< max_attempts or max_elapsed reached
    queue_full,          ///< send() while not open and the bounded queue is full
    message_dropped,     ///< a queued message was dropped (drop_oldest overflow or stop)
    not_running,         ///< send() on a stopped client
    // tokens
    token_rejected = 100,     ///< the only token the policy has was rejected (static token)
    token_unavailable,        ///< the TokenPolicy has no token to give
    token_request_failed,     ///< a token request failed in a way that may succeed later
    invalid_credentials,      ///< the token endpoint refused the client credentials
    malformed_token_response, ///< the token endpoint's body is not a valid token response
    response_too_large,       ///< a body exceeded the configured cap
    token_request_timeout,    ///< the token endpoint did not answer in time
    rate_limited,             ///< 429 / 503 from an endpoint (see retry_after)
    operation_cancelled,      ///< the request was cancelled (client stopped)
    malformed_http_response,  ///< an HTTP response broke the protocol or the header limits
    // transport
    insecure_transport =
        200, ///< refused to send a credential over plain ws:// or http:// to a non-loopback host
    invalid_url,             ///< the URL could not be parsed or has the wrong scheme
    tls_verification_failed, ///< the peer's certificate or host name did not verify
    handshake_timeout,       ///< connect + handshake did not finish in time
    pong_timeout,            ///< no pong within the bound: connection presumed dead
    idle_timeout,            ///< no frame within the idle bound
    connection_failed,       ///< DNS, TCP or TLS failure (detail in close_event::detail)
    protocol_error,          ///< the peer violated RFC 6455 (invalid close frame, ...)
    message_too_large,       ///< an incoming message exceeded the configured maximum
    not_connected,           ///< send() on a connection that is not open (or unknown)
    invalid_upgrade_request, ///< a header, subprotocol or the token cannot be put on the upgrade
                             ///< request
    close_timeout,           ///< the peer did not finish the closing handshake in time
    invalid_text_message,    ///< send() of a text message that is not valid UTF-8
    proxy_auth_required,     ///< the HTTP proxy answered CONNECT with 407 (or 401): its
                             ///< credentials are wrong or missing
    proxy_denied,            ///< the HTTP proxy refused the tunnel (403 or another 4xx/3xx)
    proxy_error, ///< the HTTP proxy could not open the tunnel (502/503/504, malformed answer)
    // Genesys Cloud notifications
    channel_creation_limit = 300, ///< the client's own cap on channel creations was reached
    channel_request_failed,       ///< a notifications REST call (channel, subscriptions) failed
    subscription_rejected,        ///< the server refused the topic list (400): retrying cannot help
    request_forbidden, ///< 403 from the notifications API: the OAuth client lacks a permission
    channel_gone,      ///< the server said the notification channel is gone (a result 4xx frame)
    token_revoked,     ///< v2.system.token_revoked: the channel's token was revoked
    // configuration
    invalid_option = 400, ///< an option is out of range or malformed (what() names it)
};

namespace detail {
class error_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "tether"; }
    // So that portable checks work: `ec == std::errc::timed_out` holds for
    // every tether timeout, `ec == std::errc::operation_canceled` for a
    // cancellation (the condition asio::error::operation_aborted maps to).
    std::error_condition default_error_condition(int ev) const noexcept override {
        switch (static_cast<error>(ev)) {
        case error::handshake_timeout:
        case error::pong_timeout:
        case error::idle_timeout:
        case error::close_timeout:
        case error::token_request_timeout: return std::errc::timed_out;
        case error::operation_cancelled: return std::errc::operation_canceled;
        case error::not_connected: return std::errc::not_connected;
        case error::message_too_large: return std::errc::message_size;
        case error::invalid_url: return std::errc::invalid_argument;
        case error::invalid_option: return std::errc::invalid_argument;
        case error::queue_full: return std::errc::no_buffer_space;
        case error::proxy_auth_required:
        case error::proxy_denied: return std::errc::permission_denied;
        default: return {ev, *this};
        }
    }
    std::string message(int ev) const override {
        switch (static_cast<error>(ev)) {
        case error::stopped_by_user: return "stopped by the application";
        case error::unauthorized:
            return "unauthorized: freshly acquired tokens were rejected repeatedly; "
                   "the credential itself is wrong";
        case error::stop_close_code: return "the server closed with a code that means stop";
        case error::handshake_refused:
            return "the server refused the handshake with a status that means stop";
        case error::retries_exhausted: return "reconnect attempts exhausted";
        case error::queue_full: return "outgoing queue is full";
        case error::message_dropped: return "queued message dropped";
        case error::not_running: return "the client is stopped";
        case error::token_rejected: return "the token was rejected and no other is available";
        case error::token_unavailable: return "no token available";
        case error::token_request_failed: return "token request failed";
        case error::invalid_credentials:
            return "the token endpoint rejected the client credentials";
        case error::malformed_token_response: return "malformed token response";
        case error::response_too_large: return "response body exceeds the configured limit";
        case error::token_request_timeout: return "token request timed out";
        case error::rate_limited: return "rate limited by the server";
        case error::operation_cancelled: return "operation cancelled";
        case error::malformed_http_response: return "malformed HTTP response";
        case error::insecure_transport:
            return "refusing to send a credential over an unencrypted connection to a "
                   "non-loopback host (opt in explicitly to allow it)";
        case error::invalid_url: return "invalid URL";
        case error::tls_verification_failed: return "TLS certificate verification failed";
        case error::handshake_timeout: return "WebSocket handshake timed out";
        case error::pong_timeout: return "no pong received in time: connection presumed dead";
        case error::idle_timeout: return "no frame received within the idle timeout";
        case error::connection_failed: return "connection failed";
        case error::protocol_error: return "WebSocket protocol error";
        case error::message_too_large: return "message exceeds the configured maximum size";
        case error::not_connected: return "the connection is not open";
        case error::invalid_upgrade_request:
            return "the upgrade request cannot be built: a header, subprotocol or the token "
                   "contains characters HTTP does not allow there";
        case error::close_timeout: return "the peer did not complete the closing handshake in time";
        case error::invalid_text_message: return "a text message must be valid UTF-8";
        case error::proxy_auth_required:
            return "the HTTP proxy requires authentication: the proxy credentials are missing "
                   "or wrong";
        case error::proxy_denied: return "the HTTP proxy refused to open a tunnel to the origin";
        case error::proxy_error:
            return "the HTTP proxy failed to open a tunnel to the origin (try again later)";
        case error::channel_creation_limit:
            return "notification channel creation limit reached: the client stopped instead of "
                   "creating more channels (each one may replace another of the 20 allowed)";
        case error::channel_request_failed: return "notifications API request failed";
        case error::subscription_rejected:
            return "the notifications API rejected the topic subscription";
        case error::request_forbidden:
            return "the notifications API refused the request (403): the OAuth client lacks a "
                   "permission";
        case error::channel_gone: return "the server said the notification channel is gone";
        case error::token_revoked: return "the token of the notification channel was revoked";
        case error::invalid_option: return "invalid option";
        }
        return "unknown tether error";
    }
};
} // namespace detail

inline const std::error_category& error_category() noexcept {
    static const detail::error_category_impl instance;
    return instance;
}

inline std::error_code make_error_code(error e) noexcept {
    return {static_cast<int>(e), error_category()};
}

namespace detail {
/// What every options check throws: a std::system_error with
/// error::invalid_option whose what() starts with `what` (the option named).
inline std::system_error invalid_option(const std::string& what) {
    return std::system_error(make_error_code(error::invalid_option), what);
}
} // namespace detail

/// Checks `options` (any tether options type with a validate() member)
/// without exceptions, as Asio's error_code overloads do: `ec` becomes
/// error::invalid_option and `*why` (when given) names the option, or both
/// are cleared. A constructor given options that pass here does not throw
/// for them.
template <class Options>
void validate(const Options& options, std::error_code& ec, std::string* why = nullptr) noexcept {
    try {
        options.validate();
        ec.clear();
        if (why) why->clear();
    } catch (const std::system_error& e) {
        ec = e.code();
        if (why) {
            try {
                *why = e.what();
            } catch (...) {
                why->clear();
            }
        }
    } catch (...) { // std::bad_alloc while building the message
        ec = std::make_error_code(std::errc::not_enough_memory);
        if (why) why->clear();
    }
}

TETHER_NAMESPACE_END

namespace std {
template <> struct is_error_code_enum<::tether::error> : true_type {};
} // namespace std

#endif
