// Streams Genesys Cloud notifications with tether and says what happens:
// events, REST token refreshes, channel creations, handovers on
// socket_closing, reconnects and the gaps to backfill. At the end (after
// --duration, or on Ctrl-C) it prints a summary.
//
//   against the local server:  tether_genesys_notifications --local http://127.0.0.1:PORT
//   [--seed-mode] [topics...] against a real org:        GENESYS_REGION=mypurecloud.ie
//   GENESYS_CLIENT_ID=... GENESYS_CLIENT_SECRET=...
//                              tether_genesys_notifications v2.users.<id>.presence ...
//
// Its transport is gen::notification_transport: websocketpp, or Beast when
// built in Boost mode (TETHER_USE_BOOST_ASIO; CMake: -DTETHER_EXAMPLES_TRANSPORT=beast).
#include <tether/close_policy/close_code_table.hpp>
#include <tether/genesys.hpp>

#if defined(TETHER_USE_BOOST_ASIO)
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#else
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#endif

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace gen = tether::genesys;
namespace net = tether::net;
using namespace std::chrono_literals;

namespace {

struct settings {
    std::string local; // base URL of the local server; empty: a real org
    bool seed_mode = false;
    double duration = 0; // seconds; 0: until a signal
    std::string client_id = "local-client";
    std::string client_secret = "local-secret";
    std::vector<std::string> topics;
    double heartbeat_timeout = 60;
    double ping_interval = 0;
    double pong_timeout = 10;
    unsigned max_channels = 5;
    double resubscribe_margin = 3600;
    double renew_before_expiry = 0; // seed mode: hand over to a new token this long before expiry
    bool quiet_events = false;
};

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "error: %s\n"
                 "usage: tether_genesys_notifications [--local URL] [--seed-mode] [--duration S]\n"
                 "         [--client-id ID] [--client-secret S] [--heartbeat-timeout S] "
                 "[--ping-interval S]\n"
                 "         [--pong-timeout S] [--max-channels N] [--resubscribe-margin S] "
                 "[--renew-before-expiry S]\n         [--quiet-events] [topic...]\n"
                 "Without --local: GENESYS_REGION, GENESYS_CLIENT_ID, GENESYS_CLIENT_SECRET and "
                 "topics are required.\n",
                 why);
    std::exit(2);
}

double number(const char* s, const char* opt) {
    char* end = nullptr;
    const double v = std::strtod(s, &end);
    if (!end || *end || v < 0) usage((std::string(opt) + " needs a non-negative number").c_str());
    return v;
}

settings parse(int argc, char** argv) {
    settings s;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc) usage((a + " needs a value").c_str());
            return argv[++i];
        };
        if (a == "--local")
            s.local = value();
        else if (a == "--seed-mode")
            s.seed_mode = true;
        else if (a == "--duration")
            s.duration = number(value(), "--duration");
        else if (a == "--client-id")
            s.client_id = value();
        else if (a == "--client-secret")
            s.client_secret = value();
        else if (a == "--heartbeat-timeout")
            s.heartbeat_timeout = number(value(), "--heartbeat-timeout");
        else if (a == "--ping-interval")
            s.ping_interval = number(value(), "--ping-interval");
        else if (a == "--pong-timeout")
            s.pong_timeout = number(value(), "--pong-timeout");
        else if (a == "--max-channels")
            s.max_channels = static_cast<unsigned>(number(value(), "--max-channels"));
        else if (a == "--resubscribe-margin")
            s.resubscribe_margin = number(value(), "--resubscribe-margin");
        else if (a == "--renew-before-expiry")
            s.renew_before_expiry = number(value(), "--renew-before-expiry");
        else if (a == "--quiet-events")
            s.quiet_events = true;
        else if (a.rfind("--", 0) == 0)
            usage(("unknown option " + a).c_str());
        else
            s.topics.push_back(a);
    }
    if (s.local.empty()) {
        const char* id = std::getenv("GENESYS_CLIENT_ID");
        const char* secret = std::getenv("GENESYS_CLIENT_SECRET");
        if (!std::getenv("GENESYS_REGION") || !id || !secret)
            usage("no --local and no GENESYS_* environment");
        if (s.seed_mode) usage("--seed-mode needs --local");
        if (s.topics.empty()) usage("name at least one topic");
        s.client_id = id;
        s.client_secret = secret;
    } else if (s.topics.empty() && !s.seed_mode) {
        s.topics = {"v2.users.demo-user.presence", "v2.routing.queues.demo-queue.conversations"};
    }
    return s;
}

std::chrono::milliseconds ms(double seconds) {
    return std::chrono::milliseconds(static_cast<long long>(seconds * 1000.0 + 0.5));
}

std::string shorten(const std::string& id) { return gen::shorten_id(id); }

// What the run saw, for the summary.
struct tally {
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    std::uint64_t events = 0, duplicates = 0, gaps = 0, handovers = 0, reconnects = 0;
    std::map<std::string, std::set<long long>> seen; // per channel: sequences received
    std::map<std::string, long long> highest;

    double now() const {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }

    void line(const char* what, const std::string& text) const {
        std::printf("[%8.3fs] %-10s %s\n", now(), what, text.c_str());
        std::fflush(stdout);
    }

    // Returns false for a duplicate.
    bool count(const gen::notification& n) {
        ++events;
        if (!n.body.is_object() || !n.body.contains("sequence") ||
            !n.body["sequence"].is_number_integer())
            return true;
        const long long seq = n.body["sequence"].get<long long>();
        auto& s = seen[n.channel_id];
        if (!s.insert(seq).second) {
            ++duplicates;
            return false;
        }
        auto& h = highest[n.channel_id];
        if (seq > h) h = seq;
        return true;
    }

    // Sequence numbers never received (below each channel's highest): events
    // the server produced while we were not connected, or lost.
    long long missing() const {
        long long m = 0;
        for (const auto& [ch, s] : seen)
            m += highest.at(ch) - static_cast<long long>(s.size());
        return m;
    }
};

double seconds_between(std::chrono::system_clock::time_point a,
                       std::chrono::system_clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

template <class Stream> void report_stream(Stream& stream, tally& t, bool quiet_events) {
    stream.on_notification([&t, quiet_events](const gen::notification& n) {
        const bool fresh = t.count(n);
        if (quiet_events && fresh) return;
        std::string text = n.topic;
        if (n.body.is_object() && n.body.contains("sequence"))
            text = "#" + n.body["sequence"].dump() + " " + text;
        t.line(fresh ? "event" : "DUPLICATE", text);
    });
    stream.on_socket_closing([&t](const gen::system_message& m) {
        t.line("closing",
               "v2.system.socket_closing: " + gen::printable(m.message) +
                   (m.reason.empty() ? "" : " (reason " + gen::printable(m.reason, 40) + ")"));
    });
    stream.on_system([&t](const gen::system_event& e) {
        // The topic ends with the channel id: print it shortened.
        const auto dot = e.topic.find('.', std::string("v2.system.").size());
        const std::string topic =
            dot == std::string::npos
                ? gen::printable(e.topic, 80)
                : gen::printable(
                      e.topic.substr(0, dot + 1) + gen::shorten_id(e.topic.substr(dot + 1)), 80);
        if (e.type == gen::message_type::token_revoked)
            t.line("system", topic + ": new REST token, new channel, resubscribe");
        else if (e.type == gen::message_type::no_longer_subscribed)
            t.line("system", topic + ": resubscribing");
    });
    stream.on_reply([&t](int status, const nlohmann::json& body) {
        const auto m = body.find("message");
        t.line("reply", "result " + std::to_string(status) +
                            (m != body.end() && m->is_string()
                                 ? " " + gen::printable(m->get<std::string>(), 100)
                                 : ""));
    });
    stream.on_rejected_frame([&t](const gen::rejected_frame& f) {
        t.line("skipped", std::string(gen::to_string(f.why)) + " frame of " +
                              std::to_string(f.bytes) + " bytes");
    });
    stream.on_handover([&t](const gen::handover_event& h) {
        ++t.handovers;
        t.line("handover", "new socket open on " + shorten(h.channel_id) +
                               (h.after_socket_closing ? " " + std::to_string(h.took.count()) +
                                                             " ms after socket_closing"
                                                       : " with a renewed token") +
                               "; the old one retires (make-before-break)");
    });
    stream.on_gap([&t](const gen::gap_event& g) {
        ++t.gaps;
        char buf[160];
        std::snprintf(buf, sizeof buf, "%.3f s without events (%s)%s",
                      seconds_between(g.from, g.to), g.reason.c_str(),
                      g.resumed ? "; backfill that window over REST" : "; not resumed");
        t.line("gap", buf);
    });
    stream.on_liveness_failure(
        [&t](std::error_code ec) { t.line("liveness", ec.message() + ": reconnecting"); });
    stream.on_open([&t](const tether::open_event& e) {
        if (e.handover) return;
        if (e.attempt > 1) ++t.reconnects;
        char buf[96];
        std::snprintf(buf, sizeof buf, "socket open (attempt %llu, down %.3f s)",
                      static_cast<unsigned long long>(e.attempt),
                      std::chrono::duration<double>(e.downtime).count());
        t.line("open", buf);
    });
    stream.on_close([&t](const tether::close_event& e, const tether::reconnect_decision& d) {
        std::string what =
            e.http_status ? "handshake refused: HTTP " + std::to_string(e.http_status)
            : e.code
                ? "closed " + std::to_string(e.code) + " '" + gen::printable(e.reason, 123) + "'"
                : "dropped: " + (e.error ? e.error.message() : std::string("no close frame"));
        t.line("close", what + " -> " + tether::to_string(d.action));
    });
}

template <class Client> void report_client(Client& client, tally& t) {
    client.on_retry([&t](const tether::retry_event& r) {
        t.line("retry", "in " + std::to_string(r.delay.count()) + " ms (" +
                            tether::to_string(r.cls) + " ladder)");
    });
    client.on_token_failure([&t](const tether::token_failure_event& f) {
        t.line("token", std::string(f.permanent ? "permanent failure: " : "failure: ") +
                            f.error.message() + " (" + f.detail + ")");
    });
}

} // namespace

int main(int argc, char** argv) {
    const settings s = parse(argc, argv);
    net::io_context io;
    tally t;
    int exit_status = 0;
    nlohmann::json summary;

    net::signal_set signals(io, SIGINT, SIGTERM);
    net::steady_timer deadline(io);
    std::function<void()> stop_client;
    signals.async_wait([&](std::error_code ec, int) {
        if (!ec && stop_client) stop_client();
    });
    if (s.duration > 0) {
        deadline.expires_after(ms(s.duration));
        deadline.async_wait([&](std::error_code ec) {
            if (!ec && stop_client) stop_client();
        });
    }
    auto finished = [&](const tether::stopped_event& e) {
        t.line("stopped", e.reason.message());
        if (e.reason != tether::error::stopped_by_user) exit_status = 1;
        summary["stop_reason"] = e.reason.message();
        signals.cancel();
        deadline.cancel();
        io.stop(); // the REST token source keeps a refresh timer armed
    };

    gen::stream_options so;
    so.heartbeat_timeout = ms(s.heartbeat_timeout);
    so.ping_interval = ms(s.ping_interval);
    so.pong_timeout = ms(s.pong_timeout);

    try {
        if (!s.seed_mode) {
            gen::notification_options o;
            if (!s.local.empty()) {
                o.endpoints = gen::endpoints::explicit_urls(s.local, s.local);
            } else {
                o.endpoints = gen::endpoints::for_region(std::getenv("GENESYS_REGION"));
            }
            o.client_id = s.client_id;
            o.client_secret = tether::secret(s.client_secret);
            o.channel.topics = s.topics;
            o.channel.max_channel_creations = s.max_channels;
            o.channel.resubscribe_margin =
                std::chrono::seconds(static_cast<long long>(s.resubscribe_margin));
            o.stream = so;
            // Background refreshes too: the REST token renews before expiry.
            o.token_trace = [&t](std::string_view note) {
                if (note.rfind("token obtained", 0) == 0)
                    t.line("token", "REST " + std::string(note));
                else if (note.rfind("token request failed", 0) == 0)
                    t.line("token", std::string(note));
            };
            gen::notification_client c(io, std::move(o));
            report_stream(c.stream(), t, s.quiet_events);
            report_client(c.client(), t);
            c.stream().on_stopped(finished);
            c.rest().on_token([&t](const tether::token_event& e) {
                if (e.after_rejection)
                    t.line("token", "REST call got 401: retried once with a new token");
            });
            c.channel().on_channel([&t](const gen::channel_event& e) {
                t.line("channel", std::string(gen::to_string(e.kind)) + " " +
                                      shorten(e.channel_id) +
                                      (e.detail.empty() ? "" : ": " + e.detail));
            });
            stop_client = [&c] { c.stop(); };
            t.line("start",
                   "channel mode, " + std::to_string(s.topics.size()) + " topics, API " +
                       (s.local.empty() ? std::string(std::getenv("GENESYS_REGION")) : s.local));
            c.start();
            io.run();
            const auto cc = c.client().counters();
            const auto ch = c.channel().stats();
            const auto& sc = c.stream().counters();
            summary["token_requests"] = c.rest_token().stats().fetches;
            summary["channels_created"] = ch.channels_created;
            summary["resubscriptions"] = ch.resubscriptions;
            summary["handshakes_rejected"] = cc.rejected_handshakes;
            summary["heartbeats"] = sc.heartbeats;
            summary["socket_closings"] = sc.socket_closings;
            summary["liveness_failures"] = sc.heartbeat_timeouts + sc.pong_timeouts;
            summary["pongs"] = sc.pongs;
            summary["tokens_revoked"] = sc.tokens_revoked;
            summary["unsubscribed"] = sc.unsubscribed;
            summary["resubscribed"] = sc.resubscriptions;
            summary["channels_gone"] = sc.channels_gone;
            summary["frames_skipped"] = sc.frames_too_large + sc.frames_too_deep + sc.malformed;
            summary["channels_lost"] = ch.channels_lost;
            summary["token_replacements"] = ch.token_replacements;
            summary["refused_channel_answers"] = ch.refused_ids;
        } else {
            // The seed's service: the bearer token on the upgrade, 4001 on expiry.
            using seed_client =
                tether::basic_reconnecting_client<gen::notification_transport, gen::rest_token,
                                                  tether::close_code_table<>>;
            tether::oauth2_options oo;
            oo.token_url = s.local + "/oauth/token";
            oo.client_id = s.client_id;
            oo.client_secret = tether::secret(s.client_secret);
            gen::rest_token_source source(tether::oauth2_client_credentials(io.get_executor(), oo),
                                          net::any_io_executor(io.get_executor()));
            std::string url = s.local;
            url.replace(0, 4, "ws"); // http://... -> ws://...
            const std::string path = s.topics.empty() ? "/v2/analytics/events" : s.topics.front();
            tether::client_options co;
            co.url = url + path;
            co.renew_before_expiry = ms(s.renew_before_expiry);
            seed_client c(co, gen::notification_transport(io), source.handle(),
                          tether::close_code_table<>{
                              {4001, tether::close_action::refresh_token_then_reconnect}});
            gen::notification_stream<seed_client> stream(c, so, [path] { return "seed:" + path; });
            report_stream(stream, t, s.quiet_events);
            report_client(c, t);
            c.on_token([&t](const tether::token_event& e) {
                if (e.fresh || e.after_rejection)
                    t.line("token",
                           std::string(e.after_rejection ? "token refreshed after expiry/rejection"
                                                         : "token fetched") +
                               (e.lifetime
                                    ? ", lifetime " + std::to_string(e.lifetime->count()) + " s"
                                    : ""));
            });
            stream.on_stopped(finished);
            stop_client = [&c] { c.stop(); };
            t.line("start", "seed mode, " + co.url);
            c.start();
            io.run();
            const auto cc = c.counters();
            summary["token_requests"] = source.stats().fetches;
            summary["channels_created"] = 0;
            summary["handshakes_rejected"] = cc.rejected_handshakes;
            summary["heartbeats"] = stream.counters().heartbeats;
            summary["socket_closings"] = stream.counters().socket_closings;
            summary["liveness_failures"] =
                stream.counters().heartbeat_timeouts + stream.counters().pong_timeouts;
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 2;
    }

    summary["events"] = t.events;
    summary["duplicates"] = t.duplicates;
    summary["missing"] = t.missing();
    summary["gaps"] = t.gaps;
    summary["handovers"] = t.handovers;
    summary["reconnects"] = t.reconnects;
    std::printf("\nsummary (%s mode)\n", s.seed_mode ? "seed" : "channel");
    for (const char* k : {"events", "duplicates", "missing", "gaps", "handovers", "reconnects",
                          "token_requests", "channels_created", "handshakes_rejected", "heartbeats",
                          "socket_closings", "liveness_failures", "stop_reason"})
        std::printf("  %-20s %s\n", k,
                    summary[k].is_string() ? summary[k].get<std::string>().c_str()
                                           : summary[k].dump().c_str());
    std::printf("summary-json %s\n", summary.dump().c_str());
    return exit_status;
}
