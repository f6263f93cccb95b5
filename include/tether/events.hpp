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
    bool fresh;                                   ///< fetched now, not served from a cache
    bool after_rejection;                         ///< replaces a token the server refused
    std::optional<std::chrono::seconds> lifetime; ///< as announced by the issuer
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
    std::error_code reason; ///< queue_full (drop_oldest) or not_running (stopped)
};

/// Everything counted since construction. Readable from any thread.
struct client_counters {
    std::uint64_t connects = 0;            ///< handshakes started
    std::uint64_t opens = 0;               ///< handshakes that succeeded
    std::uint64_t closes = 0;              ///< connection attempts that ended
    std::uint64_t rejected_handshakes = 0; ///< refused with an HTTP status
    std::uint64_t messages_received = 0;
    std::uint64_t bytes_received = 0;
    std::uint64_t messages_sent = 0;
    std::uint64_t retries = 0;         ///< backoff waits scheduled
    std::uint64_t token_requests = 0;  ///< calls to the TokenPolicy
    std::uint64_t tokens_acquired = 0; ///< successful token results
    std::uint64_t token_failures = 0;
    std::uint64_t tokens_rejected = 0; ///< tokens reported back as spent
    std::uint64_t dropped_messages = 0;
    std::uint64_t state_changes = 0;
    std::uint64_t stops = 0;     ///< 0 or 1
    std::uint64_t handovers = 0; ///< make-before-break switches
};

TETHER_NAMESPACE_END

#endif
