#include "server_options.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <type_traits>

namespace genesys_local {

namespace {

// Seconds with an optional fraction ("0.25"), never negative.
bool parse_seconds(const std::string& text, milliseconds& out) {
    if (text.empty()) return false;
    char* end = nullptr;
    errno = 0;
    const double s = std::strtod(text.c_str(), &end);
    if (errno != 0 || end != text.c_str() + text.size() || !std::isfinite(s) || s < 0 ||
        s > 10.0 * 365 * 24 * 3600)
        return false;
    out = milliseconds(static_cast<long long>(std::llround(s * 1000.0)));
    return true;
}

bool parse_unsigned(const std::string& text, unsigned long long max, unsigned long long& out) {
    if (text.empty() || text[0] == '-' || text[0] == '+') return false;
    char* end = nullptr;
    errno = 0;
    const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
    if (errno != 0 || end != text.c_str() + text.size() || v > max) return false;
    out = v;
    return true;
}

} // namespace

std::string usage_text() {
    return "usage: tether_genesys_local_server [options]\n"
           "Plays Genesys Cloud notifications on 127.0.0.1 (REST, OAuth and WebSocket on one "
           "port).\n"
           "Durations are seconds and may have a fraction (0.5).\n"
           "  --port N                     TCP port on 127.0.0.1 (default 0: ephemeral)\n"
           "  --client-id ID               OAuth client id (default local-client)\n"
           "  --client-secret SECRET       OAuth client secret (default local-secret)\n"
           "  --token-lifetime S           access token lifetime (default 86400)\n"
           "  --channel-lifetime S         channel lifetime; subscribing renews it (default "
           "86400)\n"
           "  --max-channels N             channels per client before replacement (default 20)\n"
           "  --heartbeat-interval S       WebSocket heartbeat period, 0 = none (default 30)\n"
           "  --socket-closing-interval S  send v2.system.socket_closing S after each socket\n"
           "                               opens, 0 = never (default 0)\n"
           "  --socket-closing-grace S     then close that socket S later (default 60)\n"
           "  --event-interval-ms N        one event per subscribed topic every N ms, 0 = none\n"
           "                               (default 1000)\n"
           "  --rate-limit N               API requests per client and window, 0 = off (default "
           "300)\n"
           "  --rate-window S              rate limit window (default 60)\n"
           "  --seed-mode                  WebSocket upgrades need Authorization: Bearer; 4001 on\n"
           "                               token expiry; 401 for a stale token\n"
           "  --duration S                 exit after S seconds, 0 = run until SIGINT/SIGTERM\n"
           "                               (default 0)\n"
           "  --quiet                      no log lines on stderr\n"
           "  --help                       this text\n";
}

parse_result parse_command_line(const std::vector<std::string>& args) {
    parse_result r;
    server_options& o = r.options;
    auto seconds = [](milliseconds& field) {
        return [&field](const std::string& v) { return parse_seconds(v, field); };
    };
    auto count = [](auto& field, unsigned long long max) {
        return [&field, max](const std::string& v) {
            unsigned long long n = 0;
            if (!parse_unsigned(v, max, n)) return false;
            field = static_cast<std::remove_reference_t<decltype(field)>>(n);
            return true;
        };
    };
    // HTTP Basic splits "id:secret" at the first colon: an id must not hold one.
    auto text = [](std::string& field, bool colon_allowed) {
        return [&field, colon_allowed](const std::string& v) {
            field = v;
            return !v.empty() && (colon_allowed || v.find(':') == std::string::npos);
        };
    };
    const std::map<std::string, std::function<bool(const std::string&)>> with_value = {
        {"--port", count(o.port, 65535)},
        {"--client-id", text(o.client_id, false)},
        {"--client-secret", text(o.client_secret, true)},
        {"--token-lifetime", seconds(o.token_lifetime)},
        {"--channel-lifetime", seconds(o.channel_lifetime)},
        {"--max-channels", count(o.max_channels, 100000)},
        {"--heartbeat-interval", seconds(o.heartbeat_interval)},
        {"--socket-closing-interval", seconds(o.socket_closing_interval)},
        {"--socket-closing-grace", seconds(o.socket_closing_grace)},
        {"--event-interval-ms",
         [&o](const std::string& v) {
             unsigned long long n = 0;
             if (!parse_unsigned(v, 86400000ULL, n)) return false;
             o.event_interval = milliseconds(static_cast<long long>(n));
             return true;
         }},
        {"--rate-limit", count(o.rate_limit, 1000000000ULL)},
        {"--rate-window", seconds(o.rate_window)},
        {"--duration", seconds(o.duration)},
    };

    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a == "--help" || a == "-h") {
            r.run = false;
            r.message = usage_text();
            return r;
        }
        if (a == "--seed-mode") {
            o.seed_mode = true;
            continue;
        }
        if (a == "--quiet") {
            o.quiet = true;
            continue;
        }
        // Accept both "--name value" and "--name=value".
        std::string name = a, value;
        bool has_value = false;
        if (const auto eq = a.find('='); eq != std::string::npos) {
            name = a.substr(0, eq);
            value = a.substr(eq + 1);
            has_value = true;
        }
        const auto it = with_value.find(name);
        if (it == with_value.end()) {
            r.run = false;
            r.exit_status = 2;
            r.message = "error: unknown option '" + name + "'\n" + usage_text();
            return r;
        }
        if (!has_value) {
            if (i + 1 >= args.size()) {
                r.run = false;
                r.exit_status = 2;
                r.message = "error: option " + name + " needs a value\n";
                return r;
            }
            value = args[++i];
        }
        if (!it->second(value)) {
            r.run = false;
            r.exit_status = 2;
            // Never echo a secret back, even a malformed one.
            r.message = "error: bad value for " + name +
                        (name == "--client-secret" ? std::string() : " '" + value + "'") + "\n";
            return r;
        }
    }
    if (o.rate_limit > 0 && o.rate_window.count() == 0) {
        r.run = false;
        r.exit_status = 2;
        r.message = "error: --rate-window must be positive when --rate-limit is on\n";
    }
    return r;
}

} // namespace genesys_local
