// tether: what the client reports to the application.
#ifndef TETHER_EVENTS_HPP
#define TETHER_EVENTS_HPP

#include <tether/close_event.hpp>
#include <tether/message.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <system_error>

TETHER_NAMESPACE_BEGIN

enum class client_state : unsigned char {
    idle,             ///< constructed, not started
    acquiring_token,  ///< waiting for the TokenPolicy
    connecting,       ///< TCP/TLS/WebSocket handshake in progress
    open,             ///< connected
    closing,          ///< stop() asked for a graceful close
    waiting_to_retry, ///< backing off before the next attempt
    stopped,          ///< final
};

inline const char* to_string(client_state s) noexcept {
    switch (s) {
    case client_state::idle: return "idle";
    case client_state::acquiring_token: return "acquiring_token";
    case client_state::connecting: return "connecting";
    case client_state::open: return "open";
    case client_state::closing: return "closing";
    case client_state::waiting_to_retry: return "waiting_to_retry";
    case client_state::stopped: return "stopped";
    }
    return "?";
}

struct state_change_event {
    client_state from;
    client_state to;
};

struct open_event {
    std::uint64_t attempt;             ///< connection attempts so far, this one included
    std::chrono::nanoseconds downtime; ///< since the previous connection closed (0 on the first)
    std::string subprotocol;           ///< as selected by the server
    bool handover = false;             ///< replaced a live connection (make-before-break)
};

struct retry_event {
    std::chrono::milliseconds delay;
    failure_class cls;
    std::uint64_t next_attempt;
};

/// A token was obtained. Never carries the token itself.
struct token_event {
    bool fresh;           ///< fetched now, not served from a cache
    bool after_rejection; ///< replaces a token the server refused
    /// Valid for this long from now: as issued for a fresh token, what is
    /// left of it for a cached one (token::lifetime).
    std::optional<std::chrono::seconds> lifetime;
};

/// A token request failed.
struct token_failure_event {
    std::error_code error;
    std::string detail; ///< never contains a secret
    bool permanent;     ///< the client stops
};

struct stopped_event {
    std::error_code reason;                ///< error::stopped_by_user after stop()
    std::optional<close_event> last_close; ///< the last connection's end, if any
};

/// A message that will never be sent.
struct dropped_message {
    std::string data;
    message_kind kind;
    std::error_code
        reason; ///< queue_full (drop_oldest), not_running (stopped), or the transport's write error
};

/// The client's counters, written once: `client_counters` and the client's
/// atomic twin are both generated from this list (name, what it counts), so
/// they cannot disagree.
#define TETHER_CLIENT_COUNTERS(X)                                                                  \
    X(connects, "handshakes started")                                                              \
    X(opens, "handshakes that succeeded")                                                          \
    X(closes, "connection attempts that ended")                                                    \
    X(rejected_handshakes, "handshakes refused with an HTTP status")                               \
    X(messages_received, "messages delivered to on_message")                                       \
    X(bytes_received, "their bytes")                                                               \
    X(messages_sent, "messages written to an open connection")                                     \
    X(retries, "backoff waits scheduled")                                                          \
    X(token_requests, "calls to the TokenPolicy")                                                  \
    X(tokens_acquired, "successful token results used")                                            \
    X(token_failures, "failed token results")                                                      \
    X(tokens_rejected, "tokens reported back as spent")                                            \
    X(dropped_messages, "messages reported to on_dropped")                                         \
    X(state_changes, "state_change events")                                                        \
    X(stops, "runs that ended (one per start)")                                                    \
    X(handovers, "make-before-break switches")

/// Everything counted since construction (see TETHER_CLIENT_COUNTERS for
/// what each counts). Readable from any thread.
struct client_counters {
#define TETHER_DETAIL_COUNTER_FIELD(name, what) std::uint64_t name = 0;
    TETHER_CLIENT_COUNTERS(TETHER_DETAIL_COUNTER_FIELD)
#undef TETHER_DETAIL_COUNTER_FIELD
};

TETHER_NAMESPACE_END

#endif
