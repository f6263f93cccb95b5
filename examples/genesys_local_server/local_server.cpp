// tether_genesys_local_server: plays Genesys Cloud notifications on 127.0.0.1
// so tether's Genesys client can be tested without the internet. One port
// serves the OAuth token endpoint, the notifications REST API, the WebSocket
// channels and a /test/ control API. Behaviour and choices are documented in
// README.md next to this file; that page is the contract for clients.
//
// Everything runs on one thread (one io_context), so no state needs a lock.
#include "server_options.hpp"

#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <pthread.h>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace genesys_local {
namespace {

using json = nlohmann::json;
using ws_server = websocketpp::server<websocketpp::config::asio>;
using websocketpp::connection_hdl;
using steady = std::chrono::steady_clock;
using timer_ptr = std::shared_ptr<asio::steady_timer>;

// Close codes and reasons the server uses; README.md lists them for clients.
constexpr std::uint16_t close_normal = 1000; // takeover by a newer socket
constexpr std::uint16_t close_going_away =
    1001; // socket_closing grace over, channel gone, shutdown
constexpr std::uint16_t close_token_expired = 4001; // seed mode only
const char* const reason_takeover = "Replaced by a newer connection to this channel";
const char* const reason_socket_closing = "Socket closing";
const char* const reason_channel_expired = "Channel expired";
const char* const reason_channel_deleted = "Channel deleted";
const char* const reason_channel_gone = "Channel not found"; // removed during the handshake
const char* const reason_shutdown = "Server shutting down";
const char* const reason_token_expired = "Token expired";

// ---------------------------------------------------------------- small helpers

bool starts_with(const std::string& s, const std::string& prefix) {
    return s.compare(0, prefix.size(), prefix) == 0;
}

bool same_socket(const connection_hdl& a, const connection_hdl& b) {
    return !a.owner_before(b) && !b.owner_before(a);
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

std::string url_decode(const std::string& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '+') {
            out += ' ';
        } else if (s[i] == '%' && i + 2 < s.size() &&
                   std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
                   std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
            out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

// "a=1&b=2" (form bodies and query strings).
std::map<std::string, std::string> parse_form(const std::string& text) {
    std::map<std::string, std::string> out;
    std::size_t pos = 0;
    while (pos <= text.size()) {
        const std::size_t amp = std::min(text.find('&', pos), text.size());
        const std::string pair = text.substr(pos, amp - pos);
        if (!pair.empty()) {
            const std::size_t eq = pair.find('=');
            if (eq == std::string::npos)
                out[url_decode(pair)] = "";
            else
                out[url_decode(pair.substr(0, eq))] = url_decode(pair.substr(eq + 1));
        }
        pos = amp + 1;
    }
    return out;
}

std::optional<std::string> base64_decode(const std::string& in) {
    auto value = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+') return 62;
        if (c == '/') return 63;
        return -1;
    };
    std::string out;
    unsigned bits = 0;
    int nbits = 0;
    std::size_t i = 0;
    for (; i < in.size() && in[i] != '='; ++i) {
        const int v = value(in[i]);
        if (v < 0) return std::nullopt;
        bits = (bits << 6) | static_cast<unsigned>(v);
        nbits += 6;
        if (nbits >= 8) {
            nbits -= 8;
            out += static_cast<char>((bits >> nbits) & 0xFFu);
        }
    }
    for (; i < in.size(); ++i)
        if (in[i] != '=') return std::nullopt;
    return out;
}

// A path segment long enough to be an id is shortened in logs: channel ids
// are the credential of a WebSocket.
std::string loggable_path(const std::string& path) {
    std::string out;
    std::size_t pos = 0;
    while (pos < path.size()) {
        std::size_t slash = path.find('/', pos + 1);
        if (slash == std::string::npos) slash = path.size();
        const std::string seg = path.substr(pos, slash - pos);
        out += seg.size() > 20 ? seg.substr(0, 19) + "..." : seg;
        pos = slash;
    }
    return out;
}

std::string loggable_id(const std::string& id) {
    return id.size() > 19 ? id.substr(0, 18) + "..." : id;
}

// Whole seconds to wait, rounded up and at least 1, for Retry-After.
long long retry_after_seconds(steady::duration d) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
    return std::max<long long>(1, (ms + 999) / 1000);
}

// ---------------------------------------------------------------- state

struct server_stats {
    std::uint64_t token_requests = 0, tokens_issued = 0, token_rejections = 0;
    std::uint64_t channels_created = 0, channels_replaced = 0, channels_expired = 0,
                  channels_deleted = 0;
    std::uint64_t handshakes = 0, handshakes_rejected = 0, sockets_opened = 0,
                  sockets_taken_over = 0;
    std::uint64_t socket_closing_sent = 0, sockets_closed_after_grace = 0,
                  sockets_closed_token_expired = 0;
    std::uint64_t heartbeats_sent = 0, pongs_sent = 0, events_sent = 0, events_lost = 0;
    std::uint64_t rest_requests = 0, rest_401 = 0, rest_429 = 0;
};

struct token_record {
    std::string client_id;
    steady::time_point expires;
};

struct channel_record {
    std::string id;
    std::string owner;     // OAuth client id
    bool implicit = false; // seed mode: made by a handshake on a non-channel path
    std::uint64_t creation_number = 0;
    steady::time_point expires = steady::time_point::max();
    std::vector<std::string> topics; // unique, in subscription order
    std::uint64_t sequence = 0;      // last event number, across every socket
    connection_hdl active;           // the socket events go to; empty if none
    steady::time_point next_event;
    timer_ptr event_timer, expiry_timer;
};

struct socket_record {
    std::uint64_t number = 0; // for logs
    std::string channel_id;
    bool open = false;
    bool closing = false;                            // we sent a close; no more traffic
    std::optional<steady::time_point> token_expires; // seed mode
    steady::time_point next_heartbeat;
    timer_ptr heartbeat_timer, closing_timer, token_timer;
};

struct auth_result {
    bool ok = false;
    std::string client_id;
    steady::time_point expires;
    std::string message;
};

struct http_reply {
    int status = 200;
    std::string body; // JSON unless empty
    std::vector<std::pair<std::string, std::string>> headers;
};

// Request bytes end up in JSON (a seed-mode path is a topic name): invalid
// UTF-8 is replaced instead of throwing out of a handler.
std::string to_text(const json& j) {
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

http_reply json_reply(int status, const json& body) { return {status, to_text(body), {}}; }

// Genesys' REST error body.
http_reply api_error(int status, const std::string& code, const std::string& message) {
    return json_reply(status, {{"message", message}, {"code", code}, {"status", status}});
}

// ---------------------------------------------------------------- the server

class local_server {
public:
    explicit local_server(server_options o) : opts_(std::move(o)), started_(steady::now()) {}

    int run() {
        server_.init_asio();
        // websocketpp's access log writes to stdout; stdout is ours (the
        // "listening" line and the final stats).
        server_.clear_access_channels(websocketpp::log::alevel::all);
        server_.get_alog().set_ostream(&std::cerr);
        server_.clear_error_channels(websocketpp::log::elevel::all);
        server_.set_error_channels(websocketpp::log::elevel::fatal);
        server_.set_close_handshake_timeout(2000);

        server_.set_validate_handler([this](connection_hdl h) { return on_validate(h); });
        server_.set_open_handler([this](connection_hdl h) { on_open(h); });
        server_.set_close_handler([this](connection_hdl h) { on_socket_gone(h); });
        server_.set_fail_handler([this](connection_hdl h) { on_socket_gone(h); });
        server_.set_message_handler([this](connection_hdl h, ws_server::message_ptr m) {
            on_message(h, m->get_payload());
        });
        server_.set_http_handler([this](connection_hdl h) { on_http(h); });

        std::error_code ec;
        server_.listen(asio::ip::tcp::endpoint(asio::ip::make_address_v4("127.0.0.1"), opts_.port),
                       ec);
        if (!ec) port_ = server_.get_local_endpoint(ec).port();
        if (!ec) server_.start_accept(ec);
        if (ec) {
            std::cerr << "error: cannot listen on 127.0.0.1:" << opts_.port << ": " << ec.message()
                      << "\n";
            return 1;
        }

        signals_.emplace(io(), SIGINT, SIGTERM);
        signals_->async_wait([this](const std::error_code& e, int sig) {
            if (!e) shutdown(sig == SIGINT ? "SIGINT" : "SIGTERM");
        });
        if (opts_.duration.count() > 0)
            duration_timer_ =
                start_timer(steady::now() + opts_.duration, [this] { shutdown("duration over"); });

        std::cout << "listening on 127.0.0.1:" << port_
                  << std::endl; // endl: tests wait for this line
        log("serving" + std::string(opts_.seed_mode ? " in seed mode" : "") + ": token lifetime " +
            seconds_text(opts_.token_lifetime) + ", channel lifetime " +
            seconds_text(opts_.channel_lifetime) + ", heartbeat " +
            seconds_text(opts_.heartbeat_interval) + ", socket_closing " +
            seconds_text(opts_.socket_closing_interval) + " + " +
            seconds_text(opts_.socket_closing_grace) + ", events every " +
            std::to_string(opts_.event_interval.count()) + " ms");

        server_.run();
        // A late SIGINT/SIGTERM (say a script's second one) must not kill us
        // between here and exit and lose the stats line: block them; the
        // signal_set's destructor would restore their default action.
        sigset_t late;
        sigemptyset(&late);
        sigaddset(&late, SIGINT);
        sigaddset(&late, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &late, nullptr);
        std::cout << to_text(stats_json()) << std::endl;
        return 0;
    }

private:
    // ------------------------------------------------------------ plumbing

    asio::io_context& io() { return server_.get_io_service(); }

    void log(const std::string& line) const {
        if (opts_.quiet) return;
        const double t = std::chrono::duration<double>(steady::now() - started_).count();
        std::fprintf(stderr, "[%9.3f] %s\n", t, line.c_str());
    }

    static std::string seconds_text(milliseconds d) {
        if (d.count() == 0) return "off";
        char buf[32];
        std::snprintf(buf, sizeof buf, "%gs", static_cast<double>(d.count()) / 1000.0);
        return buf;
    }

    // A one-shot timer; the callback does not run when the timer is
    // cancelled or destroyed, which is how records stop their timers.
    timer_ptr start_timer(steady::time_point when, std::function<void()> fn) {
        auto t = std::make_shared<asio::steady_timer>(io(), when);
        t->async_wait([fn = std::move(fn)](const std::error_code& ec) {
            if (!ec) fn();
        });
        return t;
    }

    static void stop_timer(timer_ptr& t) {
        if (t) t->cancel();
        t.reset();
    }

    std::string random_text(std::size_t n, const char* alphabet) {
        const std::string a(alphabet);
        std::uniform_int_distribution<std::size_t> pick(0, a.size() - 1);
        std::string s;
        for (std::size_t i = 0; i < n; ++i)
            s += a[pick(rng_)];
        return s;
    }

    std::string correlation_id() {
        const char* hex = "0123456789abcdef";
        return random_text(8, hex) + "-" + random_text(4, hex) + "-4" + random_text(3, hex) + "-" +
               random_text(1, "89ab") + random_text(3, hex) + "-" + random_text(12, hex);
    }

    // ISO-8601 UTC with milliseconds, as Genesys writes dates.
    static std::string iso8601(steady::time_point when) {
        const auto wall =
            std::chrono::system_clock::now() +
            std::chrono::duration_cast<std::chrono::system_clock::duration>(when - steady::now());
        const auto ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(wall.time_since_epoch()).count();
        const std::time_t secs = static_cast<std::time_t>(ms / 1000);
        std::tm tm{};
        gmtime_r(&secs, &tm);
        char date[32];
        std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
        char buf[48];
        std::snprintf(buf, sizeof buf, "%s.%03dZ", date, static_cast<int>(ms % 1000));
        return buf;
    }

    bool send_json(const connection_hdl& h, const json& j) {
        std::error_code ec;
        server_.send(h, to_text(j), websocketpp::frame::opcode::text, ec);
        return !ec;
    }

    // ------------------------------------------------------------ tokens and limits

    auth_result check_bearer(const std::string& header) const {
        auth_result r;
        if (lower(header.substr(0, 7)) != "bearer " || header.size() <= 7) {
            r.message = "Missing bearer token";
            return r;
        }
        const auto it = tokens_.find(header.substr(7));
        if (it == tokens_.end()) {
            r.message = "Invalid token";
        } else if (it->second.expires <= steady::now()) {
            r.message = "Token expired";
        } else {
            r.ok = true;
            r.client_id = it->second.client_id;
            r.expires = it->second.expires;
        }
        return r;
    }

    // A test hook can force the next n calls of a scope to answer 429.
    std::optional<http_reply> forced_429(const std::string& scope) {
        auto it = forced_429_.find(scope);
        if (it == forced_429_.end() || it->second == 0) return std::nullopt;
        --it->second;
        return too_many_requests(forced_retry_after_);
    }

    http_reply too_many_requests(long long retry_after) const {
        http_reply r = api_error(429, "too.many.requests",
                                 "Rate limit exceeded the maximum. Retry the request in [" +
                                     std::to_string(retry_after) + "] seconds");
        r.headers.emplace_back("Retry-After", std::to_string(retry_after));
        return r;
    }

    // Fixed window per client: the first request opens a window of
    // --rate-window; more than --rate-limit requests in it get 429.
    std::optional<http_reply> rate_limited(const std::string& client_id) {
        if (opts_.rate_limit == 0) return std::nullopt;
        auto& w = rate_windows_[client_id];
        const auto now = steady::now();
        if (w.count == 0 || now >= w.start + opts_.rate_window) {
            w.start = now;
            w.count = 0;
        }
        if (w.count >= opts_.rate_limit)
            return too_many_requests(retry_after_seconds(w.start + opts_.rate_window - now));
        ++w.count;
        return std::nullopt;
    }

    // ------------------------------------------------------------ channels

    json channel_json(const channel_record& ch) const {
        return {{"id", ch.id},
                {"connectUri", "ws://127.0.0.1:" + std::to_string(port_) + "/channels/" + ch.id},
                {"expires", iso8601(ch.expires)}};
    }

    static json topics_json(const channel_record& ch) {
        json entities = json::array();
        for (const auto& t : ch.topics)
            entities.push_back({{"id", t}});
        return {{"entities", entities}};
    }

    bool connected(const channel_record& ch) const { return sockets_.count(ch.active) != 0; }

    channel_record& add_channel(const std::string& id, const std::string& owner, bool implicit) {
        channel_record& ch = channels_[id];
        ch.id = id;
        ch.owner = owner;
        ch.implicit = implicit;
        ch.creation_number = ++channel_counter_;
        if (!implicit) renew_channel(ch);
        if (opts_.event_interval.count() > 0) {
            ch.next_event = steady::now() + opts_.event_interval;
            schedule_events(ch);
        }
        return ch;
    }

    void renew_channel(channel_record& ch) {
        ch.expires = steady::now() + opts_.channel_lifetime;
        stop_timer(ch.expiry_timer);
        ch.expiry_timer = start_timer(ch.expires, [this, id = ch.id] {
            if (!channels_.count(id)) return;
            ++stats_.channels_expired;
            log("channel " + loggable_id(id) + " expired");
            remove_channel(id, reason_channel_expired);
        });
    }

    void remove_channel(const std::string& id, const char* close_reason) {
        auto it = channels_.find(id);
        if (it == channels_.end()) return;
        channel_record& ch = it->second;
        if (connected(ch)) close_socket(ch.active, close_going_away, close_reason);
        stop_timer(ch.event_timer);
        stop_timer(ch.expiry_timer);
        channels_.erase(it);
    }

    // Creating one more than --max-channels replaces the oldest channel
    // without an active connection, as Genesys does.
    std::optional<http_reply> make_room_for_channel(const std::string& owner) {
        std::size_t owned = 0;
        const channel_record* oldest_idle = nullptr;
        for (const auto& [id, ch] : channels_) {
            if (ch.implicit || ch.owner != owner) continue;
            ++owned;
            if (!connected(ch) &&
                (!oldest_idle || ch.creation_number < oldest_idle->creation_number))
                oldest_idle = &ch;
        }
        if (owned < opts_.max_channels) return std::nullopt;
        if (!oldest_idle)
            return api_error(400, "bad.request",
                             "Channel limit (" + std::to_string(opts_.max_channels) +
                                 ") reached and every channel has an active connection");
        const std::string victim = oldest_idle->id;
        ++stats_.channels_replaced;
        log("channel limit reached: replacing idle channel " + loggable_id(victim));
        remove_channel(victim, reason_channel_deleted);
        return std::nullopt;
    }

    void schedule_events(channel_record& ch) {
        ch.event_timer = start_timer(ch.next_event, [this, id = ch.id] {
            auto it = channels_.find(id);
            if (it == channels_.end()) return;
            produce_events(it->second);
            it->second.next_event += opts_.event_interval;
            schedule_events(it->second);
        });
    }

    // One event per subscribed topic. Numbers count per channel, so a client
    // sees a gap for events produced while it had no socket (they are lost:
    // Genesys has no durability).
    void produce_events(channel_record& ch) {
        const bool live = connected(ch);
        for (const auto& topic : ch.topics) {
            const std::uint64_t seq = ++ch.sequence;
            if (live &&
                send_json(
                    ch.active,
                    {{"topicName", topic},
                     {"eventBody",
                      {{"sequence", seq}, {"topic", topic}, {"sentAt", iso8601(steady::now())}}},
                     {"metadata", {{"CorrelationId", correlation_id()}}}}))
                ++stats_.events_sent;
            else
                ++stats_.events_lost;
        }
    }

    // Parses [{"id":"topic"},...]; on error returns the message for a 400.
    std::optional<std::string> parse_topic_list(const json& list,
                                                std::vector<std::string>& out) const {
        if (!list.is_array()) return "expected a JSON array of {\"id\": \"topic\"} objects";
        for (const auto& item : list) {
            const json* id = nullptr;
            if (item.is_object() && item.contains("id"))
                id = &item["id"];
            else if (item.is_string())
                id = &item; // the socket's subscribe message lists plain strings
            if (!id || !id->is_string() || id->get_ref<const std::string&>().empty())
                return "every topic needs a non-empty string id";
            const auto& topic = id->get_ref<const std::string&>();
            if (topic.size() > opts_.max_topic_length)
                return "topic of " + std::to_string(topic.size()) + " characters; the limit is " +
                       std::to_string(opts_.max_topic_length);
            out.push_back(topic);
        }
        return std::nullopt;
    }

    // Replaces or extends a channel's topics; nothing changes on error.
    std::optional<std::string> subscribe(channel_record& ch, const std::vector<std::string>& topics,
                                         bool replace) {
        std::vector<std::string> next = replace ? std::vector<std::string>{} : ch.topics;
        std::set<std::string> seen(next.begin(), next.end());
        for (const auto& t : topics)
            if (seen.insert(t).second) next.push_back(t);
        if (next.size() > opts_.max_topics)
            return std::to_string(next.size()) + " topics on one channel; the limit is " +
                   std::to_string(opts_.max_topics);
        ch.topics = std::move(next);
        if (!ch.implicit) renew_channel(ch); // subscribing keeps a channel alive
        return std::nullopt;
    }

    // ------------------------------------------------------------ sockets

    // By value: callers pass channel_record::active, which detach() resets.
    void close_socket(connection_hdl h, std::uint16_t code, const std::string& reason) {
        auto it = sockets_.find(h);
        if (it == sockets_.end() || it->second.closing) return;
        socket_record& s = it->second;
        s.closing = true;
        detach(h, s);
        stop_timer(s.heartbeat_timer);
        stop_timer(s.closing_timer);
        stop_timer(s.token_timer);
        log("socket #" + std::to_string(s.number) + " closing: " + std::to_string(code) + " " +
            reason);
        std::error_code ec;
        server_.close(h, code, reason, ec);
        if (ec) log("socket #" + std::to_string(s.number) + ": close failed: " + ec.message());
    }

    // The channel stops sending to this socket.
    void detach(const connection_hdl& h, const socket_record& s) {
        auto it = channels_.find(s.channel_id);
        if (it != channels_.end() && same_socket(it->second.active, h)) it->second.active.reset();
    }

    void reject(const ws_server::connection_ptr& con, const http_reply& reply,
                const std::string& why) {
        ++stats_.handshakes_rejected;
        const int status = reply.status;
        con->set_status(static_cast<websocketpp::http::status_code::value>(status));
        con->replace_header("Content-Type", "application/json");
        con->set_body(reply.body);
        log("handshake " + loggable_path(path_of(con->get_resource())) + " rejected " +
            std::to_string(status) + ": " + why);
    }

    static std::string path_of(const std::string& resource) {
        return resource.substr(0, resource.find('?'));
    }

    bool on_validate(connection_hdl h) {
        ++stats_.handshakes;
        auto con = server_.get_con_from_hdl(h);
        const std::string path = path_of(con->get_resource());
        if (shutting_down_) {
            reject(con, api_error(503, "service.unavailable", reason_shutdown), "shutting down");
            return false;
        }
        socket_record s;
        std::string owner;
        if (opts_.seed_mode) {
            const auth_result auth = check_bearer(con->get_request_header("Authorization"));
            if (!auth.ok) {
                reject(con, json_reply(401, {{"error", "unauthorized"}, {"message", auth.message}}),
                       auth.message);
                return false;
            }
            s.token_expires = auth.expires;
            owner = auth.client_id;
        }
        const std::string prefix = "/channels/";
        if (starts_with(path, prefix)) {
            s.channel_id = path.substr(prefix.size());
            const auto it = channels_.find(s.channel_id);
            if (it == channels_.end() || it->second.expires <= steady::now()) {
                reject(con, api_error(404, "not.found", "Channel not found"), "unknown channel");
                return false;
            }
        } else if (opts_.seed_mode) {
            // The seed's service has no channels: every path is one stream,
            // with the path as its only topic.
            s.channel_id = "seed:" + path;
            if (!channels_.count(s.channel_id))
                add_channel(s.channel_id, owner, true).topics.push_back(path);
        } else {
            reject(con, api_error(404, "not.found", "Not a channel: use /channels/<id>"),
                   "not a channel");
            return false;
        }
        s.number = ++socket_counter_;
        sockets_[h] = std::move(s);
        return true;
    }

    void on_open(connection_hdl h) {
        auto sit = sockets_.find(h);
        if (sit == sockets_.end()) return;
        socket_record& s = sit->second;
        s.open = true;
        ++stats_.sockets_opened;
        const std::string num = "socket #" + std::to_string(s.number);
        auto cit = channels_.find(s.channel_id);
        if (shutting_down_ || cit == channels_.end()) {
            close_socket(h, close_going_away,
                         shutting_down_ ? reason_shutdown : reason_channel_gone);
            return;
        }
        channel_record& ch = cit->second;
        if (connected(ch)) {
            // A second socket on a channel disconnects the first (Genesys).
            const connection_hdl old = ch.active;
            ++stats_.sockets_taken_over;
            log(num + " takes over channel " + loggable_id(ch.id) + " from socket #" +
                std::to_string(sockets_[old].number));
            close_socket(old, close_normal, reason_takeover);
        }
        ch.active = h;
        log(num + " open on channel " + loggable_id(ch.id));

        const auto now = steady::now();
        if (opts_.heartbeat_interval.count() > 0) {
            s.next_heartbeat = now + opts_.heartbeat_interval;
            schedule_heartbeat(h, s);
        }
        if (opts_.socket_closing_interval.count() > 0)
            s.closing_timer = start_timer(now + opts_.socket_closing_interval,
                                          [this, h] { announce_socket_closing(h); });
        if (s.token_expires)
            s.token_timer = start_timer(*s.token_expires, [this, h] {
                ++stats_.sockets_closed_token_expired;
                close_socket(h, close_token_expired, reason_token_expired);
            });
    }

    void schedule_heartbeat(const connection_hdl& h, socket_record& s) {
        s.heartbeat_timer = start_timer(s.next_heartbeat, [this, h] {
            auto it = sockets_.find(h);
            if (it == sockets_.end() || it->second.closing) return;
            if (heartbeats_on_ &&
                send_json(h, {{"topicName", "channel.metadata"},
                              {"eventBody", {{"message", "WebSocket Heartbeat"}}}}))
                ++stats_.heartbeats_sent;
            it->second.next_heartbeat += opts_.heartbeat_interval;
            schedule_heartbeat(h, it->second);
        });
    }

    // v2.system.socket_closing, then a forced close after the grace period
    // unless the client has moved to a new socket by then.
    void announce_socket_closing(const connection_hdl& h) {
        auto it = sockets_.find(h);
        if (it == sockets_.end() || it->second.closing) return;
        socket_record& s = it->second;
        const long long grace = retry_after_seconds(opts_.socket_closing_grace);
        send_json(h, {{"topicName", "v2.system.socket_closing"},
                      {"eventBody",
                       {{"message", "This socket will close in " + std::to_string(grace) +
                                        " seconds; connect a new WebSocket to this channel"}}}});
        ++stats_.socket_closing_sent;
        log("socket #" + std::to_string(s.number) + ": socket_closing sent");
        s.closing_timer = start_timer(steady::now() + opts_.socket_closing_grace, [this, h] {
            ++stats_.sockets_closed_after_grace;
            close_socket(h, close_going_away, reason_socket_closing);
        });
    }

    void on_socket_gone(connection_hdl h) {
        auto it = sockets_.find(h);
        if (it == sockets_.end()) return;
        socket_record& s = it->second;
        detach(h, s);
        std::error_code ec;
        if (auto con = server_.get_con_from_hdl(h, ec); con && s.open) {
            log("socket #" + std::to_string(s.number) + " closed (sent " +
                std::to_string(con->get_local_close_code()) + ", received " +
                std::to_string(con->get_remote_close_code()) + ")");
        }
        stop_timer(s.heartbeat_timer);
        stop_timer(s.closing_timer);
        stop_timer(s.token_timer);
        sockets_.erase(it);
        if (shutting_down_ && sockets_.empty()) stop_timer(shutdown_timer_);
    }

    void on_message(const connection_hdl& h, const std::string& payload) {
        auto it = sockets_.find(h);
        if (it == sockets_.end() || it->second.closing) return;
        const json j = json::parse(payload, nullptr, false);
        const json* message = j.is_object() && j.contains("message") ? &j["message"] : nullptr;
        if (!message || !message->is_string()) {
            log("socket #" + std::to_string(it->second.number) +
                ": ignored a message that is not a request");
            return;
        }
        const auto& what = message->get_ref<const std::string&>();
        if (what == "ping") {
            if (pongs_on_ && send_json(h, {{"topicName", "channel.metadata"},
                                           {"eventBody", {{"message", "pong"}}}}))
                ++stats_.pongs_sent;
        } else if (what == "subscribe") {
            auto cit = channels_.find(it->second.channel_id);
            std::vector<std::string> topics;
            std::optional<std::string> error = j.contains("topics")
                                                   ? parse_topic_list(j["topics"], topics)
                                                   : std::string("no topics");
            if (!error && cit != channels_.end()) error = subscribe(cit->second, topics, false);
            if (error)
                send_json(h, {{"topicName", "channel.metadata"},
                              {"eventBody", {{"message", "subscribe rejected: " + *error}}}});
        }
    }

    // ------------------------------------------------------------ REST

    void on_http(connection_hdl h) {
        auto con = server_.get_con_from_hdl(h);
        ++stats_.rest_requests;
        const std::string method = con->get_request().get_method();
        const std::string resource = con->get_resource();
        const std::string path = path_of(resource);
        const std::string query =
            resource.size() > path.size() ? resource.substr(path.size() + 1) : "";
        http_reply r = route(method, path, query, con);
        if (r.status == 401) ++stats_.rest_401;
        if (r.status == 429) ++stats_.rest_429;
        con->set_status(static_cast<websocketpp::http::status_code::value>(r.status));
        for (const auto& [name, value] : r.headers)
            con->replace_header(name, value);
        if (!r.body.empty() && method != "HEAD") {
            con->replace_header("Content-Type", "application/json");
            con->set_body(r.body);
        }
        log(method + " " + loggable_path(path) + " -> " + std::to_string(r.status));
    }

    http_reply route(const std::string& method, const std::string& path, const std::string& query,
                     const ws_server::connection_ptr& con) {
        if (path == "/oauth/token") {
            if (method != "POST") return api_error(405, "method.not.allowed", "Use POST");
            return issue_token(con->get_request_header("Authorization"), con->get_request_body());
        }
        const std::string api = "/api/v2/notifications/channels";
        if (path == api || starts_with(path, api + "/"))
            return notifications_api(method, path.substr(api.size()), con);
        if (starts_with(path, "/test/")) return test_api(method, path.substr(6), parse_form(query));
        return api_error(404, "not.found", "No such resource");
    }

    http_reply issue_token(const std::string& authorization, const std::string& body) {
        ++stats_.token_requests;
        if (auto busy = forced_429("token")) return *busy;
        std::optional<std::string> credentials;
        if (lower(authorization.substr(0, 6)) == "basic ")
            credentials = base64_decode(authorization.substr(6));
        const std::size_t colon = credentials ? credentials->find(':') : std::string::npos;
        if (colon == std::string::npos || credentials->substr(0, colon) != opts_.client_id ||
            credentials->substr(colon + 1) != opts_.client_secret) {
            ++stats_.token_rejections;
            log("token request rejected: wrong client credentials");
            http_reply r = json_reply(401, {{"error", "invalid_client"},
                                            {"error_description", "client authentication failed"}});
            r.headers.emplace_back("WWW-Authenticate", "Basic realm=\"oauth\"");
            return r;
        }
        const auto form = parse_form(body);
        const auto grant = form.find("grant_type");
        if (grant == form.end() || grant->second != "client_credentials")
            return json_reply(400,
                              {{"error", "unsupported_grant_type"},
                               {"error_description", "grant_type must be client_credentials"}});
        // Forget tokens long expired; recent ones stay to answer "Token expired".
        const auto now = steady::now();
        for (auto it = tokens_.begin(); it != tokens_.end();)
            it = it->second.expires + std::chrono::hours(1) < now ? tokens_.erase(it)
                                                                  : std::next(it);
        const std::string token =
            random_text(48, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
        tokens_[token] = {opts_.client_id, now + opts_.token_lifetime};
        ++stats_.tokens_issued;
        log("token issued (lifetime " + seconds_text(opts_.token_lifetime) + ")");
        return json_reply(200, {{"access_token", token},
                                {"token_type", "bearer"},
                                {"expires_in", opts_.token_lifetime.count() / 1000}});
    }

    http_reply notifications_api(const std::string& method, const std::string& rest,
                                 const ws_server::connection_ptr& con) {
        const auth_result auth = check_bearer(con->get_request_header("Authorization"));
        if (!auth.ok) return api_error(401, "bad.credentials", auth.message);
        if (auto busy = forced_429("api")) return *busy;
        if (auto busy = rate_limited(auth.client_id)) return *busy;

        if (rest.empty() || rest == "/") {
            if (method == "POST") {
                if (auto busy = forced_429("channels")) return *busy;
                if (auto full = make_room_for_channel(auth.client_id)) return *full;
                const std::string id =
                    "streaming-0-" + random_text(26, "abcdefghijklmnopqrstuvwxyz0123456789");
                const channel_record& ch = add_channel(id, auth.client_id, false);
                ++stats_.channels_created;
                log("channel " + loggable_id(id) + " created");
                return json_reply(200, channel_json(ch));
            }
            if (method == "GET") {
                json entities = json::array();
                for (const auto& [id, ch] : channels_)
                    if (!ch.implicit && ch.owner == auth.client_id)
                        entities.push_back(channel_json(ch));
                return json_reply(200, {{"entities", entities}});
            }
            return api_error(405, "method.not.allowed", "Use GET or POST");
        }

        const std::size_t slash = rest.find('/', 1);
        const std::string id =
            rest.substr(1, slash == std::string::npos ? std::string::npos : slash - 1);
        const std::string sub = slash == std::string::npos ? "" : rest.substr(slash);
        auto it = channels_.find(id);
        const bool found =
            it != channels_.end() && !it->second.implicit && it->second.owner == auth.client_id;
        if (sub.empty()) {
            if (method == "HEAD") return {found ? 200 : 404, "", {}};
            if (method == "DELETE") {
                if (!found) return api_error(404, "not.found", "Channel not found");
                ++stats_.channels_deleted;
                log("channel " + loggable_id(id) + " deleted");
                remove_channel(id, reason_channel_deleted);
                return {204, "", {}};
            }
            return api_error(405, "method.not.allowed", "Use HEAD or DELETE");
        }
        if (sub != "/subscriptions") return api_error(404, "not.found", "No such resource");
        if (!found) return api_error(404, "not.found", "Channel not found");
        channel_record& ch = it->second;
        if (method == "GET") return json_reply(200, topics_json(ch));
        if (method == "DELETE") {
            ch.topics.clear();
            return {204, "", {}};
        }
        if (method != "PUT" && method != "POST")
            return api_error(405, "method.not.allowed", "Use GET, PUT, POST or DELETE");
        if (auto busy = forced_429("subscriptions")) return *busy;
        const json body = json::parse(con->get_request_body(), nullptr, false);
        std::vector<std::string> topics;
        std::optional<std::string> error =
            body.is_discarded() ? std::string("body is not JSON") : parse_topic_list(body, topics);
        if (!error) error = subscribe(ch, topics, method == "PUT");
        if (error) return api_error(400, "bad.request", *error);
        log("channel " + loggable_id(id) +
            (method == "PUT" ? " subscriptions replaced: " : " subscriptions added: ") +
            std::to_string(ch.topics.size()) + " topics");
        return json_reply(200, topics_json(ch));
    }

    // ------------------------------------------------------------ /test/ control API

    http_reply test_api(const std::string& method, const std::string& what,
                        const std::map<std::string, std::string>& query) {
        auto arg = [&query](const std::string& name, const std::string& fallback) {
            const auto it = query.find(name);
            return it == query.end() ? fallback : it->second;
        };
        auto number = [](const std::string& text, long long fallback) {
            try {
                std::size_t used = 0;
                const long long v = std::stoll(text, &used);
                return used == text.size() && v >= 0 ? v : fallback;
            } catch (const std::exception&) {
                return fallback;
            }
        };
        const auto ok = [] { return json_reply(200, {{"ok", true}}); };
        if (what == "stats" && method == "GET") return json_reply(200, stats_json());
        if (what == "channels" && method == "GET") return json_reply(200, channels_debug_json());
        if (method != "POST") return api_error(405, "method.not.allowed", "Use POST");

        auto suffix = [&what](const std::string& prefix) -> std::optional<std::string> {
            if (!starts_with(what, prefix) || what.size() == prefix.size()) return std::nullopt;
            return what.substr(prefix.size());
        };
        if (what == "stop-heartbeats" || what == "start-heartbeats") {
            heartbeats_on_ = what == "start-heartbeats";
            log(std::string("test: heartbeats ") + (heartbeats_on_ ? "on" : "off"));
            return ok();
        }
        if (what == "stop-pongs" || what == "start-pongs") {
            pongs_on_ = what == "start-pongs";
            log(std::string("test: pongs ") + (pongs_on_ ? "on" : "off"));
            return ok();
        }
        if (what == "expire-tokens") {
            const auto now = steady::now();
            for (auto& [token, rec] : tokens_)
                rec.expires = std::min(rec.expires, now);
            std::vector<connection_hdl> seed_sockets;
            for (const auto& [h, s] : sockets_)
                if (s.token_expires && s.open && !s.closing) seed_sockets.push_back(h);
            for (const auto& h : seed_sockets) {
                ++stats_.sockets_closed_token_expired;
                close_socket(h, close_token_expired, reason_token_expired);
            }
            log("test: every token expired");
            return ok();
        }
        if (auto n = suffix("rate-limit-next/")) {
            const std::string scope = arg("scope", "subscriptions");
            if (scope != "subscriptions" && scope != "channels" && scope != "token" &&
                scope != "api")
                return api_error(400, "bad.request",
                                 "scope is subscriptions, channels, token or api");
            forced_429_[scope] = static_cast<unsigned>(number(*n, 0));
            forced_retry_after_ = std::max(1LL, number(arg("retry_after", "1"), 1));
            log("test: next " + std::to_string(forced_429_[scope]) + " " + scope +
                " calls get 429");
            return ok();
        }
        if (auto id = suffix("delete-channel/")) {
            if (!channels_.count(*id)) return api_error(404, "not.found", "Channel not found");
            ++stats_.channels_deleted;
            log("test: channel " + loggable_id(*id) + " deleted");
            remove_channel(*id, reason_channel_deleted);
            return ok();
        }
        if (auto id = suffix("expire-channel/")) {
            if (!channels_.count(*id)) return api_error(404, "not.found", "Channel not found");
            ++stats_.channels_expired;
            log("test: channel " + loggable_id(*id) + " expired");
            remove_channel(*id, reason_channel_expired);
            return ok();
        }
        if (auto id = suffix("socket-closing/")) {
            auto it = channels_.find(*id);
            if (it == channels_.end() || !connected(it->second))
                return api_error(404, "not.found", "No open socket");
            const connection_hdl h = it->second.active;
            stop_timer(sockets_[h].closing_timer);
            announce_socket_closing(h);
            return ok();
        }
        if (auto id = suffix("close-socket/")) {
            auto it = channels_.find(*id);
            if (it == channels_.end() || !connected(it->second))
                return api_error(404, "not.found", "No open socket");
            const connection_hdl h = it->second.active;
            if (arg("drop", "0") == "1") {
                // TCP goes away without a close frame: the client sees 1006.
                log("test: socket #" + std::to_string(sockets_[h].number) + " dropped");
                detach(h, sockets_[h]);
                sockets_[h].closing = true;
                std::error_code ec;
                if (auto con = server_.get_con_from_hdl(h, ec)) con->terminate(ec);
                return ok();
            }
            const long long code = number(arg("code", "1011"), -1);
            namespace cs = websocketpp::close::status;
            if (code < 1000 || code > 4999 || cs::invalid(static_cast<cs::value>(code)) ||
                cs::reserved(static_cast<cs::value>(code)))
                return api_error(400, "bad.request",
                                 "code must be a close code a server may send (1000..4999)");
            close_socket(h, static_cast<std::uint16_t>(code), arg("reason", "Closed by test hook"));
            return ok();
        }
        return api_error(404, "not.found", "No such test hook");
    }

    json channels_debug_json() const {
        json list = json::array();
        const auto now = steady::now();
        for (const auto& [id, ch] : channels_) {
            list.push_back(
                {{"id", id},
                 {"owner", ch.owner},
                 {"implicit", ch.implicit},
                 {"topics", ch.topics},
                 {"sequence", ch.sequence},
                 {"connected", connected(ch)},
                 {"expires_in_ms",
                  ch.implicit
                      ? json(nullptr)
                      : json(std::chrono::duration_cast<milliseconds>(ch.expires - now).count())}});
        }
        return {{"channels", list}};
    }

    json stats_json() const {
        std::size_t open_sockets = 0;
        for (const auto& [h, s] : sockets_)
            if (s.open && !s.closing) ++open_sockets;
        const server_stats& s = stats_;
        return {{"token_requests", s.token_requests},
                {"tokens_issued", s.tokens_issued},
                {"token_rejections", s.token_rejections},
                {"channels_created", s.channels_created},
                {"channels_replaced", s.channels_replaced},
                {"channels_expired", s.channels_expired},
                {"channels_deleted", s.channels_deleted},
                {"channels_open", channels_.size()},
                {"handshakes", s.handshakes},
                {"handshakes_rejected", s.handshakes_rejected},
                {"sockets_opened", s.sockets_opened},
                {"sockets_open", open_sockets},
                {"sockets_taken_over", s.sockets_taken_over},
                {"socket_closing_sent", s.socket_closing_sent},
                {"sockets_closed_after_grace", s.sockets_closed_after_grace},
                {"sockets_closed_token_expired", s.sockets_closed_token_expired},
                {"heartbeats_sent", s.heartbeats_sent},
                {"pongs_sent", s.pongs_sent},
                {"events_sent", s.events_sent},
                {"events_lost", s.events_lost},
                {"rest_requests", s.rest_requests},
                {"rest_401", s.rest_401},
                {"rest_429", s.rest_429}};
    }

    // ------------------------------------------------------------ shutdown

    void shutdown(const std::string& why) {
        if (shutting_down_) return;
        shutting_down_ = true;
        log("shutting down: " + why);
        if (signals_) signals_->cancel();
        stop_timer(duration_timer_);
        std::error_code ec;
        server_.stop_listening(ec);
        std::vector<connection_hdl> open;
        for (const auto& [h, s] : sockets_)
            if (s.open) open.push_back(h);
        for (const auto& h : open)
            close_socket(h, close_going_away, reason_shutdown);
        std::vector<std::string> ids;
        for (const auto& [id, ch] : channels_)
            ids.push_back(id);
        for (const auto& id : ids)
            remove_channel(id, reason_shutdown);
        // Bounded: a peer that never answers our close frame must not keep us up.
        if (!sockets_.empty())
            shutdown_timer_ =
                start_timer(steady::now() + std::chrono::seconds(3), [this] { server_.stop(); });
    }

    struct rate_window {
        steady::time_point start;
        unsigned count = 0;
    };

    server_options opts_;
    steady::time_point started_;
    ws_server server_;
    std::uint16_t port_ = 0;
    std::mt19937_64 rng_{std::random_device{}()};
    server_stats stats_;
    std::map<std::string, token_record> tokens_;
    std::map<std::string, channel_record> channels_;
    std::map<connection_hdl, socket_record, std::owner_less<connection_hdl>> sockets_;
    std::map<std::string, rate_window> rate_windows_;
    std::map<std::string, unsigned> forced_429_;
    long long forced_retry_after_ = 1;
    std::uint64_t channel_counter_ = 0, socket_counter_ = 0;
    bool heartbeats_on_ = true, pongs_on_ = true, shutting_down_ = false;
    std::optional<asio::signal_set> signals_;
    timer_ptr duration_timer_, shutdown_timer_;
};

} // namespace
} // namespace genesys_local

int main(int argc, char** argv) {
    const auto parsed =
        genesys_local::parse_command_line(std::vector<std::string>(argv + 1, argv + argc));
    if (!parsed.run) {
        (parsed.exit_status == 0 ? std::cout : std::cerr) << parsed.message;
        return parsed.exit_status;
    }
    try {
        genesys_local::local_server server(parsed.options);
        return server.run();
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
}
