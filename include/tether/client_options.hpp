// tether: the client's settings, checked at construction.
#ifndef TETHER_CLIENT_OPTIONS_HPP
#define TETHER_CLIENT_OPTIONS_HPP

#include <tether/connect_request.hpp>
#include <tether/error.hpp>

#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

TETHER_NAMESPACE_BEGIN

/// What send() does when the client is not open and the queue is full.
enum class overflow_policy : unsigned char {
    reject,      ///< send() returns error::queue_full; the queue is unchanged
    drop_oldest, ///< the oldest queued message is dropped (reported to on_dropped)
};

struct client_options {
    std::string url;                       ///< ws:// or wss://
    std::vector<http_header> headers;      ///< extra upgrade headers
    std::vector<std::string> subprotocols; ///< offered in Sec-WebSocket-Protocol

    /// Messages sent while not open wait here, flushed in order on open.
    std::size_t queue_capacity = 1024;
    overflow_policy overflow = overflow_policy::reject;

    /// A connection must stay open this long before the backoff ladders reset;
    /// a server that accepts and drops at once cannot keep delays at minimum.
    std::chrono::milliseconds min_uptime{5000};

    /// Auth-failure breaker: this many rejections in a row of freshly acquired
    /// tokens (a 401 handshake, or an expiry close sooner than
    /// `auth_failure_uptime` after open) stop the client with error::unauthorized.
    unsigned auth_failure_limit = 3;
    /// An expiry close sooner than this after open counts as a rejection.
    std::chrono::milliseconds auth_failure_uptime{2000};

    /// When the token has a known lifetime, hand over to a new connection with
    /// a new token this long before it expires (make-before-break), so a
    /// server that closes on expiry never has to (0: off; wait for the close).
    std::chrono::milliseconds renew_before_expiry{0};

    /// After a handover, the old connection keeps delivering until the server
    /// closes it or this long has passed; then we close it (1000). Messages
    /// the server sent on it before it saw the new connection are not lost
    /// (a WebSocket stack drops data that arrives after its own close frame).
    /// A server that streams the same data on both connections may deliver
    /// some twice within this window. 0: close at once.
    std::chrono::milliseconds handover_drain{2000};

    /// Give up after this many failed attempts in a row (0: never).
    unsigned max_attempts = 0;
    /// Give up when failures have lasted this long without a stable connection (0: never).
    std::chrono::milliseconds max_elapsed{0};

    /// Throws std::system_error (error::invalid_option) naming the bad option.
    void validate() const {
        const auto fail = [](const std::string& what) {
            throw detail::invalid_option("tether: client_options: " + what);
        };
        if (url.rfind("ws://", 0) != 0 && url.rfind("wss://", 0) != 0)
            fail("url must start with ws:// or wss:// (got '" + url.substr(0, 64) + "')");
        if (url.find_first_of(" \t\r\n") != std::string::npos) fail("url contains white space");
        if (queue_capacity == 0) fail("queue_capacity must be at least 1");
        if (min_uptime.count() < 0) fail("min_uptime must not be negative");
        if (auth_failure_limit == 0) fail("auth_failure_limit must be at least 1");
        if (auth_failure_uptime.count() < 0) fail("auth_failure_uptime must not be negative");
        if (max_elapsed.count() < 0) fail("max_elapsed must not be negative");
        if (renew_before_expiry.count() < 0) fail("renew_before_expiry must not be negative");
        if (handover_drain.count() < 0) fail("handover_drain must not be negative");
        for (const auto& h : headers) {
            if (h.first.empty() || h.first.find_first_of(" \t\r\n:") != std::string::npos)
                fail("header name '" + h.first + "' is not a valid HTTP token");
            if (h.second.find_first_of("\r\n") != std::string::npos)
                fail("header '" + h.first + "' has a line break in its value");
        }
        for (const auto& p : subprotocols)
            if (p.empty() || p.find_first_of(" \t\r\n,") != std::string::npos)
                fail("subprotocol '" + p + "' is not a valid token");
    }
};

TETHER_NAMESPACE_END

#endif
