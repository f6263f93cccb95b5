// websocketpp_transport over real sockets on 127.0.0.1: a websocketpp test
// server, a raw scripted peer, TLS with certificates made at test time, the
// Python `websockets` library as an independent peer, and the reconnecting
// client end to end. Every wait is bounded; no assertion depends on a sleep.
#include <tether/close_policy/default_close_policy.hpp>
#include <tether/core.hpp>
#include <tether/proxy.hpp>
#include <tether/transport/concept.hpp>
#include <tether/transport/websocketpp_transport.hpp>

#include "../tinyproxy_fixture.hpp"
#include "raw_peer.hpp"
#include "support.hpp"
#include "wspp_test_server.hpp"

#include <catch2/catch.hpp>

#include <asio/post.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

static_assert(tether::is_transport_v<tether::websocketpp_transport>,
              "websocketpp_transport must meet the Transport requirements");
static_assert(tether::is_transport_v<tether::websocketpp_wss_transport>);
static_assert(tether::is_transport_v<tether::websocketpp_ws_transport>);

using namespace std::chrono_literals;
using Catch::Contains;
using test_support::handshake_verdict;
using test_support::plain_test_server;
using test_support::run_until;
using test_support::seen_request;
using tether::close_event;
using tether::connection_id;
using tether::message_kind;
using tether::websocketpp_transport;
using tether::websocketpp_transport_options;

namespace {

using steady = std::chrono::steady_clock;

/// Timer and scheduling delay allowed on top of a bound: the machine is
/// shared and the tests also run under sanitizers.
constexpr auto scheduling_slack = 400ms;

long long ms(steady::duration d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

/// Records every sink call, and flags any made from inside a transport call.
struct recording_sink {
    struct record {
        int opens = 0;
        int closes = 0;
        tether::open_info info;
        std::vector<std::pair<std::string, message_kind>> messages;
        close_event closed;
        steady::time_point opened_at{};
        steady::time_point closed_at{};
        steady::time_point last_message_at{};
    };
    std::map<connection_id, record> records;
    bool inside_transport_call = false;
    int inline_calls = 0;
    int calls_after_close = 0;

    void on_transport_open(connection_id id, const tether::open_info& info) {
        note(id);
        auto& r = records[id];
        ++r.opens;
        r.info = info;
        r.opened_at = steady::now();
    }
    void on_transport_message(connection_id id, const tether::message_view& m) {
        note(id);
        records[id].messages.emplace_back(std::string(m.data), m.kind);
        records[id].last_message_at = steady::now();
    }
    void on_transport_close(connection_id id, close_event&& ev) {
        note(id);
        auto& r = records[id];
        ++r.closes;
        r.closed = std::move(ev);
        r.closed_at = steady::now();
    }

    bool opened(connection_id id) const { return records.count(id) && records.at(id).opens > 0; }
    bool closed(connection_id id) const { return records.count(id) && records.at(id).closes > 0; }
    std::size_t message_count(connection_id id) const {
        return records.count(id) ? records.at(id).messages.size() : 0;
    }
    const close_event& close_of(connection_id id) const { return records.at(id).closed; }

private:
    void note(connection_id id) {
        if (inside_transport_call) ++inline_calls;
        if (records.count(id) && records[id].closes > 0) ++calls_after_close;
    }
};

/// Transport calls made the way the client makes them, watching for inline sink calls.
struct driver {
    websocketpp_transport& t;
    recording_sink& sink;

    connection_id connect(const std::string& url, const std::string& token = {},
                          std::vector<std::string> subprotocols = {},
                          std::vector<tether::http_header> headers = {}) {
        tether::connect_request req;
        req.url = url;
        req.token = tether::secret(token);
        req.subprotocols = std::move(subprotocols);
        req.headers = std::move(headers);
        sink.inside_transport_call = true;
        const auto id = t.connect(req, sink);
        sink.inside_transport_call = false;
        return id;
    }
    std::error_code send(connection_id id, const std::string& data,
                         message_kind k = message_kind::text) {
        sink.inside_transport_call = true;
        const auto ec = t.send(id, data, k);
        sink.inside_transport_call = false;
        return ec;
    }
    void close(connection_id id, std::uint16_t code = 1000, const std::string& reason = "bye") {
        sink.inside_transport_call = true;
        t.close(id, code, reason);
        sink.inside_transport_call = false;
    }
};

websocketpp_transport_options quick_options() {
    websocketpp_transport_options o;
    o.handshake_timeout = 3s;
    o.close_timeout = 2s;
    o.ping_interval = 0ms;
    return o;
}

void check_contract(const recording_sink& sink) {
    CHECK(sink.inline_calls == 0);
    CHECK(sink.calls_after_close == 0);
    for (const auto& entry : sink.records) {
        INFO("connection " << entry.first);
        CHECK(entry.second.closes <= 1);
        CHECK(entry.second.opens <= 1);
    }
}

/// The bearer token from an Authorization header, or "".
std::string bearer_of(const seen_request& r) {
    return r.authorization.rfind("Bearer ", 0) == 0 ? r.authorization.substr(7) : std::string();
}

} // namespace

// ---- plain ws:// --------------------------------------------------------------

TEST_CASE("ws: open, text and binary echo, graceful close", "[transport][ws]") {
    asio::io_context io;
    plain_test_server server(io);
    recording_sink sink;
    websocketpp_transport t(io, quick_options());
    driver d{t, sink};

    const auto id = d.connect(server.url("/echo"));
    CHECK_FALSE(sink.opened(id)); // nothing inline
    REQUIRE(run_until(io, [&] { return sink.opened(id) || sink.closed(id); }));
    REQUIRE(sink.opened(id));

    CHECK_FALSE(d.send(id, "hello"));
    const std::string binary("\x00\x01\xfe\xff", 4);
    CHECK_FALSE(d.send(id, binary, message_kind::binary));
    REQUIRE(run_until(io, [&] { return sink.message_count(id) == 2; }));
    const auto& msgs = sink.records[id].messages;
    CHECK(msgs[0] == std::make_pair(std::string("hello"), message_kind::text));
    CHECK(msgs[1] == std::make_pair(binary, message_kind::binary));

    d.close(id, 1000, "done");
    d.close(id, 1000, "again"); // idempotent
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const close_event& ev = sink.close_of(id);
    CHECK(ev.code == 1000);
    CHECK(ev.reason == "done");
    CHECK(ev.was_open);
    CHECK(ev.initiated_locally);
    CHECK_FALSE(ev.error);
    CHECK(t.active_connections() == 0);
    CHECK(server.closes == 1);
    check_contract(sink);
}

TEST_CASE("ws: bearer header, extra headers, user agent and subprotocols reach the server",
          "[transport][ws]") {
    asio::io_context io;
    plain_test_server server(io);
    server.decide = [](const seen_request& r) {
        handshake_verdict v;
        if (r.protocols.find("chat.v2") != std::string::npos) v.subprotocol = "chat.v2";
        return v;
    };
    recording_sink sink;
    auto o = quick_options();
    o.headers = {{"X-Tenant", "acme"}};
    o.user_agent = "tether-test/1";
    websocketpp_transport t(io, o);
    driver d{t, sink};

    const auto id = d.connect(server.url(), "tok-123", {"chat.v1", "chat.v2"}, {{"X-Trace", "t1"}});
    REQUIRE(run_until(io, [&] { return sink.opened(id) || sink.closed(id); }));
    REQUIRE(sink.opened(id));
    REQUIRE(server.requests.size() == 1);
    const auto& r = server.requests[0];
    CHECK(r.authorization == "Bearer tok-123");
    CHECK(r.user_agent == "tether-test/1");
    CHECK(r.extra.at("X-Tenant") == "acme");
    CHECK(r.extra.at("X-Trace") == "t1");
    CHECK(r.protocols == "chat.v1, chat.v2");
    CHECK(sink.records[id].info.subprotocol == "chat.v2");
    check_contract(sink);
}

TEST_CASE("ws: no token, no Authorization header", "[transport][ws]") {
    asio::io_context io;
    plain_test_server server(io);
    recording_sink sink;
    websocketpp_transport t(io, quick_options());
    driver d{t, sink};
    const auto id = d.connect(server.url());
    REQUIRE(run_until(io, [&] { return sink.opened(id); }));
    REQUIRE(server.requests.size() == 1);
    CHECK(server.requests[0].authorization.empty());
}

TEST_CASE("ws: token as a percent-encoded query parameter, accepted by a server that requires it",
          "[transport][ws][placement]") {
    asio::io_context io;
    plain_test_server server(io);
    const std::string token = "a+b/c=d e&f";
    server.decide = [](const seen_request& r) {
        handshake_verdict v;
        if (r.resource != "/events?topic=x&auth=a%2Bb%2Fc%3Dd%20e%26f" || !r.authorization.empty())
            v.status = 401;
        return v;
    };
    recording_sink sink;
    auto o = quick_options();
    o.token_in = tether::token_placement::query_parameter;
    o.token_query_parameter = "auth";
    websocketpp_transport t(io, o);
    driver d{t, sink};
    const auto id = d.connect(server.url("/events?topic=x"), token);
    REQUIRE(run_until(io, [&] { return sink.opened(id) || sink.closed(id); }));
    CHECK(sink.opened(id));
    CHECK(server.refused == 0);
    check_contract(sink);
}

TEST_CASE("ws: token as a Sec-WebSocket-Protocol entry, accepted by a server that requires it",
          "[transport][ws][placement]") {
    asio::io_context io;
    plain_test_server server(io);
    const std::string token = "eyJhbGciOi.payload.sig";
    bool select_token = false;
    server.decide = [&](const seen_request& r) {
        handshake_verdict v;
        const std::string entry = "bearer.token." + token;
        if (r.protocols.find(entry) == std::string::npos || !r.authorization.empty()) {
            v.status = 401;
            return v;
        }
        v.subprotocol = select_token ? entry : "events.v1";
        return v;
    };
    recording_sink sink;
    auto o = quick_options();
    o.token_in = tether::token_placement::subprotocol;
    o.token_subprotocol_prefix = "bearer.token.";
    o.subprotocols = {"events.v1"};
    websocketpp_transport t(io, o);
    driver d{t, sink};

    const auto a = d.connect(server.url(), token);
    REQUIRE(run_until(io, [&] { return sink.opened(a) || sink.closed(a); }));
    REQUIRE(sink.opened(a));
    CHECK(server.requests.back().protocols == "events.v1, bearer.token." + token);
    CHECK(sink.records[a].info.subprotocol == "events.v1");

    select_token = true; // a server that echoes the token entry: never reported in clear
    const auto b = d.connect(server.url(), token);
    REQUIRE(run_until(io, [&] { return sink.opened(b) || sink.closed(b); }));
    REQUIRE(sink.opened(b));
    CHECK(sink.records[b].info.subprotocol == "[token]");
    CHECK(server.refused == 0);

    // a token that is not an HTTP token cannot be a subprotocol: a clear error, no connection
    const auto c = d.connect(server.url(), "has space");
    REQUIRE(run_until(io, [&] { return sink.closed(c); }));
    CHECK(sink.close_of(c).error == tether::error::invalid_upgrade_request);
    CHECK(server.handshakes == 2);
    check_contract(sink);
}

TEST_CASE("ws: refused handshakes carry status, Retry-After and a bounded body",
          "[transport][ws][refusal]") {
    asio::io_context io;
    plain_test_server server(io);
    const std::string long_body(5000, 'z');
    server.decide = [&](const seen_request& r) {
        handshake_verdict v;
        const std::string tok = bearer_of(r);
        if (tok == "stale") {
            v.status = 401;
            v.body = "{\"error\": \"unauthorized\", \"message\": \"Token expired\"}\n";
        } else if (tok == "forbidden") {
            v.status = 403;
            v.body = long_body;
        } else if (tok == "busy") {
            v.status = 429;
            v.headers = {{"Retry-After", "7"}};
        } else if (tok == "down") {
            v.status = 503;
            // an HTTP-date about 30 s ahead
            const auto t =
                std::chrono::system_clock::to_time_t(std::chrono::system_clock::now() + 30s);
            char buf[64];
            std::tm tm{};
            gmtime_r(&t, &tm);
            std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
            v.headers = {{"Retry-After", buf}};
        }
        return v;
    };
    recording_sink sink;
    auto o = quick_options();
    o.max_body_excerpt = 100;
    websocketpp_transport t(io, o);
    driver d{t, sink};
    const auto stale = d.connect(server.url(), "stale");
    const auto forbidden = d.connect(server.url(), "forbidden");
    const auto busy = d.connect(server.url(), "busy");
    const auto down = d.connect(server.url(), "down");
    REQUIRE(run_until(io, [&] {
        return sink.closed(stale) && sink.closed(forbidden) && sink.closed(busy) &&
               sink.closed(down);
    }));
    const tether::default_close_policy policy;

    const close_event& e401 = sink.close_of(stale);
    CHECK(e401.http_status == 401);
    CHECK(e401.handshake_refused());
    CHECK_FALSE(e401.was_open);
    CHECK(e401.body_excerpt == "{\"error\": \"unauthorized\", \"message\": \"Token expired\"} ");
    CHECK_FALSE(e401.retry_after);
    CHECK_THAT(e401.detail, Contains("HTTP 401"));
    CHECK(policy.decide(e401).action == tether::close_action::refresh_token_then_reconnect);

    const close_event& e403 = sink.close_of(forbidden);
    CHECK(e403.http_status == 403);
    CHECK(e403.body_excerpt.size() <= 103);
    CHECK(e403.body_excerpt.substr(e403.body_excerpt.size() - 3) == "...");
    CHECK(policy.decide(e403).action == tether::close_action::stop);

    const close_event& e429 = sink.close_of(busy);
    CHECK(e429.http_status == 429);
    REQUIRE(e429.retry_after);
    CHECK(*e429.retry_after == 7000ms);
    const auto d429 = policy.decide(e429);
    CHECK(d429.cls == tether::failure_class::overload);
    CHECK(d429.min_delay == std::optional<std::chrono::milliseconds>(7000ms));

    const close_event& e503 = sink.close_of(down);
    CHECK(e503.http_status == 503);
    REQUIRE(e503.retry_after);
    CHECK(*e503.retry_after > 25s);
    CHECK(*e503.retry_after <= 31s);
    CHECK(policy.decide(e503).action == tether::close_action::reconnect);
    check_contract(sink);
}

TEST_CASE("ws: the server's 4001 close on token expiry reaches the sink", "[transport][ws]") {
    asio::io_context io;
    plain_test_server server(io);
    server.decide = [](const seen_request&) {
        handshake_verdict v;
        v.close_after = 100ms;
        return v;
    };
    recording_sink sink;
    websocketpp_transport t(io, quick_options());
    driver d{t, sink};
    const auto id = d.connect(server.url(), "tok");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const close_event& ev = sink.close_of(id);
    CHECK(sink.opened(id));
    CHECK(ev.code == 4001);
    CHECK(ev.reason == "Token expired");
    CHECK(ev.was_open);
    CHECK_FALSE(ev.initiated_locally);
    CHECK_FALSE(ev.error);
    check_contract(sink);
}

TEST_CASE("ws: server-initiated closes keep their code and reason", "[transport][ws]") {
    asio::io_context io;
    plain_test_server server(io);
    recording_sink sink;
    websocketpp_transport t(io, quick_options());
    driver d{t, sink};
    const auto id = d.connect(server.url());
    REQUIRE(run_until(io, [&] { return sink.opened(id); }));
    d.send(id, "close 1012 restarting");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    CHECK(sink.close_of(id).code == 1012);
    CHECK(sink.close_of(id).reason == "restarting");
    CHECK_FALSE(sink.close_of(id).initiated_locally);
    CHECK(tether::default_close_policy().decide(sink.close_of(id)).action ==
          tether::close_action::reconnect);
}

TEST_CASE("ws: connection refused is a connection_failed with the address",
          "[transport][ws][failure]") {
    asio::io_context io;
    std::uint16_t port = 0;
    {
        asio::ip::tcp::acceptor probe(
            io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        port = probe.local_endpoint().port();
    } // closed: nothing listens there now
    recording_sink sink;
    websocketpp_transport t(io, quick_options());
    driver d{t, sink};
    const auto id = d.connect("ws://127.0.0.1:" + std::to_string(port) + "/");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const close_event& ev = sink.close_of(id);
    CHECK(ev.error == tether::error::connection_failed);
    CHECK_THAT(ev.detail, Contains("127.0.0.1:" + std::to_string(port)));
    CHECK_THAT(ev.detail, Contains("refused"));
    CHECK(ev.code == 0);
    CHECK_FALSE(ev.was_open);
    CHECK(tether::default_close_policy().decide(ev).action == tether::close_action::reconnect);
    check_contract(sink);
}

TEST_CASE("ws: a server that accepts TCP but never answers hits the handshake timeout",
          "[transport][ws][failure]") {
    asio::io_context io;
    test_support::raw_peer peer(io);
    peer.answer_handshake = false;
    recording_sink sink;
    auto o = quick_options();
    o.handshake_timeout = 300ms;
    websocketpp_transport t(io, o);
    driver d{t, sink};
    const auto start = steady::now();
    const auto id = d.connect(peer.url(), "tok");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const auto took = sink.records[id].closed_at - start;
    const close_event& ev = sink.close_of(id);
    CHECK(ev.error == tether::error::handshake_timeout);
    CHECK_THAT(ev.detail, Contains("upgrade response"));
    INFO("timed out after " << ms(took) << " ms");
    CHECK(took >= 300ms);
    CHECK(took <= 300ms + scheduling_slack);
    CHECK_THAT(peer.request, Contains("Authorization: Bearer tok"));
    // the abandoned socket is closed
    REQUIRE(run_until(
        io, [&] { return peer.peer_closed; }, 5s));
    check_contract(sink);
}

TEST_CASE("ws: a bearer token is never sent in clear to a host that is not loopback",
          "[transport][ws][security]") {
    asio::io_context io;
    recording_sink sink;
    websocketpp_transport t(io, quick_options());
    driver d{t, sink};
    const auto id = d.connect("ws://api.example.com/v2/events", "secret-token");
    CHECK_FALSE(sink.closed(id)); // reported later, never inline
    // the refusal is decided before any resolver or socket exists: it is the
    // first and only handler that runs
    CHECK(io.run_one() == 1);
    REQUIRE(sink.closed(id));
    const close_event& ev = sink.close_of(id);
    CHECK(ev.error == tether::error::insecure_transport);
    CHECK_THAT(ev.detail, Contains("api.example.com"));
    CHECK_THAT(ev.detail, !Contains("secret-token"));
    CHECK(tether::default_close_policy().decide(ev).action == tether::close_action::stop);
    CHECK(io.poll() == 0);
    check_contract(sink);
}

TEST_CASE("ws: malformed URLs and unsafe headers fail clearly, later, without a connection",
          "[transport][ws][failure]") {
    asio::io_context io;
    recording_sink sink;
    websocketpp_transport t(io, quick_options());
    driver d{t, sink};
    const auto a = d.connect("http://127.0.0.1/");
    const auto b = d.connect("ws://127.0.0.1:1/", "", {}, {{"X-Evil", "a\r\nInjected: 1"}});
    const auto c = d.connect("ws://127.0.0.1:1/", "tok\r\nX: y");
    const auto e = d.connect("ws://127.0.0.1:1/", "", {"bad protocol"});
    REQUIRE(run_until(
        io, [&] { return sink.closed(a) && sink.closed(b) && sink.closed(c) && sink.closed(e); }));
    CHECK(sink.close_of(a).error == tether::error::invalid_url);
    CHECK_THAT(sink.close_of(a).detail, Contains("scheme"));
    CHECK(sink.close_of(b).error == tether::error::invalid_upgrade_request);
    CHECK(sink.close_of(c).error == tether::error::invalid_upgrade_request);
    CHECK(sink.close_of(e).error == tether::error::invalid_upgrade_request);
    CHECK(tether::default_close_policy().decide(sink.close_of(a)).action ==
          tether::close_action::stop);
    check_contract(sink);
}

TEST_CASE("schemes: a ws-only transport works and refuses wss:// clearly", "[transport][options]") {
    asio::io_context io;
    plain_test_server server(io);
    recording_sink sink;
    tether::websocketpp_ws_transport t(io, quick_options());
    tether::connect_request req;
    req.url = server.url();
    const auto ok = t.connect(req, sink);
    req.url = "wss://127.0.0.1:" + std::to_string(server.port()) + "/";
    const auto refused = t.connect(req, sink);
    REQUIRE(run_until(io, [&] { return sink.opened(ok) && sink.closed(refused); }));
    CHECK(sink.close_of(refused).error == tether::error::invalid_url);
    CHECK_THAT(sink.close_of(refused).detail, Contains("ws:// only"));
    CHECK(server.handshakes == 1);
    check_contract(sink);
}

TEST_CASE("options: invalid settings throw at construction", "[transport][options]") {
    asio::io_context io;
    websocketpp_transport_options o;
    o.handshake_timeout = 0ms;
    CHECK_THROWS_WITH(websocketpp_transport(io, o), Contains("handshake_timeout"));
    o = {};
    o.headers = {{"Bad Name", "x"}};
    CHECK_THROWS_WITH(websocketpp_transport(io, o), Contains("Bad Name"));
    o = {};
    o.tls.ca_file = "/nonexistent/ca.pem";
    CHECK_THROWS_WITH(websocketpp_transport(io, o), Contains("ca_file"));
}

// ---- liveness -------------------------------------------------------------------

TEST_CASE("liveness: a server that stops answering is detected within ping interval + pong timeout",
          "[transport][liveness]") {
    asio::io_context io;
    plain_test_server server(io);
    recording_sink sink;
    auto o = quick_options();
    o.ping_interval = 150ms;
    o.pong_timeout = 100ms;
    websocketpp_transport t(io, o);
    driver d{t, sink};
    const auto id = d.connect(server.url());
    REQUIRE(run_until(io, [&] { return sink.opened(id); }));

    // healthy for several ping rounds: pings are answered
    test_support::run_for(io, 600ms);
    CHECK_FALSE(sink.closed(id));
    CHECK(server.pings_received >= 3);

    d.send(id, "pause"); // the server stops reading: no pong, no close, no FIN
    const auto paused_at = steady::now();
    REQUIRE(run_until(
        io, [&] { return sink.closed(id); }, 3s));
    const auto took = sink.records[id].closed_at - paused_at;
    const close_event& ev = sink.close_of(id);
    INFO(ev.detail);
    CHECK(ev.error == tether::error::pong_timeout);
    CHECK(ev.code == tether::close_code::abnormal);
    CHECK(ev.was_open);
    CHECK(ev.initiated_locally);
    INFO("detected after " << ms(took) << " ms");
    CHECK(took >= 100ms);                            // not before a pong could have come
    CHECK(took <= 150ms + 100ms + scheduling_slack); // ping interval + pong timeout
    CHECK(tether::default_close_policy().decide(ev).action == tether::close_action::reconnect);
    check_contract(sink);
}

TEST_CASE("liveness: idle timeout when no frame arrives", "[transport][liveness]") {
    asio::io_context io;
    plain_test_server server(io);
    recording_sink sink;
    auto o = quick_options();
    o.idle_timeout = 200ms; // pings off: only data would keep it alive
    websocketpp_transport t(io, o);
    driver d{t, sink};
    const auto id = d.connect(server.url());
    REQUIRE(run_until(io, [&] { return sink.opened(id); }));
    // keep it busy for a while: echoes count as activity
    const auto busy_until = steady::now() + 400ms;
    while (steady::now() < busy_until && !sink.closed(id)) {
        d.send(id, "ping-me");
        test_support::run_for(io, 50ms);
    }
    CHECK_FALSE(sink.closed(id));
    d.send(id, "silent");
    REQUIRE(run_until(
        io, [&] { return sink.closed(id); }, 3s));
    // measured from the last frame received (echoes of "ping-me" may still arrive after "silent"
    // went out)
    const auto took = sink.records[id].closed_at - sink.records[id].last_message_at;
    CHECK(sink.close_of(id).error == tether::error::idle_timeout);
    CHECK(sink.close_of(id).code == tether::close_code::abnormal);
    INFO("detected after " << ms(took) << " ms");
    CHECK(took >= 200ms);
    CHECK(took <= 250ms + scheduling_slack); // idle timeout + one check period
    check_contract(sink);
}

// ---- protocol violations and limits ------------------------------------------------

TEST_CASE("limits: an oversized incoming message closes with 1009 and message_too_large",
          "[transport][limits]") {
    asio::io_context io;
    plain_test_server server(io);
    recording_sink sink;
    auto o = quick_options();
    o.max_message_size = 1024;
    websocketpp_transport t(io, o);
    driver d{t, sink};
    const auto id = d.connect(server.url());
    REQUIRE(run_until(io, [&] { return sink.opened(id); }));
    d.send(id, "big 1000");
    REQUIRE(run_until(io, [&] { return sink.message_count(id) == 1; }));
    d.send(id, "big 4096");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const close_event& ev = sink.close_of(id);
    CHECK(ev.code == tether::close_code::message_too_big);
    CHECK(ev.error == tether::error::message_too_large);
    CHECK(ev.initiated_locally);
    CHECK(sink.message_count(id) == 1);
    check_contract(sink);
}

TEST_CASE("protocol: invalid close frames from the peer are clear protocol errors",
          "[transport][protocol]") {
    struct sample {
        const char* name;
        std::string frame;
        const char* expect;
    };
    const sample samples[] = {
        {"close code 1005 on the wire", test_support::close_frame(1005, ""), "invalid range"},
        {"close code 999", test_support::close_frame(999, ""), "(close code 999)"},
        {"close code 1004 (reserved)", test_support::close_frame(1004, ""), "reserved range"},
        {"reason not UTF-8", test_support::close_frame(1000, "\xff\xfe"), "UTF"},
        {"unmasked frame with reserved bits", std::string("\xf1\x01x", 3), "violated"},
    };
    for (const auto& s : samples) {
        SECTION(s.name) {
            asio::io_context io;
            test_support::raw_peer peer(io);
            peer.after_handshake = s.frame;
            recording_sink sink;
            websocketpp_transport t(io, quick_options());
            driver d{t, sink};
            const auto id = d.connect(peer.url());
            REQUIRE(run_until(io, [&] { return sink.closed(id); }));
            const close_event& ev = sink.close_of(id);
            CHECK(sink.opened(id));
            INFO(ev.detail);
            CHECK(ev.error == tether::error::protocol_error);
            CHECK((ev.code == tether::close_code::protocol_error ||
                   ev.code == tether::close_code::invalid_payload));
            CHECK(ev.initiated_locally);
            CHECK_THAT(ev.detail, Contains(s.expect));
            CHECK(tether::default_close_policy().decide(ev).action == tether::close_action::stop);
            check_contract(sink);
        }
    }
}

TEST_CASE("protocol: a subprotocol the client did not offer fails the connection",
          "[transport][protocol]") {
    asio::io_context io;
    test_support::raw_peer peer(io);
    peer.extra_response_headers = "Sec-WebSocket-Protocol: something.else\r\n";
    recording_sink sink;
    websocketpp_transport t(io, quick_options());
    driver d{t, sink};
    const auto id = d.connect(peer.url(), "", {"chat.v1"});
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    CHECK_FALSE(sink.opened(id));
    CHECK(sink.close_of(id).error == tether::error::protocol_error);
    CHECK_THAT(sink.close_of(id).detail, Contains("something.else"));
    check_contract(sink);
}

TEST_CASE("close: a peer that never answers the close frame hits the close timeout",
          "[transport][close]") {
    asio::io_context io;
    test_support::raw_peer peer(io);
    recording_sink sink;
    auto o = quick_options();
    o.close_timeout = 200ms;
    websocketpp_transport t(io, o);
    driver d{t, sink};
    const auto id = d.connect(peer.url());
    REQUIRE(run_until(io, [&] { return sink.opened(id); }));
    const auto start = steady::now();
    d.close(id, 4000, "leaving");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const auto took = sink.records[id].closed_at - start;
    const close_event& ev = sink.close_of(id);
    CHECK(ev.error == tether::error::close_timeout);
    CHECK(ev.code == 4000);
    CHECK(ev.initiated_locally);
    INFO("timed out after " << ms(took) << " ms");
    CHECK(took >= 200ms);
    CHECK(took <= 200ms + scheduling_slack);
    // the close frame went out, masked, with our code (0x0FA0)
    REQUIRE(peer.received.size() >= 8);
    CHECK(static_cast<unsigned char>(peer.received[0]) == 0x88);
    check_contract(sink);
}

TEST_CASE("close: while connecting, close() aborts and reports exactly once",
          "[transport][close]") {
    asio::io_context io;
    test_support::raw_peer peer(io);
    peer.answer_handshake = false;
    recording_sink sink;
    websocketpp_transport t(io, quick_options());
    driver d{t, sink};
    const auto id = d.connect(peer.url());
    REQUIRE(run_until(io, [&] { return !peer.request.empty(); }));
    d.close(id);
    d.close(id);
    CHECK_FALSE(sink.closed(id));
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    CHECK(sink.close_of(id).error == tether::error::operation_cancelled);
    CHECK(sink.close_of(id).initiated_locally);
    test_support::run_for(io, 100ms);
    CHECK(sink.records[id].closes == 1);
    REQUIRE(run_until(
        io, [&] { return peer.peer_closed; }, 5s));

    // close() right after connect(), before anything ran
    const auto id2 = d.connect(peer.url());
    d.close(id2);
    REQUIRE(run_until(io, [&] { return sink.closed(id2); }));
    CHECK(sink.close_of(id2).error == tether::error::operation_cancelled);
    test_support::run_for(io, 100ms);
    d.close(12345); // unknown ids are ignored
    check_contract(sink);
}

TEST_CASE("send: clear errors for unknown ids, closed connections and invalid text",
          "[transport][send]") {
    asio::io_context io;
    plain_test_server server(io);
    recording_sink sink;
    websocketpp_transport t(io, quick_options());
    driver d{t, sink};
    CHECK(d.send(999, "x") == tether::error::not_connected);
    const auto id = d.connect(server.url());
    CHECK(d.send(id, "too early") == tether::error::not_connected);
    REQUIRE(run_until(io, [&] { return sink.opened(id); }));
    CHECK(d.send(id, "\xff\xfe not utf-8") == tether::error::invalid_text_message);
    CHECK_FALSE(d.send(id, "\xff\xfe is fine as binary", message_kind::binary));
    CHECK_FALSE(d.send(id, "still open"));
    REQUIRE(run_until(io, [&] { return sink.message_count(id) == 2; }));
    d.close(id);
    CHECK(d.send(id, "after close") == tether::error::not_connected);
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    CHECK(d.send(id, "after close") == tether::error::not_connected);
    check_contract(sink);
}

TEST_CASE("lifetime: destroying the transport with work in flight calls no sink",
          "[transport][lifetime]") {
    asio::io_context io;
    plain_test_server server(io);
    test_support::raw_peer hanging(io);
    hanging.answer_handshake = false;
    recording_sink sink;
    connection_id open_id = 0;
    {
        websocketpp_transport t(io, quick_options());
        driver d{t, sink};
        open_id = d.connect(server.url());
        REQUIRE(run_until(io, [&] { return sink.opened(open_id); }));
        d.connect(hanging.url());                    // connecting
        d.connect("ws://api.example.com/", "token"); // refusal queued, not delivered
        d.send(open_id, "in flight");
        d.close(open_id); // closing
    }
    const auto calls_before = sink.records.size();
    const auto messages_before = sink.message_count(open_id);
    test_support::run_for(io, 300ms); // queued websocketpp handlers run now
    CHECK(sink.records.size() == calls_before);
    CHECK(sink.message_count(open_id) == messages_before);
    CHECK_FALSE(sink.closed(open_id));
    check_contract(sink);
}

TEST_CASE("lifetime: a moved transport keeps its connections", "[transport][lifetime]") {
    asio::io_context io;
    plain_test_server server(io);
    recording_sink sink;
    websocketpp_transport first(io, quick_options());
    driver d1{first, sink};
    const auto id = d1.connect(server.url());
    websocketpp_transport t(std::move(first));
    driver d{t, sink};
    REQUIRE(run_until(io, [&] { return sink.opened(id); }));
    CHECK_FALSE(d.send(id, "moved"));
    REQUIRE(run_until(io, [&] { return sink.message_count(id) == 1; }));
    d.close(id);
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    check_contract(sink);
}

// ---- wss:// ---------------------------------------------------------------------------

namespace {
struct tls_fixture {
    test_support::temp_dir dir;
    test_support::test_pki pki{dir};
};
tls_fixture& pki() {
    static tls_fixture f; // one PKI for the whole run
    return f;
}

close_event tls_attempt(const test_support::issued& server_cert, websocketpp_transport_options o,
                        const std::string& host = "127.0.0.1", bool server_tls12_max = false,
                        bool* opened = nullptr) {
    asio::io_context io;
    test_support::tls_test_server server(io, test_support::server_tls_context(server_cert.cert_pem,
                                                                              server_cert.key_pem,
                                                                              server_tls12_max));
    recording_sink sink;
    websocketpp_transport t(io, o);
    driver d{t, sink};
    const auto id =
        d.connect("wss://" + host + ":" + std::to_string(server.port()) + "/", "tls-token");
    REQUIRE(run_until(io, [&] { return sink.opened(id) || sink.closed(id); }));
    if (opened) *opened = sink.opened(id);
    if (sink.opened(id)) {
        CHECK(server.requests.at(0).authorization == "Bearer tls-token");
        CHECK_FALSE(d.send(id, "over tls"));
        REQUIRE(run_until(io, [&] { return sink.message_count(id) == 1; }));
        d.close(id);
        REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    } else {
        CHECK(server.handshakes == 0); // the token never reached the server
    }
    check_contract(sink);
    return sink.close_of(id);
}
} // namespace

TEST_CASE("wss: a certificate from the configured CA connects, by IP and by name",
          "[transport][tls]") {
    auto o = quick_options();
    o.tls.ca_file = pki().pki.ca_file;
    bool opened = false;
    auto ev = tls_attempt(pki().pki.good, o, "127.0.0.1", false, &opened);
    CHECK(opened);
    CHECK(ev.code == 1000);
    CHECK_FALSE(ev.error);

    o = quick_options();
    o.tls.ca_pem = pki().pki.ca_pem;
    ev = tls_attempt(pki().pki.good, o, "localhost", false, &opened);
    CHECK(opened);
    CHECK_FALSE(ev.error);
}

TEST_CASE("wss: wrong host name, expired, self-signed and unknown CA are refused clearly",
          "[transport][tls]") {
    const tether::default_close_policy policy;
    auto o = quick_options();
    o.tls.ca_file = pki().pki.ca_file;

    auto ev = tls_attempt(pki().pki.wrong_name, o);
    CHECK(ev.error == tether::error::tls_verification_failed);
    CHECK_THAT(ev.detail, Contains("does not match host '127.0.0.1'"));
    CHECK(policy.decide(ev).action == tether::close_action::stop);

    ev = tls_attempt(pki().pki.expired, o);
    CHECK(ev.error == tether::error::tls_verification_failed);
    CHECK_THAT(ev.detail, Contains("expired"));
    CHECK(policy.decide(ev).action == tether::close_action::stop);

    ev = tls_attempt(pki().pki.self_signed, o);
    CHECK(ev.error == tether::error::tls_verification_failed);
    CHECK_THAT(ev.detail, Contains("self-signed") || Contains("self signed"));

    // default trust store: our test CA is unknown there
    ev = tls_attempt(pki().pki.good, quick_options());
    CHECK(ev.error == tether::error::tls_verification_failed);
    CHECK_THAT(ev.detail, Contains("local issuer"));
    CHECK(policy.decide(ev).action == tether::close_action::stop);
}

TEST_CASE("wss: transports on one io_context keep their own TLS settings, also interleaved",
          "[transport][tls]") {
    // The websocketpp endpoints are shared per io_context; the trust settings
    // must still be the transport's own: one trusts the test CA, the other
    // only the system store, and their connections are built alternately.
    asio::io_context io;
    test_support::tls_test_server server(
        io,
        test_support::server_tls_context(pki().pki.good.cert_pem, pki().pki.good.key_pem, false));
    auto trusting_opts = quick_options();
    trusting_opts.tls.ca_file = pki().pki.ca_file;
    recording_sink trusting_sink, default_sink;
    websocketpp_transport trusting(io, trusting_opts);
    websocketpp_transport system_only(io, quick_options());
    driver trusting_d{trusting, trusting_sink};
    driver default_d{system_only, default_sink};
    const std::string url = "wss://127.0.0.1:" + std::to_string(server.port()) + "/";
    std::vector<connection_id> good, refused;
    for (int i = 0; i < 3; ++i) {
        good.push_back(trusting_d.connect(url, "tls-token"));
        refused.push_back(default_d.connect(url, "tls-token"));
    }
    REQUIRE(run_until(io, [&] {
        for (auto id : good)
            if (!trusting_sink.opened(id) && !trusting_sink.closed(id)) return false;
        for (auto id : refused)
            if (!default_sink.closed(id)) return false;
        return true;
    }));
    for (auto id : good)
        CHECK(trusting_sink.opened(id));
    for (auto id : refused) {
        CHECK_FALSE(default_sink.opened(id));
        CHECK(default_sink.close_of(id).error == tether::error::tls_verification_failed);
    }
    CHECK(server.handshakes == 3); // tokens reached the server only over the verified connections
    for (auto id : good)
        trusting_d.close(id);
    REQUIRE(run_until(io, [&] {
        for (auto id : good)
            if (!trusting_sink.closed(id)) return false;
        return true;
    }));
    check_contract(trusting_sink);
    check_contract(default_sink);
}

TEST_CASE("wss: the loudly named opt-out accepts any certificate", "[transport][tls]") {
    auto o = quick_options();
    o.tls.insecure_skip_verify_i_know_what_i_am_doing = true;
    bool opened = false;
    tls_attempt(pki().pki.wrong_name, o, "127.0.0.1", false, &opened);
    CHECK(opened);
}

TEST_CASE("wss: minimum TLS version is enforced", "[transport][tls]") {
    auto o = quick_options();
    o.tls.ca_file = pki().pki.ca_file;
    o.tls.min_version = tether::tls_version::tls1_3;
    const auto ev = tls_attempt(pki().pki.good, o, "127.0.0.1", /*server_tls12_max=*/true);
    CHECK(ev.error == tether::error::connection_failed);
    CHECK_THAT(ev.detail, Contains("TLS handshake"));
    CHECK_THAT(ev.detail, Contains("version"));
}

TEST_CASE("wss: a plain server behind a wss:// URL times out in the TLS handshake",
          "[transport][tls]") {
    asio::io_context io;
    plain_test_server server(io); // reads the ClientHello as the start of an HTTP request
    recording_sink sink;
    auto o = quick_options();
    o.tls.ca_file = pki().pki.ca_file;
    o.handshake_timeout = 400ms;
    websocketpp_transport t(io, o);
    driver d{t, sink};
    const auto id = d.connect("wss://127.0.0.1:" + std::to_string(server.port()) + "/", "tok");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const close_event& ev = sink.close_of(id);
    CHECK(ev.error == tether::error::handshake_timeout);
    CHECK_THAT(ev.detail, Contains("stuck in the TLS handshake"));
    CHECK(server.handshakes == 0);
    check_contract(sink);
}

// ---- Python `websockets` as an independent peer -----------------------------------------

#ifdef TETHER_TEST_PYTHON
namespace {
const char* python_server_script = R"PY(
import asyncio, ssl, sys
from http import HTTPStatus
import websockets

token, lifetime = sys.argv[1], float(sys.argv[2])
cert = sys.argv[3] if len(sys.argv) > 4 else None
key = sys.argv[4] if len(sys.argv) > 4 else None

async def check(path, headers):
    if headers.get("Authorization") != "Bearer " + token:
        return HTTPStatus.UNAUTHORIZED, [("Retry-After", "3")], b"stale token\n"
    return None

async def handler(ws, path):
    try:
        async for msg in ws:
            if msg == "expire":
                await ws.close(4001, "Token expired")
                return
            if isinstance(msg, str) and msg.startswith("big "):
                await ws.send(b"x" * int(msg[4:]))
                continue
            await ws.send(msg)
    except websockets.ConnectionClosed:
        pass

async def main():
    ctx = None
    if cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
    async with websockets.serve(handler, "127.0.0.1", 0, process_request=check, ssl=ctx,
                                ping_interval=0.1, ping_timeout=2, subprotocols=["chat.v1"]) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.sleep(lifetime)

asyncio.run(main())
)PY";

struct python_peer {
    test_support::temp_dir dir;
    std::optional<test_support::child_process> proc;
    std::uint16_t port = 0;

    explicit python_peer(bool tls) {
        const std::string script = dir.write("server.py", python_server_script);
        std::vector<std::string> argv{TETHER_TEST_PYTHON, script, "py-token", "30"};
        if (tls) {
            argv.push_back(dir.write("cert.pem", pki().pki.good.cert_pem));
            argv.push_back(dir.write("key.pem", pki().pki.good.key_pem));
        }
        proc.emplace(argv);
        const auto line = proc->read_line(15s);
        REQUIRE(line);
        port = static_cast<std::uint16_t>(std::stoi(*line));
    }
};
} // namespace

TEST_CASE("interop: Python websockets server, ws:// and wss://", "[transport][interop]") {
    for (const bool tls : {false, true}) {
        SECTION(tls ? "wss" : "ws") {
            python_peer py(tls);
            asio::io_context io;
            recording_sink sink;
            auto o = quick_options();
            o.tls.ca_file = pki().pki.ca_file;
            o.max_message_size = 64 * 1024;
            o.ping_interval = 100ms;
            o.pong_timeout = 2s;
            websocketpp_transport t(io, o);
            driver d{t, sink};
            const std::string url =
                std::string(tls ? "wss" : "ws") + "://127.0.0.1:" + std::to_string(py.port) + "/x";

            // a stale token: 401 with Retry-After, from an independent implementation
            const auto refused = d.connect(url, "wrong");
            REQUIRE(run_until(io, [&] { return sink.closed(refused); }));
            CHECK(sink.close_of(refused).http_status == 401);
            CHECK(sink.close_of(refused).retry_after ==
                  std::optional<std::chrono::milliseconds>(3000ms));

            const auto id = d.connect(url, "py-token", {"chat.v1"});
            REQUIRE(run_until(io, [&] { return sink.opened(id) || sink.closed(id); }));
            REQUIRE(sink.opened(id));
            CHECK(sink.records[id].info.subprotocol == "chat.v1");
            const std::string binary("\x00\x80\xff", 3);
            CHECK_FALSE(d.send(id, "héllo"));
            CHECK_FALSE(d.send(id, binary, message_kind::binary));
            CHECK_FALSE(d.send(id, std::string(70000, 'a'))); // 64-bit length, masked by us
            CHECK_FALSE(d.send(id, "big 60000"));
            REQUIRE(run_until(io, [&] { return sink.message_count(id) == 3 || sink.closed(id); }));
            // the 70000-byte echo exceeds our max_message_size: the peer must see 1009 from us
            REQUIRE(run_until(io, [&] { return sink.closed(id); }));
            const auto& msgs = sink.records[id].messages;
            REQUIRE(msgs.size() >= 2);
            CHECK(msgs[0] == std::make_pair(std::string("héllo"), message_kind::text));
            CHECK(msgs[1] == std::make_pair(binary, message_kind::binary));
            CHECK(sink.close_of(id).error == tether::error::message_too_large);
            CHECK(sink.close_of(id).code == 1009);

            // the seed's expiry close, with server pings answered meanwhile
            const auto again = d.connect(url, "py-token");
            REQUIRE(run_until(io, [&] { return sink.opened(again); }));
            test_support::run_for(io, 400ms); // several server pings (every 100 ms) answered
            CHECK_FALSE(sink.closed(again));
            CHECK_FALSE(d.send(again, "big 60000"));
            REQUIRE(run_until(io, [&] { return sink.message_count(again) == 1; }));
            CHECK(sink.records[again].messages[0].first.size() == 60000);
            CHECK_FALSE(d.send(again, "expire"));
            REQUIRE(run_until(io, [&] { return sink.closed(again); }));
            CHECK(sink.close_of(again).code == 4001);
            CHECK(sink.close_of(again).reason == "Token expired");
            CHECK_FALSE(sink.close_of(again).error);

            // and a graceful close from our side
            const auto last = d.connect(url, "py-token");
            REQUIRE(run_until(io, [&] { return sink.opened(last); }));
            d.close(last, 1001, "going away");
            REQUIRE(run_until(io, [&] { return sink.closed(last); }));
            CHECK(sink.close_of(last).code == 1001);
            CHECK_FALSE(sink.close_of(last).error);
            check_contract(sink);
        }
    }
}
#endif

// ---- end to end with the reconnecting client --------------------------------------------

namespace {

/// Issues tokens that expire `lifetime` after issue; the server checks them.
struct token_authority {
    std::chrono::milliseconds lifetime;
    int issued = 0;
    std::map<std::string, steady::time_point> expiry;

    std::string issue() {
        const std::string t = "tok-" + std::to_string(++issued);
        expiry[t] = steady::now() + lifetime;
        return t;
    }
    /// The seed's service: stale or unknown token -> 401; else accept and
    /// close with 4001 when the token expires.
    handshake_verdict verdict(const seen_request& r) const {
        handshake_verdict v;
        const auto it = expiry.find(bearer_of(r));
        const auto now = steady::now();
        if (it == expiry.end() || it->second <= now) {
            v.status = 401;
            v.body = "{\"error\": \"unauthorized\", \"message\": \"Token expired\"}";
            return v;
        }
        v.close_after = std::chrono::duration_cast<std::chrono::milliseconds>(it->second - now);
        return v;
    }
};

using e2e_client =
    tether::basic_reconnecting_client<websocketpp_transport,
                                      tether::callback_token<std::function<std::string()>>,
                                      tether::close_code_table<>>;

} // namespace

TEST_CASE("end to end: a token that expires every second, 10 cycles, one refresh each, no rejected "
          "handshake",
          "[transport][e2e]") {
    asio::io_context io;
    plain_test_server server(io);
    token_authority idp{1000ms, 0, {}};
    server.decide = [&](const seen_request& r) { return idp.verdict(r); };

    tether::client_options opts;
    opts.url = server.url("/v2/events");
    opts.auth_failure_uptime = 500ms; // a token that lived ~1 s worked
    e2e_client client(
        opts, websocketpp_transport(io, quick_options()),
        tether::callback_token<std::function<std::string()>>([&] { return idp.issue(); }),
        tether::close_code_table<>{{4001, tether::close_action::refresh_token_then_reconnect}});
    std::vector<std::string> log;
    int expiries = 0;
    client.on_open([&](const tether::open_event&) { log.push_back("open"); });
    client.on_token([&](const tether::token_event&) { log.push_back("token"); });
    client.on_close([&](const close_event& ev, const tether::reconnect_decision& d) {
        log.push_back("close " + std::to_string(ev.code) +
                      (ev.http_status ? " http " + std::to_string(ev.http_status) : ""));
        if (ev.code == 4001 && d.action == tether::close_action::refresh_token_then_reconnect)
            ++expiries;
    });
    bool stopped = false;
    client.on_stopped([&](const tether::stopped_event&) { stopped = true; });
    client.start();
    REQUIRE(run_until(
        io, [&] { return expiries == 10 && client.state() == tether::client_state::open; }, 20s));
    client.stop();
    REQUIRE(run_until(io, [&] { return stopped; }));

    const auto c = client.counters();
    CHECK(c.rejected_handshakes == 0);
    CHECK(server.refused == 0);
    CHECK(c.opens == 11);
    CHECK(c.tokens_acquired == 11);
    CHECK(idp.issued == 11);
    CHECK(server.accepted == 11);
    // every expiry is followed by exactly one refresh and then a successful handshake
    std::vector<std::string> expected{"token", "open"};
    for (int i = 0; i < 10; ++i) {
        expected.push_back("close 4001");
        expected.push_back("token");
        expected.push_back("open");
    }
    expected.push_back("close 1000");
    CHECK(log == expected);
}

TEST_CASE("end to end: TLS verification failure stops the client, no retry storm",
          "[transport][e2e][tls]") {
    asio::io_context io;
    test_support::tls_test_server server(
        io, test_support::server_tls_context(pki().pki.wrong_name.cert_pem,
                                             pki().pki.wrong_name.key_pem));
    auto o = quick_options();
    o.tls.ca_file = pki().pki.ca_file;
    tether::client_options opts;
    opts.url = server.url();
    tether::basic_reconnecting_client<websocketpp_transport, tether::static_token> client(
        opts, websocketpp_transport(io, o), tether::static_token(std::string("tok")));
    std::optional<tether::stopped_event> stopped;
    client.on_stopped([&](const tether::stopped_event& e) { stopped = e; });
    client.start();
    REQUIRE(run_until(io, [&] { return stopped.has_value(); }));
    CHECK(stopped->reason == tether::error::tls_verification_failed);
    REQUIRE(stopped->last_close);
    CHECK_THAT(stopped->last_close->detail, Contains("does not match"));
    test_support::run_for(io, 300ms); // nothing else happens
    CHECK(client.counters().connects == 1);
    CHECK(server.failed + server.handshakes <= 1);
    CHECK(server.handshakes == 0);
}

TEST_CASE("end to end: a server that stops answering is detected and the client reconnects",
          "[transport][e2e][liveness]") {
    asio::io_context io;
    plain_test_server server(io);
    auto o = quick_options();
    o.ping_interval = 100ms;
    o.pong_timeout = 100ms;
    tether::client_options opts;
    opts.url = server.url();
    tether::basic_reconnecting_client<websocketpp_transport> client(opts,
                                                                    websocketpp_transport(io, o));
    int opens = 0;
    std::optional<close_event> first_close;
    client.on_open([&](const tether::open_event&) {
        if (++opens == 1) client.send("pause"); // the first server connection goes dark
    });
    client.on_close([&](const close_event& ev, const tether::reconnect_decision&) {
        if (!first_close) first_close = ev;
    });
    client.start();
    REQUIRE(run_until(
        io, [&] { return opens == 2; }, 5s));
    REQUIRE(first_close);
    CHECK(first_close->error == tether::error::pong_timeout);
    CHECK(first_close->uptime < 1s);
    client.stop();
    REQUIRE(run_until(io, [&] { return client.state() == tether::client_state::stopped; }));
}

// ---- issue 12: defects found in review ------------------------------------------------------

TEST_CASE("cancel: no byte of a cancelled attempt leaves the process (issue 12 #1)",
          "[transport][close][security]") {
    asio::io_context io;
    test_support::raw_peer peer(io);
    peer.answer_handshake = false;
    const std::string url = "ws://localhost:" + std::to_string(peer.port()) + "/";
    recording_sink sink;

    SECTION("close() while resolving") {
        websocketpp_transport t(io, quick_options());
        driver d{t, sink};
        const auto id = d.connect(url, "SECRET-TOKEN-1");
        d.close(id);
        REQUIRE(run_until(io, [&] { return sink.closed(id); }));
        CHECK(sink.close_of(id).error == tether::error::operation_cancelled);
        // the resolve, connect and upgrade would finish well within this on loopback
        test_support::run_for(io, 500ms);
    }
    SECTION("the transport is destroyed while resolving") {
        {
            websocketpp_transport t(io, quick_options());
            driver d{t, sink};
            d.connect(url, "SECRET-TOKEN-2");
        }
        test_support::run_for(io, 500ms);
        CHECK(sink.records.empty());
    }
    // nothing reached the listener: no request, no credential, not even a connection
    INFO(peer.request);
    CHECK(peer.request.find("Authorization") == std::string::npos);
    CHECK(peer.request.empty());
    CHECK(peer.connections == 0);
}

TEST_CASE("IPv6 literal: Host is bracketed (issue 12 #2)", "[transport][url]") {
    asio::io_context io;
    std::unique_ptr<test_support::raw_peer> peer;
    try {
        peer = std::make_unique<test_support::raw_peer>(io, "::1");
    } catch (const std::system_error&) {
        WARN("no IPv6 loopback on this machine; skipped");
        return;
    }
    peer->answer_handshake = false;
    recording_sink sink;
    websocketpp_transport t(io, quick_options());
    driver d{t, sink};
    const auto id = d.connect(peer->url(), "tok");
    REQUIRE(run_until(io, [&] { return !peer->request.empty(); }));
    INFO(peer->request);
    CHECK_THAT(peer->request, Contains("\r\nHost: [::1]:" + std::to_string(peer->port()) + "\r\n"));
    d.close(id);
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
}

TEST_CASE("SNI failure fails the connection before anything is sent (issue 12 #5)",
          "[transport][tls]") {
    asio::io_context io;
    recording_sink sink;
    websocketpp_transport t(io, quick_options());
    driver d{t, sink};
    // OpenSSL refuses SNI names over 255 bytes; the name never reaches a resolver
    const auto id = d.connect("wss://" + std::string(250, 'a') + ".example.com/", "tok");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    INFO(sink.close_of(id).detail);
    CHECK(sink.close_of(id).error == tether::error::connection_failed);
    CHECK_THAT(sink.close_of(id).detail, Contains("SNI"));
}

TEST_CASE("threads: an io_context run by a second thread is refused (issue 12 #6)",
          "[transport][threads]") {
    asio::io_context io;
    plain_test_server server(io);
    recording_sink sink;
    websocketpp_transport t(io, quick_options());
    driver d{t, sink};
    // this thread runs the io_context first...
    const connection_id first = d.connect(server.url());
    REQUIRE(run_until(io, [&] { return sink.opened(first); }));
    // ...then a second one, while this one lives (a joined thread's id may be
    // reused): the transport's shared per-io_context state is not
    // synchronised, so it must refuse.
    connection_id second = 0;
    std::thread b([&] {
        asio::post(io, [&] { second = d.connect(server.url()); });
        run_until(io, [&] { return second != 0 && sink.closed(second); });
    });
    b.join();
    REQUIRE(second != 0);
    REQUIRE(sink.closed(second));
    INFO(sink.close_of(second).detail);
    CHECK_FALSE(sink.opened(second));
    CHECK_THAT(sink.close_of(second).detail, Contains("more than one thread"));
}

#ifdef TETHER_TEST_PYTHON
TEST_CASE("interop: restart and async_send completions against the Python websockets server",
          "[transport][interop][e2e]") {
    python_peer py(false);
    asio::io_context io;
    tether::client_options opts;
    opts.url = "ws://127.0.0.1:" + std::to_string(py.port) + "/x";
    e2e_client client(opts, websocketpp_transport(io, quick_options()),
                      tether::callback_token<std::function<std::string()>>(
                          [] { return std::string("py-token"); }),
                      tether::close_code_table<>{});
    std::vector<std::string> echoes;
    int stops = 0;
    client.on_message([&](const tether::message_view& m) { echoes.emplace_back(m.data); });
    client.on_stopped([&](const tether::stopped_event&) { ++stops; });
    std::vector<std::error_code> done;
    const auto record = [&](std::error_code ec) { done.push_back(ec); };

    client.async_send("queued before start", record);
    for (int run = 1; run <= 2; ++run) {
        INFO("run " << run);
        client.start(); // the second time: a restart after stop()
        REQUIRE(run_until(io, [&] { return client.state() == tether::client_state::open; }));
        client.async_send("run " + std::to_string(run), record);
        const std::size_t want = static_cast<std::size_t>(run) + 1;
        REQUIRE(run_until(io, [&] { return echoes.size() == want; }));
        client.stop();
        REQUIRE(run_until(io, [&] { return stops == run; }));
    }
    client.async_send("after the stop", record);
    REQUIRE(run_until(io, [&] { return done.size() == 4; }));
    CHECK(echoes == std::vector<std::string>{"queued before start", "run 1", "run 2"});
    CHECK_FALSE(done[0]);
    CHECK_FALSE(done[1]);
    CHECK_FALSE(done[2]);
    CHECK(done[3] == tether::error::not_running);
    CHECK(client.counters().opens == 2);
    CHECK(client.buffered_amount() == 0);
    CHECK(client.buffered_amount_peak() >= std::string("queued before start").size());
}
#endif

// ---- HTTP proxy (CONNECT tunnels through a real tinyproxy) ---------------------------------

namespace {

tether::proxy_options proxy_at(const test_proxy::tinyproxy& p, const std::string& user = {},
                               const std::string& password = {}, const std::string& no_proxy = {}) {
    return tether::proxy_options::from_url(p.url(user, password), no_proxy);
}

} // namespace

TEST_CASE("proxy: ws:// through tinyproxy with Basic auth; token and messages reach the origin",
          "[transport][proxy]") {
    asio::io_context io;
    plain_test_server server(io);
    test_proxy::tinyproxy proxy({{server.port()}, "proxyuser", "proxy-pass-1"});
    auto o = quick_options();
    o.proxy = proxy_at(proxy, "proxyuser", "proxy-pass-1");
    recording_sink sink;
    websocketpp_transport t(io, o);
    driver d{t, sink};
    const auto id = d.connect(server.url("/through"), "tunnel-token");
    REQUIRE(run_until(io, [&] { return sink.opened(id) || sink.closed(id); }));
    INFO((sink.closed(id) ? sink.close_of(id).detail : std::string()));
    REQUIRE(sink.opened(id));
    REQUIRE(server.requests.size() == 1);
    CHECK(server.requests[0].authorization == "Bearer tunnel-token");
    CHECK(server.requests[0].resource == "/through");
    CHECK_FALSE(d.send(id, "via proxy"));
    REQUIRE(run_until(io, [&] { return sink.message_count(id) == 1; }));
    CHECK(sink.records[id].messages[0].first == "via proxy");
    d.close(id);
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    CHECK(proxy.connect_requests() == 1);
    check_contract(sink);
}

TEST_CASE("proxy: wss:// through tinyproxy verifies the origin's certificate by the origin's name",
          "[transport][proxy][tls]") {
    for (const bool good : {true, false}) {
        INFO((good ? "good certificate" : "certificate for another name"));
        asio::io_context io;
        const auto& cert = good ? pki().pki.good : pki().pki.wrong_name;
        test_support::tls_test_server server(
            io, test_support::server_tls_context(cert.cert_pem, cert.key_pem));
        test_proxy::tinyproxy proxy({{server.port()}, "u", "p"});
        auto o = quick_options();
        o.tls.ca_file = pki().pki.ca_file;
        o.proxy = proxy_at(proxy, "u", "p");
        recording_sink sink;
        websocketpp_transport t(io, o);
        driver d{t, sink};
        // the origin is "localhost"; the proxy is 127.0.0.1
        const auto id =
            d.connect("wss://localhost:" + std::to_string(server.port()) + "/", "tls-token");
        REQUIRE(run_until(io, [&] { return sink.opened(id) || sink.closed(id); }));
        CHECK(proxy.connect_requests() == 1);
        if (good) {
            INFO((sink.closed(id) ? sink.close_of(id).detail : std::string()));
            REQUIRE(sink.opened(id));
            CHECK(server.requests.at(0).authorization == "Bearer tls-token");
            CHECK_FALSE(d.send(id, "over tls"));
            REQUIRE(run_until(io, [&] { return sink.message_count(id) == 1; }));
            d.close(id);
            REQUIRE(run_until(io, [&] { return sink.closed(id); }));
        } else {
            const close_event& ev = sink.close_of(id);
            CHECK(ev.error == tether::error::tls_verification_failed);
            CHECK_THAT(ev.detail, Contains("does not match host 'localhost'"));
            CHECK(server.handshakes == 0);
        }
        check_contract(sink);
    }
}

TEST_CASE("proxy: wrong proxy credentials stop the client, no retry storm",
          "[transport][proxy][e2e]") {
    asio::io_context io;
    plain_test_server server(io);
    test_proxy::tinyproxy proxy({{server.port()}, "proxyuser", "right-pass"});
    auto o = quick_options();
    o.proxy = proxy_at(proxy, "proxyuser", "wrong-pass-7");
    tether::client_options opts;
    opts.url = server.url();
    tether::basic_reconnecting_client<websocketpp_transport, tether::static_token> client(
        opts, websocketpp_transport(io, o), tether::static_token(std::string("tok")));
    std::optional<tether::stopped_event> stopped;
    client.on_stopped([&](const tether::stopped_event& e) { stopped = e; });
    client.start();
    REQUIRE(run_until(io, [&] { return stopped.has_value(); }));
    CHECK(stopped->reason == tether::error::proxy_auth_required);
    REQUIRE(stopped->last_close);
    // tinyproxy 1.11 answers wrong credentials with 401, missing ones with 407
    CHECK((stopped->last_close->proxy_status == 407 || stopped->last_close->proxy_status == 401));
    CHECK(stopped->last_close->http_status == 0);
    CHECK_THAT(stopped->last_close->detail, Contains("credentials were refused"));
    CHECK(stopped->last_close->detail.find("wrong-pass-7") == std::string::npos);
    test_support::run_for(io, 300ms); // nothing else happens
    CHECK(client.counters().connects == 1);
    CHECK(proxy.connect_requests() == 1);
    CHECK(server.handshakes == 0);
}

TEST_CASE("proxy: 407 without proxy credentials is proxy_auth_required and a stop",
          "[transport][proxy]") {
    asio::io_context io;
    plain_test_server server(io);
    test_proxy::tinyproxy proxy({{server.port()}, "proxyuser", "right-pass"});
    auto o = quick_options();
    o.proxy = proxy_at(proxy);
    recording_sink sink;
    websocketpp_transport t(io, o);
    driver d{t, sink};
    const auto id = d.connect(server.url(), "tok");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const close_event& ev = sink.close_of(id);
    CHECK(ev.error == tether::error::proxy_auth_required);
    CHECK(ev.proxy_status == 407);
    CHECK_THAT(ev.detail, Contains("no proxy credentials configured"));
    CHECK(tether::default_close_policy().decide(ev).action == tether::close_action::stop);
    CHECK(server.handshakes == 0);
    check_contract(sink);
}

TEST_CASE("proxy: 403 from the proxy (port not allowed) is proxy_denied and a stop",
          "[transport][proxy]") {
    asio::io_context io;
    plain_test_server server(io);
    test_proxy::tinyproxy proxy({{1}, "", ""}); // CONNECT only to port 1
    auto o = quick_options();
    o.proxy = proxy_at(proxy);
    recording_sink sink;
    websocketpp_transport t(io, o);
    driver d{t, sink};
    const auto id = d.connect(server.url(), "tok");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const close_event& ev = sink.close_of(id);
    CHECK(ev.error == tether::error::proxy_denied);
    CHECK(ev.proxy_status == 403);
    CHECK(ev.http_status == 0);
    CHECK_FALSE(ev.handshake_refused());
    CHECK_THAT(ev.detail, Contains("HTTP proxy 127.0.0.1:" + std::to_string(proxy.port())));
    CHECK(server.handshakes == 0);
    const auto decision = tether::default_close_policy().decide(ev);
    CHECK(decision.action == tether::close_action::stop);
    CHECK(decision.stop_reason == tether::error::proxy_denied);
    check_contract(sink);
}

TEST_CASE("proxy: an origin the proxy cannot reach is proxy_error and a network retry",
          "[transport][proxy]") {
    asio::io_context io;
    const auto dead = test_proxy::unused_port();
    test_proxy::tinyproxy proxy({{dead}, "", ""});
    auto o = quick_options();
    o.proxy = proxy_at(proxy);
    recording_sink sink;
    websocketpp_transport t(io, o);
    driver d{t, sink};
    const auto id = d.connect("ws://127.0.0.1:" + std::to_string(dead) + "/");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const close_event& ev = sink.close_of(id);
    CHECK(ev.error == tether::error::proxy_error);
    CHECK(ev.proxy_status >= 500);
    const auto decision = tether::default_close_policy().decide(ev);
    CHECK(decision.action == tether::close_action::reconnect);
    CHECK(decision.cls == tether::failure_class::network);
    check_contract(sink);
}

TEST_CASE("proxy: a proxy port nobody listens on is a connection_failed and a network retry",
          "[transport][proxy]") {
    asio::io_context io;
    plain_test_server server(io);
    const auto closed = test_proxy::unused_port();
    auto o = quick_options();
    o.proxy =
        tether::proxy_options::from_url("http://u:secret-pw@127.0.0.1:" + std::to_string(closed));
    recording_sink sink;
    websocketpp_transport t(io, o);
    driver d{t, sink};
    const auto id = d.connect(server.url(), "tok");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const close_event& ev = sink.close_of(id);
    CHECK(ev.error == tether::error::connection_failed);
    CHECK_THAT(ev.detail, Contains("HTTP proxy 127.0.0.1:" + std::to_string(closed)));
    CHECK_THAT(ev.detail, Contains("refused"));
    CHECK(ev.detail.find("secret-pw") == std::string::npos);
    const auto decision = tether::default_close_policy().decide(ev);
    CHECK(decision.action == tether::close_action::reconnect);
    CHECK(decision.cls == tether::failure_class::network);
    CHECK(server.handshakes == 0);
    check_contract(sink);
}

TEST_CASE("proxy: a proxy that never answers CONNECT is bounded by the handshake timeout",
          "[transport][proxy]") {
    asio::io_context io;
    test_support::raw_peer peer(io);
    peer.answer_handshake = false;
    auto o = quick_options();
    o.handshake_timeout = 300ms;
    o.proxy = tether::proxy_options::from_url("http://127.0.0.1:" + std::to_string(peer.port()));
    recording_sink sink;
    websocketpp_transport t(io, o);
    driver d{t, sink};
    const auto start = steady::now();
    const auto id = d.connect("ws://127.0.0.1:9/", "tok");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const auto took = sink.records[id].closed_at - start;
    const close_event& ev = sink.close_of(id);
    CHECK(ev.error == tether::error::handshake_timeout);
    CHECK_THAT(ev.detail, Contains("answer to CONNECT"));
    CHECK(took <= 300ms + scheduling_slack);
    CHECK_THAT(peer.request, Contains("CONNECT 127.0.0.1:9 HTTP/1.1"));
    CHECK(peer.request.find("tok") == std::string::npos); // the token waits for the tunnel
    check_contract(sink);
}

TEST_CASE("proxy: no_proxy sends the origin direct; the proxy sees no request",
          "[transport][proxy]") {
    asio::io_context io;
    plain_test_server server(io);
    test_proxy::tinyproxy proxy({{server.port()}, "", ""});
    auto o = quick_options();
    o.proxy = proxy_at(proxy, "", "", "example.com, 127.0.0.1");
    recording_sink sink;
    websocketpp_transport t(io, o);
    driver d{t, sink};
    const auto id = d.connect(server.url(), "tok");
    REQUIRE(run_until(io, [&] { return sink.opened(id) || sink.closed(id); }));
    REQUIRE(sink.opened(id));
    d.close(id);
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    CHECK(proxy.connect_requests() == 0);
    CHECK(server.handshakes == 1);
    check_contract(sink);
}

TEST_CASE("proxy: a token over plain ws:// never crosses a proxy that is not loopback",
          "[transport][proxy][security]") {
    asio::io_context io;
    auto o = quick_options();
    o.proxy = tether::proxy_options::from_url("http://192.0.2.10:3128"); // TEST-NET-1
    recording_sink sink;
    websocketpp_transport t(io, o);
    driver d{t, sink};
    const auto id = d.connect("ws://127.0.0.1:9/", "tok");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const close_event& ev = sink.close_of(id);
    CHECK(ev.error == tether::error::insecure_transport);
    CHECK_THAT(ev.detail, Contains("HTTP proxy 192.0.2.10:3128"));
    CHECK(tether::default_close_policy().decide(ev).action == tether::close_action::stop);
    check_contract(sink);
}

TEST_CASE("ws: connections on one io_context share one deadline timer, each fires at its own time",
          "[transport][ws][failure]") {
    // Every connection's deadlines on an io_context sit in one queue behind one
    // timer. Four transports on one io_context, a peer that accepts TCP and
    // never answers: the handshake deadlines (set out of order) fire in order,
    // each at its own time, and one withdrawn from the middle of the queue
    // never fires.
    asio::io_context io;
    asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
    std::vector<std::unique_ptr<asio::ip::tcp::socket>> held;
    std::function<void()> accept_next = [&] {
        acceptor.async_accept([&](const std::error_code& ec, asio::ip::tcp::socket s) {
            if (ec) return;
            held.push_back(std::make_unique<asio::ip::tcp::socket>(std::move(s)));
            accept_next();
        });
    };
    accept_next();
    const std::string url = "ws://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port());

    const std::chrono::milliseconds timeouts[] = {500ms, 200ms, 800ms, 350ms};
    std::vector<std::unique_ptr<recording_sink>> sinks;
    std::vector<std::unique_ptr<websocketpp_transport>> transports;
    std::vector<connection_id> ids;
    const auto start = steady::now();
    for (const auto timeout : timeouts) {
        auto o = quick_options();
        o.handshake_timeout = timeout;
        sinks.push_back(std::make_unique<recording_sink>());
        transports.push_back(std::make_unique<websocketpp_transport>(io, o));
        driver d{*transports.back(), *sinks.back()};
        ids.push_back(d.connect(url, "tok"));
    }
    // withdraw the 800 ms one once the others are queued behind it
    asio::steady_timer withdraw(io, 100ms);
    withdraw.async_wait([&](const std::error_code&) {
        driver d{*transports[2], *sinks[2]};
        d.close(ids[2]);
    });
    const auto all_closed = [&] {
        for (std::size_t i = 0; i < sinks.size(); ++i)
            if (!sinks[i]->closed(ids[i])) return false;
        return true;
    };
    REQUIRE(run_until(io, all_closed));

    const close_event& withdrawn = sinks[2]->close_of(ids[2]);
    CHECK(withdrawn.error == tether::error::operation_cancelled);
    CHECK(sinks[2]->records[ids[2]].closed_at - start < 800ms);
    std::vector<std::pair<steady::time_point, std::size_t>> order;
    for (const std::size_t i : {0u, 1u, 3u}) {
        const close_event& ev = sinks[i]->close_of(ids[i]);
        const auto took = sinks[i]->records[ids[i]].closed_at - start;
        INFO("connection with a " << timeouts[i].count() << " ms timeout closed after " << ms(took)
                                  << " ms");
        CHECK(ev.error == tether::error::handshake_timeout);
        CHECK(took >= timeouts[i]);
        CHECK(took <= timeouts[i] + scheduling_slack);
        order.emplace_back(sinks[i]->records[ids[i]].closed_at, i);
    }
    std::sort(order.begin(), order.end());
    CHECK(order[0].second == 1); // 200 ms
    CHECK(order[1].second == 3); // 350 ms
    CHECK(order[2].second == 0); // 500 ms
    for (const auto& s : sinks)
        check_contract(*s);
}
