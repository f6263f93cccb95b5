// Command-line options of tether_genesys_local_server. Kept apart from the
// server so parsing compiles without websocketpp.
#ifndef TETHER_EXAMPLES_GENESYS_LOCAL_SERVER_SERVER_OPTIONS_HPP
#define TETHER_EXAMPLES_GENESYS_LOCAL_SERVER_SERVER_OPTIONS_HPP

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace genesys_local {

using milliseconds = std::chrono::milliseconds;

struct server_options {
    std::uint16_t port = 0; // 0: the system picks a free port
    std::string client_id = "local-client";
    std::string client_secret = "local-secret";
    milliseconds token_lifetime = std::chrono::hours(24);
    milliseconds channel_lifetime = std::chrono::hours(24);
    std::size_t max_channels = 20; // per client, as Genesys
    std::size_t max_topics = 1000; // per channel, as Genesys
    std::size_t max_topic_length = 200;
    milliseconds heartbeat_interval = std::chrono::seconds(30); // 0: never
    milliseconds socket_closing_interval = milliseconds(0);     // 0: never
    milliseconds socket_closing_grace = std::chrono::seconds(60);
    milliseconds event_interval = std::chrono::seconds(1); // 0: no events
    unsigned rate_limit = 300;                             // per client and window; 0: off
    milliseconds rate_window = std::chrono::seconds(60);
    bool seed_mode = false;
    milliseconds duration = milliseconds(0); // 0: until SIGINT/SIGTERM
    bool quiet = false;
};

// Outcome of parsing: either options, or a message for stderr (help text or
// error) and the exit status to use.
struct parse_result {
    server_options options;
    bool run = true;
    int exit_status = 0;
    std::string message;
};

parse_result parse_command_line(const std::vector<std::string>& args);

std::string usage_text();

} // namespace genesys_local

#endif
