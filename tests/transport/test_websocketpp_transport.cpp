// websocketpp_transport over real sockets on 127.0.0.1: the transport
// conformance list (conformance.hpp, shared with the Beast transport), then
// what only this transport has: the ws-only instantiation, the io_context
// thread check, and the reconnecting client end to end against a websocketpp
// test server and the Python `websockets` library. Every wait is bounded; no
// assertion depends on a sleep.
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

namespace {

/// The conformance list's view of this transport.
struct wspp_conformance {
    using transport = tether::websocketpp_transport;
    using options = tether::websocketpp_transport_options;
    using io_context = asio::io_context;
    using raw_peer = test_support::raw_peer;

    /// The code reported for an invalid close frame (none is sent: see below).
    static std::uint16_t invalid_frame_close_code(const std::string& sample) {
        return sample == "reason not UTF-8" ? tether::close_code::invalid_payload
                                            : tether::close_code::protocol_error;
    }
    /// websocketpp's words for it.
    static const char* invalid_frame_detail(const std::string& sample) {
        if (sample == "close code 1005 on the wire") return "an invalid range (close code 1005)";
        if (sample == "close code 999") return "an invalid range (close code 999)";
        if (sample == "close code 1004 (reserved)") return "a reserved range (close code 1004)";
        if (sample == "reason not UTF-8") return "Invalid UTF-8";
        if (sample == "one-byte payload") return "Unable to extract close code";
        if (sample == "unmasked frame with reserved bits") return "Invalid use of reserved bits";
        return "(a sample without words)";
    }
    /// drop_on_protocol_error: a violating peer is dropped at once, without a
    /// close frame, so the reason reaches close_event::error intact.
    static constexpr bool sends_close_frame_on_violation = false;
    /// websocketpp fails the handshake as soon as the refusal's headers are
    /// parsed: only body bytes that came in the same read are kept.
    static constexpr bool keeps_refusal_body_written_after_headers = false;
    /// The TLS setup failure for a host name over 255 bytes (SSL_set_tlsext_host_name).
    static constexpr const char* long_host_name_detail = "OpenSSL refused it as the SNI name";
};

} // namespace

#define TETHER_CONFORMANCE_TRAITS wspp_conformance
#define TETHER_CONFORMANCE_TAG "[transport]"
#include "conformance.hpp"

using namespace std::chrono_literals;
using Catch::Contains;
using test_support::check_contract;
using test_support::driver;
using test_support::handshake_verdict;
using test_support::pki;
using test_support::plain_test_server;
using test_support::proxy_at;
using test_support::recording_sink;
using test_support::run_until;
using test_support::seen_request;
using test_support::steady;
using tether::close_event;
using tether::connection_id;
using tether::websocketpp_transport;
using tether::websocketpp_transport_options;

namespace {

websocketpp_transport_options quick_options() {
    return test_support::quick_options<websocketpp_transport_options>();
}

/// The bearer token from an Authorization header, or "".
std::string bearer_of(const seen_request& r) {
    return r.authorization.rfind("Bearer ", 0) == 0 ? r.authorization.substr(7) : std::string();
}

} // namespace

// ---- websocketpp only ----------------------------------------------------------------------

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
        io, test_support::server_tls_context(pki().wrong_name.cert_pem, pki().wrong_name.key_pem));
    auto o = quick_options();
    o.tls.ca_file = pki().ca_file;
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
    test_support::python_peer py;
    asio::io_context io;
    tether::client_options opts;
    opts.url = py.url("/auth");
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

// ---- HTTP proxy, with the client ---------------------------------------------------------

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
        INFO("connection with a " << timeouts[i].count() << " ms timeout closed after "
                                  << test_support::ms(took) << " ms");
        CHECK(ev.error == tether::error::handshake_timeout);
        CHECK(took >= timeouts[i]);
        CHECK(took <= timeouts[i] + test_support::scheduling_slack);
        order.emplace_back(sinks[i]->records[ids[i]].closed_at, i);
    }
    std::sort(order.begin(), order.end());
    CHECK(order[0].second == 1); // 200 ms
    CHECK(order[1].second == 3); // 350 ms
    CHECK(order[2].second == 0); // 500 ms
    for (const auto& s : sinks)
        check_contract(*s);
}
