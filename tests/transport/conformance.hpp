// The transport conformance list: every behaviour both production transports
// (websocketpp_transport, beast_transport) must have, written once and run
// against each at the transport level (a recording sink, no client), over
// real sockets on 127.0.0.1: a raw scripted peer, the Python `websockets`
// library as an independent peer (plain and TLS, certificates made at test
// time) and tinyproxy. Every wait is bounded; no assertion depends on a sleep.
//
// Instantiated in the transport's own test file (one translation unit each:
// websocketpp and Beast are expensive to compile). Before including this
// header, define
//
//   TETHER_CONFORMANCE_TRAITS  a traits type: `transport`, `options`,
//                              `io_context`, `raw_peer` (basic_raw_peer over
//                              the transport's Asio flavour), and each
//                              transport's own expectation where they differ:
//       invalid_frame_close_code(sample), invalid_frame_detail(sample)
//           the code and words reported for an invalid close frame;
//       sends_close_frame_on_violation
//           true: a protocol violation or an oversized message is answered
//           with a close frame (1002, 1009); false: the TCP connection is
//           dropped at once (the peer sees 1006);
//       keeps_refusal_body_written_after_headers
//           true: a refusal's body that arrives after its headers is read;
//       long_host_name_detail
//           the words for a host name OpenSSL refuses;
//   TETHER_CONFORMANCE_TAG     the transport's tag, e.g. "[transport]".
//
// Where the transports legitimately differ, the traits state each one's
// expectation; behaviours only one transport has stay in its own file.
#ifndef TETHER_TESTS_TRANSPORT_CONFORMANCE_HPP
#define TETHER_TESTS_TRANSPORT_CONFORMANCE_HPP

#include <tether/close_policy/default_close_policy.hpp>
#include <tether/proxy.hpp>
#include <tether/transport/concept.hpp>

#include "../tinyproxy_fixture.hpp"
#include "python_peer.hpp"
#include "raw_peer.hpp"
#include "support.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace test_support {

using steady = std::chrono::steady_clock;

/// Timer and scheduling delay allowed on top of a bound: the machine is
/// shared and the tests also run under sanitizers.
constexpr std::chrono::milliseconds scheduling_slack{400};

inline long long ms(steady::duration d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

/// Records every sink call, and flags any made from inside a transport call.
/// One per transport: connection ids are the transport's own.
struct recording_sink {
    struct record {
        int opens = 0;
        int closes = 0;
        tether::open_info info;
        std::vector<std::pair<std::string, tether::message_kind>> messages;
        tether::close_event closed;
        steady::time_point opened_at{};
        steady::time_point closed_at{};
        steady::time_point last_message_at{};
    };
    std::map<tether::connection_id, record> records;
    /// Called after each message is recorded (a test acting from the callback).
    std::function<void(tether::connection_id)> after_message;
    bool inside_transport_call = false;
    int inline_calls = 0;
    int calls_after_close = 0;
    int calls = 0;

    void on_transport_open(tether::connection_id id, const tether::open_info& info) {
        note(id);
        auto& r = records[id];
        ++r.opens;
        r.info = info;
        r.opened_at = steady::now();
    }
    void on_transport_message(tether::connection_id id, const tether::message_view& m) {
        note(id);
        records[id].messages.emplace_back(std::string(m.data), m.kind);
        records[id].last_message_at = steady::now();
        if (after_message) after_message(id);
    }
    void on_transport_close(tether::connection_id id, tether::close_event&& ev) {
        note(id);
        auto& r = records[id];
        ++r.closes;
        r.closed = std::move(ev);
        r.closed_at = steady::now();
    }

    bool opened(tether::connection_id id) const {
        return records.count(id) && records.at(id).opens > 0;
    }
    bool closed(tether::connection_id id) const {
        return records.count(id) && records.at(id).closes > 0;
    }
    std::size_t message_count(tether::connection_id id) const {
        return records.count(id) ? records.at(id).messages.size() : 0;
    }
    const tether::close_event& close_of(tether::connection_id id) const {
        return records.at(id).closed;
    }

private:
    void note(tether::connection_id id) {
        ++calls;
        if (inside_transport_call) ++inline_calls;
        if (records.count(id) && records[id].closes > 0) ++calls_after_close;
    }
};

/// Transport calls made the way the client makes them, watching for inline sink calls.
template <class Transport> struct driver {
    Transport& t;
    recording_sink& sink;

    driver(Transport& transport, recording_sink& s) : t(transport), sink(s) {}

    tether::connection_id connect(const std::string& url, const std::string& token = {},
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
    std::error_code send(tether::connection_id id, const std::string& data,
                         tether::message_kind k = tether::message_kind::text) {
        sink.inside_transport_call = true;
        const auto ec = t.send(id, data, k);
        sink.inside_transport_call = false;
        return ec;
    }
    void close(tether::connection_id id, std::uint16_t code = 1000,
               const std::string& reason = "bye") {
        sink.inside_transport_call = true;
        t.close(id, code, reason);
        sink.inside_transport_call = false;
    }
};

/// Short timeouts, no pings: what most tests start from.
template <class Options> Options quick_options() {
    Options o;
    o.handshake_timeout = std::chrono::seconds(3);
    o.close_timeout = std::chrono::seconds(2);
    o.ping_interval = std::chrono::milliseconds(0);
    return o;
}

inline void check_contract(const recording_sink& sink) {
    CHECK(sink.inline_calls == 0);
    CHECK(sink.calls_after_close == 0);
    for (const auto& entry : sink.records) {
        INFO("connection " << entry.first);
        CHECK(entry.second.closes <= 1);
        CHECK(entry.second.opens <= 1);
    }
}

/// One PKI for the whole run.
inline const test_pki& pki() {
    static temp_dir dir;
    static test_pki p(dir);
    return p;
}

inline tether::proxy_options proxy_at(const test_proxy::tinyproxy& p, const std::string& user = {},
                                      const std::string& password = {},
                                      const std::string& no_proxy = {}) {
    return tether::proxy_options::from_url(p.url(user, password), no_proxy);
}

} // namespace test_support

// ---- the list ---------------------------------------------------------------------------

#if !defined(TETHER_CONFORMANCE_TRAITS) || !defined(TETHER_CONFORMANCE_TAG)
#error "define TETHER_CONFORMANCE_TRAITS and TETHER_CONFORMANCE_TAG first"
#endif

/// One behaviour of the list, for the traits type this TU names (`TestType`).
#define TETHER_CONFORMANCE_CASE(name, tags)                                                        \
    TEMPLATE_TEST_CASE("conformance: " name, TETHER_CONFORMANCE_TAG "[conformance]" tags,          \
                       TETHER_CONFORMANCE_TRAITS)

namespace conformance {

using namespace std::chrono_literals;
using Catch::Contains;
using test_support::check_contract;
using test_support::driver;
using test_support::ms;
using test_support::pki;
using test_support::proxy_at;
using test_support::recording_sink;
using test_support::run_for;
using test_support::run_until;
using test_support::scheduling_slack;
using test_support::steady;
using tether::close_event;
using tether::connection_id;
using tether::message_kind;

template <class T> typename T::options quick() {
    return test_support::quick_options<typename T::options>();
}

// ---- without a peer ----------------------------------------------------------------------

TETHER_CONFORMANCE_CASE("a token is never sent in clear to a host that is not loopback",
                        "[security]") {
    using T = TestType;
    typename T::io_context io;
    recording_sink sink;
    typename T::transport t(io, quick<T>());
    driver d(t, sink);
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
    CHECK_FALSE(ev.was_open);
    CHECK(tether::default_close_policy().decide(ev).action == tether::close_action::stop);
    CHECK(io.poll() == 0);
    check_contract(sink);
}

TETHER_CONFORMANCE_CASE("malformed URLs and unsafe headers fail clearly, later, without a "
                        "connection",
                        "[failure]") {
    using T = TestType;
    typename T::io_context io;
    typename T::raw_peer peer(io); // a listener that must see no connection
    recording_sink sink;
    typename T::transport t(io, quick<T>());
    driver d(t, sink);
    const std::string url = peer.url();
    const auto a = d.connect("http://127.0.0.1/");
    const auto b = d.connect(url, "", {}, {{"X-Evil", "a\r\nInjected: 1"}});
    const auto c = d.connect(url, "tok\r\nX: y");
    const auto e = d.connect(url, "", {"bad protocol"});
    // a token that is not an HTTP token cannot be a subprotocol entry
    auto o = quick<T>();
    o.token_in = tether::token_placement::subprotocol;
    o.token_subprotocol_prefix = "bearer.token.";
    typename T::transport sub(io, o);
    recording_sink sub_sink;
    driver ds(sub, sub_sink);
    const auto f = ds.connect(url, "has space");
    REQUIRE(run_until(io, [&] {
        return sink.closed(a) && sink.closed(b) && sink.closed(c) && sink.closed(e) &&
               sub_sink.closed(f);
    }));
    CHECK(sink.close_of(a).error == tether::error::invalid_url);
    CHECK_THAT(sink.close_of(a).detail, Contains("scheme"));
    CHECK(sink.close_of(b).error == tether::error::invalid_upgrade_request);
    CHECK(sink.close_of(c).error == tether::error::invalid_upgrade_request);
    CHECK(sink.close_of(e).error == tether::error::invalid_upgrade_request);
    CHECK(sub_sink.close_of(f).error == tether::error::invalid_upgrade_request);
    CHECK(tether::default_close_policy().decide(sink.close_of(a)).action ==
          tether::close_action::stop);
    run_for(io, 100ms);
    CHECK(peer.connections == 0);
    check_contract(sink);
    check_contract(sub_sink);
}

TETHER_CONFORMANCE_CASE("invalid options throw at construction", "[options]") {
    using T = TestType;
    typename T::io_context io;
    auto o = quick<T>();
    o.handshake_timeout = 0ms;
    CHECK_THROWS_AS(typename T::transport(io, o), std::system_error);
    CHECK_THROWS_WITH(typename T::transport(io, o), Contains("handshake_timeout"));
    o = quick<T>();
    o.close_timeout = 0ms;
    CHECK_THROWS_WITH(typename T::transport(io, o), Contains("close_timeout"));
    o = quick<T>();
    o.headers = {{"Bad Name", "x"}};
    CHECK_THROWS_WITH(typename T::transport(io, o), Contains("Bad Name"));
    o = quick<T>();
    o.tls.ca_file = "/nonexistent/ca.pem";
    CHECK_THROWS_WITH(typename T::transport(io, o), Contains("ca_file"));
}

TETHER_CONFORMANCE_CASE("connection refused is a connection_failed with the address", "[failure]") {
    using T = TestType;
    typename T::io_context io;
    const auto port = test_proxy::unused_port();
    recording_sink sink;
    typename T::transport t(io, quick<T>());
    driver d(t, sink);
    const auto id = d.connect("ws://127.0.0.1:" + std::to_string(port) + "/");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const close_event& ev = sink.close_of(id);
    INFO(ev.detail);
    CHECK(ev.error == tether::error::connection_failed);
    CHECK_THAT(ev.detail, Contains("127.0.0.1:" + std::to_string(port)));
    CHECK_THAT(ev.detail, Contains("refused"));
    CHECK(ev.code == 0);
    CHECK_FALSE(ev.was_open);
    CHECK(tether::default_close_policy().decide(ev).action == tether::close_action::reconnect);
    check_contract(sink);
}

TETHER_CONFORMANCE_CASE("a token over plain ws:// never crosses a proxy that is not loopback",
                        "[proxy][security]") {
    using T = TestType;
    typename T::io_context io;
    auto o = quick<T>();
    o.proxy = tether::proxy_options::from_url("http://192.0.2.10:3128"); // TEST-NET-1
    recording_sink sink;
    typename T::transport t(io, o);
    driver d(t, sink);
    const auto id = d.connect("ws://127.0.0.1:9/", "tok");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const close_event& ev = sink.close_of(id);
    CHECK(ev.error == tether::error::insecure_transport);
    CHECK_THAT(ev.detail, Contains("HTTP proxy 192.0.2.10:3128"));
    CHECK(tether::default_close_policy().decide(ev).action == tether::close_action::stop);
    check_contract(sink);
}

TETHER_CONFORMANCE_CASE("a proxy port nobody listens on is a connection_failed and a network "
                        "retry",
                        "[proxy]") {
    using T = TestType;
    typename T::io_context io;
    typename T::raw_peer origin(io);
    const auto closed = test_proxy::unused_port();
    auto o = quick<T>();
    o.proxy =
        tether::proxy_options::from_url("http://u:secret-pw@127.0.0.1:" + std::to_string(closed));
    recording_sink sink;
    typename T::transport t(io, o);
    driver d(t, sink);
    const auto id = d.connect(origin.url(), "tok");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const close_event& ev = sink.close_of(id);
    INFO(ev.detail);
    CHECK(ev.error == tether::error::connection_failed);
    CHECK_THAT(ev.detail, Contains("HTTP proxy 127.0.0.1:" + std::to_string(closed)));
    CHECK_THAT(ev.detail, Contains("refused"));
    CHECK(ev.detail.find("secret-pw") == std::string::npos);
    const auto decision = tether::default_close_policy().decide(ev);
    CHECK(decision.action == tether::close_action::reconnect);
    CHECK(decision.cls == tether::failure_class::network);
    CHECK(origin.connections == 0);
    check_contract(sink);
}

// ---- a raw scripted peer -----------------------------------------------------------------

TETHER_CONFORMANCE_CASE("close() while connecting aborts at once; no byte of the upgrade leaves",
                        "[close][security]") {
    using T = TestType;
    typename T::io_context io;
    typename T::raw_peer peer(io);
    peer.answer_handshake = false;
    recording_sink sink;
    {
        typename T::transport t(io, quick<T>());
        driver d(t, sink);
        for (const std::string host : {"localhost", "127.0.0.1"}) {
            INFO(host);
            // close() right after connect(), before anything ran (resolving "localhost")
            const auto id =
                d.connect("ws://" + host + ":" + std::to_string(peer.port()) + "/", "SECRET-1");
            d.close(id);
            d.close(id); // idempotent
            CHECK_FALSE(sink.closed(id));
            REQUIRE(run_until(io, [&] { return sink.closed(id); }));
            CHECK(sink.close_of(id).error == tether::error::operation_cancelled);
            CHECK(sink.close_of(id).initiated_locally);
            CHECK_FALSE(sink.close_of(id).was_open);
            // resolve, connect and upgrade would finish well within this on loopback
            run_for(io, 500ms);
            CHECK(sink.records[id].closes == 1);
        }
        d.close(12345); // unknown ids are ignored
        // the transport destroyed while resolving: nothing leaves either
        d.connect("ws://localhost:" + std::to_string(peer.port()) + "/", "SECRET-2");
    }
    const auto calls = sink.calls;
    run_for(io, 500ms);
    CHECK(sink.calls == calls);
    // nothing reached the listener: no request, no credential, not even a connection
    INFO(peer.request);
    CHECK(peer.request.empty());
    CHECK(peer.connections == 0);
    check_contract(sink);
}

TETHER_CONFORMANCE_CASE("close() while the upgrade is unanswered reports once and drops the "
                        "socket",
                        "[close]") {
    using T = TestType;
    typename T::io_context io;
    typename T::raw_peer peer(io);
    peer.answer_handshake = false;
    recording_sink sink;
    typename T::transport t(io, quick<T>());
    driver d(t, sink);
    const auto id = d.connect(peer.url(), "tok");
    REQUIRE(run_until(io, [&] { return !peer.request.empty(); }));
    d.close(id);
    d.close(id);
    CHECK_FALSE(sink.closed(id));
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    CHECK(sink.close_of(id).error == tether::error::operation_cancelled);
    CHECK(sink.close_of(id).initiated_locally);
    REQUIRE(run_until(
        io, [&] { return peer.peer_closed; }, 3s));
    run_for(io, 100ms);
    CHECK(sink.records[id].closes == 1);
    check_contract(sink);
}

TETHER_CONFORMANCE_CASE("a server that never answers the upgrade hits the handshake timeout",
                        "[timeout]") {
    using T = TestType;
    typename T::io_context io;
    typename T::raw_peer peer(io);
    peer.answer_handshake = false;
    recording_sink sink;
    auto o = quick<T>();
    o.handshake_timeout = 300ms;
    typename T::transport t(io, o);
    driver d(t, sink);
    const auto start = steady::now();
    const auto id = d.connect(peer.url(), "tok");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const close_event& ev = sink.close_of(id);
    CHECK(ev.error == tether::error::handshake_timeout);
    CHECK_THAT(ev.detail, Contains("waiting for the upgrade response"));
    CHECK_FALSE(ev.was_open);
    const auto took = sink.records[id].closed_at - start;
    INFO("timed out after " << ms(took) << " ms");
    CHECK(took >= 300ms);
    CHECK(took <= 300ms + scheduling_slack);
    CHECK_THAT(peer.request, Contains("Authorization: Bearer tok"));
    // the abandoned socket is closed
    REQUIRE(run_until(
        io, [&] { return peer.peer_closed; }, 5s));
    check_contract(sink);
}

TETHER_CONFORMANCE_CASE("a subprotocol the client did not offer fails the connection; the token "
                        "subprotocol is reported as [token]",
                        "[protocol]") {
    using T = TestType;
    typename T::io_context io;
    recording_sink sink;
    SECTION("not offered") {
        typename T::raw_peer peer(io);
        peer.extra_response_headers = "Sec-WebSocket-Protocol: something.else\r\n";
        typename T::transport t(io, quick<T>());
        driver d(t, sink);
        const auto id = d.connect(peer.url(), {}, {"chat.v1"});
        REQUIRE(run_until(io, [&] { return sink.closed(id); }));
        CHECK_FALSE(sink.opened(id));
        CHECK(sink.close_of(id).error == tether::error::protocol_error);
        CHECK_THAT(sink.close_of(id).detail, Contains("something.else"));
    }
    for (const bool select_token : {false, true}) {
        SECTION(select_token ? "the token entry selected" : "an offered entry selected") {
            typename T::raw_peer peer(io);
            peer.extra_response_headers = std::string("Sec-WebSocket-Protocol: ") +
                                          (select_token ? "tok.abc123" : "events.v1") + "\r\n";
            auto o = quick<T>();
            o.token_in = tether::token_placement::subprotocol;
            o.token_subprotocol_prefix = "tok.";
            o.subprotocols = {"events.v1"};
            typename T::transport t(io, o);
            driver d(t, sink);
            const auto id = d.connect(peer.url(), "abc123", {"chat.v1"});
            REQUIRE(run_until(io, [&] { return sink.opened(id) || sink.closed(id); }));
            REQUIRE(sink.opened(id));
            // never reported in clear
            CHECK(sink.records[id].info.subprotocol == (select_token ? "[token]" : "events.v1"));
            CHECK_THAT(peer.request,
                       Contains("Sec-WebSocket-Protocol: events.v1, chat.v1, tok.abc123\r\n"));
            CHECK(peer.request.find("Authorization") == std::string::npos);
        }
    }
    check_contract(sink);
}

TETHER_CONFORMANCE_CASE("a peer that stops answering is detected within ping interval + pong "
                        "timeout",
                        "[liveness]") {
    using T = TestType;
    typename T::io_context io;
    typename T::raw_peer peer(io); // answers the upgrade, then never writes again
    recording_sink sink;
    auto o = quick<T>();
    o.ping_interval = 150ms;
    o.pong_timeout = 100ms;
    typename T::transport t(io, o);
    driver d(t, sink);
    const auto id = d.connect(peer.url());
    REQUIRE(run_until(io, [&] { return sink.opened(id); }));
    REQUIRE(run_until(
        io, [&] { return sink.closed(id); }, 3s));
    const auto took = sink.records[id].closed_at - sink.records[id].opened_at;
    const close_event& ev = sink.close_of(id);
    INFO(ev.detail);
    CHECK(ev.error == tether::error::pong_timeout);
    CHECK(ev.code == tether::close_code::abnormal);
    CHECK(ev.was_open);
    CHECK(ev.initiated_locally);
    INFO("detected after " << ms(took) << " ms");
    CHECK(took >= 250ms);                            // not before a pong could have come
    CHECK(took <= 150ms + 100ms + scheduling_slack); // ping interval + pong timeout
    CHECK(tether::default_close_policy().decide(ev).action == tether::close_action::reconnect);
    // the ping went out: a masked ping frame (0x89)
    REQUIRE_FALSE(peer.received.empty());
    CHECK(static_cast<unsigned char>(peer.received[0]) == 0x89);
    check_contract(sink);
}

TETHER_CONFORMANCE_CASE("idle timeout when no frame arrives", "[liveness]") {
    using T = TestType;
    typename T::io_context io;
    typename T::raw_peer peer(io);
    peer.after_handshake = test_support::server_frame(0x1, "hello"); // one frame, then silence
    recording_sink sink;
    auto o = quick<T>();
    o.idle_timeout = 200ms; // pings off: only data would keep it alive
    typename T::transport t(io, o);
    driver d(t, sink);
    const auto id = d.connect(peer.url());
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    REQUIRE(sink.message_count(id) == 1);
    const auto took = sink.records[id].closed_at - sink.records[id].last_message_at;
    CHECK(sink.close_of(id).error == tether::error::idle_timeout);
    CHECK(sink.close_of(id).code == tether::close_code::abnormal);
    INFO("detected after " << ms(took) << " ms");
    CHECK(took >= 200ms);
    CHECK(took <= 250ms + scheduling_slack); // idle timeout + one check period
    check_contract(sink);
}

TETHER_CONFORMANCE_CASE("a peer that never answers the close frame hits the close timeout",
                        "[close]") {
    using T = TestType;
    typename T::io_context io;
    typename T::raw_peer peer(io);
    recording_sink sink;
    auto o = quick<T>();
    o.close_timeout = 200ms;
    typename T::transport t(io, o);
    driver d(t, sink);
    const auto id = d.connect(peer.url());
    REQUIRE(run_until(io, [&] { return sink.opened(id); }));
    const auto start = steady::now();
    d.close(id, 4000, "leaving");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const auto took = sink.records[id].closed_at - start;
    const close_event& ev = sink.close_of(id);
    CHECK(ev.error == tether::error::close_timeout);
    CHECK(ev.code == 4000);
    CHECK(ev.reason == "leaving");
    CHECK(ev.initiated_locally);
    INFO("timed out after " << ms(took) << " ms");
    CHECK(took >= 200ms);
    CHECK(took <= 200ms + scheduling_slack);
    // the close frame went out, masked, with our code (0x0FA0)
    REQUIRE(peer.received.size() >= 8);
    CHECK(static_cast<unsigned char>(peer.received[0]) == 0x88);
    REQUIRE(run_until(
        io, [&] { return peer.peer_closed; }, 3s));
    check_contract(sink);
}

TETHER_CONFORMANCE_CASE("invalid close frames from the peer are clear protocol errors",
                        "[protocol]") {
    using T = TestType;
    struct sample {
        const char* name;
        std::string frame;
    };
    const sample samples[] = {
        {"close code 1005 on the wire", test_support::close_frame(1005, "")},
        {"close code 999", test_support::close_frame(999, "")},
        {"close code 1004 (reserved)", test_support::close_frame(1004, "")},
        {"reason not UTF-8", test_support::close_frame(1000, "\xff\xfe")},
        {"one-byte payload", test_support::server_frame(0x8, "x")},
        {"unmasked frame with reserved bits", std::string("\xf1\x01x", 3)},
    };
    for (const auto& s : samples) {
        SECTION(s.name) {
            typename T::io_context io;
            typename T::raw_peer peer(io);
            peer.after_handshake = s.frame;
            recording_sink sink;
            auto o = quick<T>();
            o.close_timeout = 300ms; // the peer never answers our close frame
            typename T::transport t(io, o);
            driver d(t, sink);
            const auto start = steady::now();
            const auto id = d.connect(peer.url());
            REQUIRE(run_until(io, [&] { return sink.closed(id); }));
            const close_event& ev = sink.close_of(id);
            INFO(ev.detail << " after " << ms(sink.records[id].closed_at - start) << " ms");
            CHECK(sink.opened(id));
            CHECK(ev.was_open);
            CHECK(ev.initiated_locally);
            CHECK(ev.error == tether::error::protocol_error);
            CHECK(ev.code == T::invalid_frame_close_code(s.name));
            CHECK_THAT(ev.detail, Contains("violated the WebSocket protocol: "));
            CHECK_THAT(ev.detail, Contains(T::invalid_frame_detail(s.name)));
            CHECK(sink.records[id].closed_at - start <= 300ms + scheduling_slack);
            CHECK(tether::default_close_policy().decide(ev).action == tether::close_action::stop);
            REQUIRE(run_until(
                io, [&] { return peer.peer_closed; }, 3s));
            if (T::sends_close_frame_on_violation) {
                // a masked close frame with the code reported
                REQUIRE(peer.received.size() >= 8);
                CHECK(static_cast<unsigned char>(peer.received[0]) == 0x88);
            } else {
                CHECK(peer.received.empty()); // dropped without a close frame
            }
            check_contract(sink);
        }
    }
}

/// Unmasks the frames a client sent (RFC 6455 5.3): their opcodes and
/// payloads, in order. Stops at a frame not all there.
inline std::vector<std::pair<unsigned, std::string>> client_frames(const std::string& bytes) {
    std::vector<std::pair<unsigned, std::string>> out;
    std::size_t at = 0;
    while (bytes.size() - at >= 6) {
        const auto b0 = static_cast<unsigned char>(bytes[at]);
        std::size_t len = static_cast<unsigned char>(bytes[at + 1]) & 0x7fu, head = 6;
        if (len == 126) {
            if (bytes.size() - at < 8) break;
            len = (static_cast<std::size_t>(static_cast<unsigned char>(bytes[at + 2])) << 8) |
                  static_cast<unsigned char>(bytes[at + 3]);
            head = 8;
        }
        if (len == 127 || bytes.size() - at < head + len) break;
        std::string payload = bytes.substr(at + head, len);
        for (std::size_t i = 0; i < len; ++i)
            payload[i] = static_cast<char>(payload[i] ^ bytes[at + head - 4 + i % 4]);
        out.emplace_back(b0 & 0x0fu, std::move(payload));
        at += head + len;
    }
    return out;
}

TETHER_CONFORMANCE_CASE("messages that arrive together are all delivered, in order, in a few "
                        "scheduler turns; a ping, bad text or a close among them acts as alone",
                        "[protocol][perf]") {
    using T = TestType;
    typename T::io_context io;
    typename T::raw_peer peer(io);
    // 300 messages in one write, right behind the 101: text and binary, some
    // fragmented, some with two-byte characters; a ping after message 150
    std::vector<std::pair<std::string, message_kind>> sent;
    std::string burst;
    const std::string tail =
        GENERATE(as<std::string>{}, "close", "bad text", "close from the 100th message's callback");
    for (int i = 0; i < 300; ++i) {
        const bool binary = i % 7 == 3;
        std::string m = (binary ? "b" : "t") + std::to_string(i) + (i % 5 == 0 ? "\xc3\xa9" : "");
        if (i % 11 == 0) { // two fragments
            burst += std::string(1, static_cast<char>(binary ? 0x02 : 0x01)) +
                     static_cast<char>(1) + m.substr(0, 1);
            burst += std::string(1, static_cast<char>(0x80)) + static_cast<char>(m.size() - 1) +
                     m.substr(1);
        } else {
            burst += test_support::server_frame(binary ? 0x2 : 0x1, m);
        }
        sent.emplace_back(m, binary ? message_kind::binary : message_kind::text);
        if (i == 150) burst += test_support::server_frame(0x9, "p150");
    }
    if (tail != "bad text")
        burst += test_support::close_frame(4001, "Token expired");
    else
        burst +=
            test_support::server_frame(0x1, "a\xff") + test_support::server_frame(0x1, "not this");
    peer.after_handshake = burst;
    recording_sink sink;
    auto o = quick<T>();
    o.close_timeout = 300ms; // the peer never answers our close frame
    typename T::transport t(io, o);
    driver d(t, sink);
    if (tail == "close from the 100th message's callback") {
        sink.after_message = [&](connection_id id) {
            if (sink.message_count(id) == 100) t.close(id, 1000, "enough");
        };
    }
    const auto id = d.connect(peer.url());
    REQUIRE(run_until(io, [&] { return sink.opened(id); }));
    std::size_t handlers = 0;
    const auto deadline = steady::now() + 5s;
    while (!sink.closed(id) && steady::now() < deadline)
        handlers += io.run_one_for(20ms);
    REQUIRE(sink.closed(id));
    const close_event& ev = sink.close_of(id);
    INFO(ev.detail);
    if (tail == "close from the 100th message's callback") {
        // what follows the close is not delivered, or only what was read already
        auto got = sink.records[id].messages;
        CHECK(got.size() >= 100);
        got.resize(std::min(got.size(), sent.size()));
        CHECK(std::equal(got.begin(), got.end(), sent.begin()));
        CHECK(ev.initiated_locally);
        check_contract(sink);
        return;
    }
    CHECK(sink.records[id].messages == sent);
    if (tail == "close") {
        CHECK(ev.code == 4001);
        CHECK(ev.reason == "Token expired");
        CHECK_FALSE(ev.initiated_locally);
    } else {
        CHECK(ev.code == tether::close_code::invalid_payload);
        CHECK(ev.error == tether::error::protocol_error);
        CHECK(ev.initiated_locally);
    }
    // one turn of the scheduler per message would be over 300
    INFO(handlers << " handlers ran from open to close");
    CHECK(handlers < 60);
    // what the peer got: the pong, with its payload (unless the connection
    // was failed right after: a transport may drop a pong still queued), and
    // a close frame answering, or with 1007
    REQUIRE(run_until(
        io, [&] { return peer.peer_closed; }, 3s));
    bool ponged = false;
    std::string close_payload;
    for (const auto& f : client_frames(peer.received)) {
        ponged = ponged || (f.first == 0xA && f.second == "p150");
        if (f.first == 0x8) close_payload = f.second;
    }
    if (tail == "close") {
        CHECK(ponged);
        CHECK(close_payload.substr(0, 2) == "\x0f\xa1"); // 4001 echoed
    } else if (T::sends_close_frame_on_violation) {
        CHECK(close_payload.substr(0, 2) == "\x03\xef"); // 1007
    }
    check_contract(sink);
}

TETHER_CONFORMANCE_CASE("an IPv6 literal is bracketed in Host", "[url]") {
    using T = TestType;
    typename T::io_context io;
    std::optional<typename T::raw_peer> peer;
    try {
        peer.emplace(io, "::1");
    } catch (const std::exception& e) {
        WARN("no IPv6 loopback here: " << e.what());
        return;
    }
    recording_sink sink;
    typename T::transport t(io, quick<T>());
    driver d(t, sink);
    const auto id = d.connect(peer->url(), "v6-token");
    REQUIRE(run_until(io, [&] { return sink.opened(id) || sink.closed(id); }));
    CHECK(sink.opened(id));
    INFO(peer->request);
    CHECK_THAT(peer->request, Contains("\r\nHost: [::1]:" + std::to_string(peer->port()) + "\r\n"));
    check_contract(sink);
}

TETHER_CONFORMANCE_CASE("send errors: unknown ids, connecting and closed connections, invalid "
                        "text",
                        "[send]") {
    using T = TestType;
    typename T::io_context io;
    typename T::raw_peer peer(io);
    recording_sink sink;
    typename T::transport t(io, quick<T>());
    driver d(t, sink);
    CHECK(d.send(42, "x") == tether::error::not_connected);
    const auto id = d.connect(peer.url());
    CHECK(d.send(id, "too early") == tether::error::not_connected); // still connecting
    REQUIRE(run_until(io, [&] { return sink.opened(id); }));
    CHECK(d.send(id, "\xc3\x28") == tether::error::invalid_text_message);
    CHECK(d.send(id, "\xff\xfe not utf-8") == tether::error::invalid_text_message);
    CHECK(d.send(id, "\xff\xfe is fine as binary", message_kind::binary) == std::error_code());
    CHECK(d.send(id, "gr\xc3\xbc\xc3\x9f") == std::error_code());
    // both went out, masked: 2 + 4 + 20 bytes, then 2 + 4 + 6
    REQUIRE(run_until(io, [&] { return peer.received.size() >= 38; }));
    INFO(peer.received.size() << " bytes received");
    CHECK(static_cast<unsigned char>(peer.received[0]) == 0x82);
    CHECK(static_cast<unsigned char>(peer.received[1]) == (0x80 | 20));
    CHECK(static_cast<unsigned char>(peer.received[26]) == 0x81);
    CHECK(static_cast<unsigned char>(peer.received[27]) == (0x80 | 6));
    d.close(id);
    CHECK(d.send(id, "after close") == tether::error::not_connected);
    run_for(io, 50ms);
    CHECK(d.send(id, "after close") == tether::error::not_connected);
    check_contract(sink);
}

TETHER_CONFORMANCE_CASE("a proxy that never answers CONNECT is bounded by the handshake timeout",
                        "[proxy]") {
    using T = TestType;
    typename T::io_context io;
    typename T::raw_peer peer(io);
    peer.answer_handshake = false;
    auto o = quick<T>();
    o.handshake_timeout = 300ms;
    o.proxy = tether::proxy_options::from_url("http://127.0.0.1:" + std::to_string(peer.port()));
    recording_sink sink;
    typename T::transport t(io, o);
    driver d(t, sink);
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

TETHER_CONFORMANCE_CASE("a host name OpenSSL cannot take fails the connection before anything "
                        "is sent",
                        "[tls]") {
    using T = TestType;
    typename T::io_context io;
    recording_sink sink;
    typename T::transport t(io, quick<T>());
    driver d(t, sink);
    // OpenSSL refuses names over 255 bytes; the name never reaches a resolver
    const auto id = d.connect("wss://" + std::string(250, 'a') + ".example.com/", "tok");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const close_event& ev = sink.close_of(id);
    INFO(ev.detail);
    CHECK(ev.error == tether::error::connection_failed);
    CHECK_THAT(ev.detail, Contains("TLS setup for 'aaaa"));
    CHECK_THAT(ev.detail, Contains(T::long_host_name_detail));
    CHECK_FALSE(ev.was_open);
    check_contract(sink);
}

TETHER_CONFORMANCE_CASE("a plain server behind a wss:// URL times out in the TLS handshake",
                        "[tls][timeout]") {
    using T = TestType;
    typename T::io_context io;
    typename T::raw_peer peer(io); // reads the ClientHello as the start of an HTTP request
    peer.answer_handshake = false;
    recording_sink sink;
    auto o = quick<T>();
    o.tls.ca_file = pki().ca_file;
    o.handshake_timeout = 400ms;
    typename T::transport t(io, o);
    driver d(t, sink);
    const auto start = steady::now();
    const auto id = d.connect("wss://127.0.0.1:" + std::to_string(peer.port()) + "/", "tok");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const close_event& ev = sink.close_of(id);
    INFO(ev.detail);
    CHECK(ev.error == tether::error::handshake_timeout);
    CHECK_THAT(ev.detail, Contains("stuck in the TLS handshake"));
    CHECK(sink.records[id].closed_at - start <= 400ms + scheduling_slack);
    CHECK(peer.connections == 1);
    CHECK(peer.request.empty()); // no HTTP request, no token
    check_contract(sink);
}

TETHER_CONFORMANCE_CASE("a fatal TLS alert from the server is named in the detail", "[tls]") {
    using T = TestType;
    typename T::io_context io;
    typename T::raw_peer peer(io);
    // a TLS 1.2 alert record: fatal (2), protocol_version (70)
    peer.greeting = std::string("\x15\x03\x03\x00\x02\x02\x46", 7);
    peer.answer_handshake = false;
    recording_sink sink;
    auto o = quick<T>();
    o.tls.ca_file = pki().ca_file;
    typename T::transport t(io, o);
    driver d(t, sink);
    const auto id = d.connect("wss://127.0.0.1:" + std::to_string(peer.port()) + "/", "tok");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const close_event& ev = sink.close_of(id);
    INFO(ev.detail);
    CHECK_FALSE(sink.opened(id));
    CHECK(ev.error == tether::error::connection_failed);
    CHECK_THAT(ev.detail, Contains("TLS handshake with 127.0.0.1:" + std::to_string(peer.port())));
    CHECK_THAT(ev.detail, Contains("received fatal alert 'protocol version'"));
    check_contract(sink);
}

TETHER_CONFORMANCE_CASE("refused handshakes carry status, Retry-After and a bounded body",
                        "[refusal]") {
    using T = TestType;
    typename T::io_context io;
    const auto refusal = [](const std::string& status, const std::string& headers,
                            const std::string& body) {
        return "HTTP/1.1 " + status + "\r\n" + headers +
               "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    };
    // an HTTP-date about 30 s ahead
    const auto in_30s =
        std::chrono::system_clock::to_time_t(std::chrono::system_clock::now() + 30s);
    char http_date[64];
    std::tm tm{};
    gmtime_r(&in_30s, &tm);
    std::strftime(http_date, sizeof http_date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    typename T::raw_peer p401(io), p403(io), p429(io), p503(io);
    p401.response = refusal("401 Unauthorized", "Content-Type: application/json\r\n",
                            "{\"error\": \"unauthorized\", \"message\": \"Token expired\"}\n");
    p403.response = refusal("403 Forbidden", "", "token expired; " + std::string(5000, 'x'));
    p429.response = refusal("429 Too Many Requests", "Retry-After: 7\r\n", "");
    p503.response =
        refusal("503 Service Unavailable", "Retry-After: " + std::string(http_date) + "\r\n", "");
    recording_sink sink;
    auto o = quick<T>();
    o.max_body_excerpt = 100;
    typename T::transport t(io, o);
    driver d(t, sink);
    const auto stale = d.connect(p401.url(), "tok");
    const auto forbidden = d.connect(p403.url(), "tok");
    const auto busy = d.connect(p429.url(), "tok");
    const auto down = d.connect(p503.url(), "tok");
    REQUIRE(run_until(io, [&] {
        return sink.closed(stale) && sink.closed(forbidden) && sink.closed(busy) &&
               sink.closed(down);
    }));
    const tether::default_close_policy policy;

    const close_event& e401 = sink.close_of(stale);
    INFO(e401.detail);
    CHECK(e401.http_status == 401);
    CHECK(e401.handshake_refused());
    CHECK_FALSE(e401.was_open);
    CHECK_FALSE(sink.opened(stale));
    CHECK(e401.body_excerpt == "{\"error\": \"unauthorized\", \"message\": \"Token expired\"} ");
    CHECK_FALSE(e401.retry_after);
    CHECK_THAT(e401.detail, Contains("HTTP 401"));
    CHECK(policy.decide(e401).action == tether::close_action::refresh_token_then_reconnect);

    const close_event& e403 = sink.close_of(forbidden);
    CHECK(e403.http_status == 403);
    CHECK(e403.body_excerpt.rfind("token expired; xxx", 0) == 0);
    CHECK(e403.body_excerpt.size() <= 103); // the excerpt marks its cut
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

#ifdef TETHER_TEST_PYTHON
// ---- Python `websockets` as an independent peer ------------------------------------------

using test_support::python_peer;

/// How many HTTP requests `py` saw before this one: asked directly (no
/// proxy), with certificate verification switched off.
template <class T> std::string requests_seen(typename T::io_context& io, const python_peer& py) {
    auto o = quick<T>();
    o.tls.insecure_skip_verify_i_know_what_i_am_doing = true;
    recording_sink sink;
    typename T::transport t(io, o);
    driver d(t, sink);
    const auto id = d.connect(py.url("/requests"));
    REQUIRE(run_until(io, [&] { return sink.message_count(id) == 1 || sink.closed(id); }));
    INFO((sink.closed(id) ? sink.close_of(id).detail : std::string()));
    REQUIRE(sink.message_count(id) == 1);
    d.close(id);
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    check_contract(sink);
    return sink.records[id].messages[0].first;
}

TETHER_CONFORMANCE_CASE("open, text and binary echo, close codes reach the server, over ws:// "
                        "and wss://",
                        "[interop]") {
    using T = TestType;
    for (const bool tls : {false, true}) {
        SECTION(tls ? "wss" : "ws") {
            typename T::io_context io;
            // the server pings every 100 ms and gives up on a pong 300 ms late
            python_peer py(tls ? &pki().good : nullptr, 100ms, 300ms);
            recording_sink sink;
            auto o = quick<T>();
            o.tls.ca_file = pki().ca_file;
            typename T::transport t(io, o);
            driver d(t, sink);
            const auto id = d.connect(py.url("/echo"), {}, {"chat.v1"});
            CHECK_FALSE(sink.opened(id)); // nothing inline
            REQUIRE(run_until(io, [&] { return sink.opened(id) || sink.closed(id); }));
            if (sink.closed(id)) FAIL(sink.close_of(id).detail);
            CHECK(sink.records[id].info.subprotocol == "chat.v1");
            const std::string binary("\x00\x01\xfe\xff", 4);
            const std::string large(70000, 'a'); // a 64-bit length, masked by us
            CHECK(d.send(id, "h\xc3\xa9llo") == std::error_code());
            CHECK(d.send(id, binary, message_kind::binary) == std::error_code());
            CHECK(d.send(id, large) == std::error_code());
            REQUIRE(run_until(io, [&] { return sink.message_count(id) == 3 || sink.closed(id); }));
            const auto& m = sink.records[id].messages;
            REQUIRE(m.size() == 3);
            CHECK(m[0] == std::make_pair(std::string("h\xc3\xa9llo"), message_kind::text));
            CHECK(m[1] == std::make_pair(binary, message_kind::binary));
            CHECK(m[2] == std::make_pair(large, message_kind::text));
            // the server's pings are answered: it keeps the connection
            run_for(io, 500ms);
            CHECK_FALSE(sink.closed(id));
            d.close(id, 4000, "done");
            d.close(id, 4000, "again"); // idempotent
            REQUIRE(run_until(io, [&] { return sink.closed(id); }));
            const close_event& ev = sink.close_of(id);
            INFO(ev.detail);
            CHECK(ev.code == 4000);
            CHECK(ev.reason == "done");
            CHECK(ev.initiated_locally);
            CHECK(ev.was_open);
            CHECK_FALSE(ev.error);
            CHECK(t.active_connections() == 0);
            const auto line = py.proc->read_line(5s);
            REQUIRE(line);
            CHECK(*line == "closed 4000 done");
            check_contract(sink);
        }
    }
}

TETHER_CONFORMANCE_CASE("a server-initiated close keeps its code and reason", "[interop]") {
    using T = TestType;
    typename T::io_context io;
    python_peer py;
    recording_sink sink;
    typename T::transport t(io, quick<T>());
    driver d(t, sink);
    for (const int code : {4001, 1012}) {
        INFO(code);
        const auto id = d.connect(py.url("/close/" + std::to_string(code)));
        REQUIRE(run_until(io, [&] { return sink.closed(id); }));
        const close_event& ev = sink.close_of(id);
        INFO(ev.detail);
        CHECK(sink.opened(id));
        CHECK(ev.code == code);
        CHECK(ev.reason == "server says bye");
        CHECK_FALSE(ev.initiated_locally);
        CHECK(ev.was_open);
        CHECK_FALSE(ev.error);
        CHECK(t.active_connections() == 0);
        if (code == 1012)
            CHECK(tether::default_close_policy().decide(ev).action ==
                  tether::close_action::reconnect);
    }
    // in the middle of a session, after messages
    const auto id = d.connect(py.url("/echo"), "tok");
    REQUIRE(run_until(io, [&] { return sink.opened(id); }));
    d.send(id, "big 60000");
    REQUIRE(run_until(io, [&] { return sink.message_count(id) == 1; }));
    CHECK(sink.records[id].messages[0].first.size() == 60000);
    d.send(id, "expire");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    CHECK(sink.close_of(id).code == 4001);
    CHECK(sink.close_of(id).reason == "Token expired");
    CHECK_FALSE(sink.close_of(id).initiated_locally);
    CHECK_FALSE(sink.close_of(id).error);
    check_contract(sink);
}

TETHER_CONFORMANCE_CASE("a refusal from Python websockets carries status and Retry-After; the "
                        "token it checks decides",
                        "[interop][refusal]") {
    using T = TestType;
    typename T::io_context io;
    python_peer py;
    recording_sink sink;
    auto o = quick<T>();
    o.max_body_excerpt = 100;
    typename T::transport t(io, o);
    driver d(t, sink);
    // a wrong token is refused by the server that checks it; the right one opens
    const auto wrong = d.connect(py.url("/auth"), "old-token");
    const auto right = d.connect(py.url("/auth"), "py-token");
    // websockets writes the status and headers, then the body, in two writes
    const auto forbidden = d.connect(py.url("/refuse/403"), "tok");
    REQUIRE(run_until(
        io, [&] { return sink.closed(wrong) && sink.opened(right) && sink.closed(forbidden); }));
    const close_event& ev = sink.close_of(wrong);
    INFO(ev.detail);
    CHECK(ev.http_status == 401);
    CHECK(ev.handshake_refused());
    CHECK_FALSE(ev.was_open);
    CHECK(ev.retry_after == std::optional<std::chrono::milliseconds>(3000ms));
    CHECK_THAT(ev.detail, Contains("HTTP 401"));
    CHECK(tether::default_close_policy().decide(ev).action ==
          tether::close_action::refresh_token_then_reconnect);
    const close_event& e403 = sink.close_of(forbidden);
    CHECK(e403.http_status == 403);
    INFO("body excerpt: " << e403.body_excerpt);
    if (T::keeps_refusal_body_written_after_headers) {
        CHECK(e403.body_excerpt.rfind("token expired; xxx", 0) == 0);
        CHECK(e403.body_excerpt.size() <= 103);
    } else {
        // websocketpp stops reading at the end of the headers: only body
        // bytes that arrived with them are kept (whether any did is timing)
        CHECK(std::string("token expired; ").rfind(e403.body_excerpt.substr(0, 15), 0) == 0);
    }
    check_contract(sink);
}

TETHER_CONFORMANCE_CASE("token placements, headers, user agent and subprotocols reach the server",
                        "[interop][token]") {
    using T = TestType;
    typename T::io_context io;
    python_peer py;
    const auto headers_seen = [&](const typename T::options& o, const std::string& token,
                                  const std::string& path = "/headers/x",
                                  std::vector<std::string> protocols = {}) {
        recording_sink sink;
        typename T::transport t(io, o);
        driver d(t, sink);
        const auto id = d.connect(py.url(path), token, std::move(protocols), {{"X-Request", "r1"}});
        REQUIRE(run_until(io, [&] { return sink.message_count(id) == 1 || sink.closed(id); }));
        INFO((sink.closed(id) ? sink.close_of(id).detail : std::string()));
        REQUIRE(sink.message_count(id) == 1);
        d.close(id);
        REQUIRE(run_until(io, [&] { return sink.closed(id); }));
        check_contract(sink);
        return sink.records[id].messages[0].first;
    };
    SECTION("Authorization: Bearer (default), headers, user agent, subprotocols") {
        auto o = quick<T>();
        o.headers = {{"X-Tenant", "t1"}};
        o.user_agent = "tether-test/1";
        const auto seen = headers_seen(o, "abc.def", "/headers/x", {"chat.v1", "chat.v2"});
        INFO(seen);
        CHECK_THAT(seen, Contains("\"authorization\": \"Bearer abc.def\""));
        CHECK_THAT(seen, Contains("\"x-tenant\": \"t1\""));
        CHECK_THAT(seen, Contains("\"x-request\": \"r1\""));
        CHECK_THAT(seen, Contains("\"user-agent\": \"tether-test/1\""));
        CHECK_THAT(seen, Contains("\"sec-websocket-protocol\": \"chat.v1, chat.v2\""));
        CHECK_THAT(seen, Contains("\"path\": \"/headers/x\""));
        CHECK_THAT(seen, !Contains("permessage-deflate")); // never offered by default
    }
    SECTION("no token, no Authorization header") {
        const auto seen = headers_seen(quick<T>(), "");
        INFO(seen);
        CHECK_THAT(seen, !Contains("authorization"));
    }
    SECTION("query parameter, percent-encoded") {
        auto o = quick<T>();
        o.token_in = tether::token_placement::query_parameter;
        auto seen = headers_seen(o, "a/b c");
        INFO(seen);
        CHECK_THAT(seen, Contains("\"path\": \"/headers/x?access_token=a%2Fb%20c\""));
        CHECK_THAT(seen, !Contains("authorization"));
        // a named parameter, appended to a query the URL has
        o.token_query_parameter = "auth";
        seen = headers_seen(o, "a+b/c=d e&f", "/headers/x?topic=x");
        CHECK_THAT(seen, Contains("\"path\": \"/headers/x?topic=x&auth=a%2Bb%2Fc%3Dd%20e%26f\""));
        CHECK_THAT(seen, !Contains("authorization"));
    }
    SECTION("subprotocol entry") {
        auto o = quick<T>();
        o.token_in = tether::token_placement::subprotocol;
        o.token_subprotocol_prefix = "bearer.token.";
        const std::string token = "eyJhbGciOi.payload.sig";
        const auto seen = headers_seen(o, token, "/headers/x", {"chat.v1"});
        INFO(seen);
        CHECK_THAT(seen,
                   Contains("\"sec-websocket-protocol\": \"chat.v1, bearer.token." + token + "\""));
        CHECK_THAT(seen, !Contains("authorization"));
    }
}

TETHER_CONFORMANCE_CASE("an oversized incoming message closes with 1009 and message_too_large",
                        "[interop][limits]") {
    using T = TestType;
    typename T::io_context io;
    python_peer py;
    recording_sink sink;
    auto o = quick<T>();
    o.max_message_size = 1024;
    typename T::transport t(io, o);
    driver d(t, sink);
    const auto id = d.connect(py.url("/echo"));
    REQUIRE(run_until(io, [&] { return sink.opened(id); }));
    d.send(id, "big 1000");
    REQUIRE(run_until(io, [&] { return sink.message_count(id) == 1; }));
    d.send(id, "big 4096");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const close_event& ev = sink.close_of(id);
    INFO(ev.detail);
    CHECK(ev.code == tether::close_code::message_too_big);
    CHECK(ev.error == tether::error::message_too_large);
    CHECK(ev.initiated_locally);
    CHECK(sink.message_count(id) == 1);
    const auto line = py.proc->read_line(5s);
    REQUIRE(line);
    INFO(*line);
    if (T::sends_close_frame_on_violation)
        CHECK(line->rfind("closed 1009", 0) == 0); // the server saw our 1009
    else
        CHECK(line->rfind("closed 1006", 0) == 0); // dropped: no close frame
    check_contract(sink);
}

TETHER_CONFORMANCE_CASE("ping/pong: an answering peer stays open; echoes count as activity for "
                        "the idle timeout",
                        "[interop][liveness]") {
    using T = TestType;
    typename T::io_context io;
    python_peer py;
    recording_sink sink;
    SECTION("pings answered") {
        auto o = quick<T>();
        o.ping_interval = 150ms;
        o.pong_timeout = 100ms;
        typename T::transport t(io, o);
        driver d(t, sink);
        const auto id = d.connect(py.url("/echo"));
        REQUIRE(run_until(io, [&] { return sink.opened(id); }));
        run_for(io, 600ms); // several ping rounds, each answered
        CHECK_FALSE(sink.closed(id));
        d.send(id, "pings?");
        REQUIRE(run_until(io, [&] { return sink.message_count(id) == 1 || sink.closed(id); }));
        REQUIRE(sink.message_count(id) == 1);
        INFO("the server received " << sink.records[id].messages[0].first << " pings");
        CHECK(std::stoi(sink.records[id].messages[0].first) >= 3);
        d.close(id);
        REQUIRE(run_until(io, [&] { return sink.closed(id); }));
        CHECK_FALSE(sink.close_of(id).error);
    }
    SECTION("idle timeout") {
        auto o = quick<T>();
        o.idle_timeout = 200ms;
        typename T::transport t(io, o);
        driver d(t, sink);
        const auto id = d.connect(py.url("/echo"));
        REQUIRE(run_until(io, [&] { return sink.opened(id); }));
        const auto busy_until = steady::now() + 400ms;
        while (steady::now() < busy_until && !sink.closed(id)) {
            d.send(id, "ping-me");
            run_for(io, 50ms);
        }
        CHECK_FALSE(sink.closed(id));
        REQUIRE(run_until(
            io, [&] { return sink.closed(id); }, 3s));
        const auto took = sink.records[id].closed_at - sink.records[id].last_message_at;
        CHECK(sink.close_of(id).error == tether::error::idle_timeout);
        INFO("detected after " << ms(took) << " ms");
        CHECK(took >= 200ms);
        CHECK(took <= 250ms + scheduling_slack);
    }
    check_contract(sink);
}

TETHER_CONFORMANCE_CASE("wss:// with a certificate from the configured CA, by IP and by name",
                        "[interop][tls]") {
    using T = TestType;
    typename T::io_context io;
    python_peer py(&pki().good);
    for (const bool pem : {false, true}) {
        recording_sink sink;
        auto o = quick<T>();
        if (pem)
            o.tls.ca_pem = pki().ca_pem;
        else
            o.tls.ca_file = pki().ca_file;
        typename T::transport t(io, o);
        driver d(t, sink);
        for (const char* host : {"127.0.0.1", "localhost"}) {
            INFO(host << (pem ? ", ca_pem" : ", ca_file"));
            const auto id = d.connect(py.url("/headers/tls", host), "tls-token");
            REQUIRE(run_until(io, [&] { return sink.message_count(id) == 1 || sink.closed(id); }));
            if (sink.closed(id)) FAIL(sink.close_of(id).detail);
            CHECK_THAT(sink.records[id].messages[0].first,
                       Contains("\"authorization\": \"Bearer tls-token\""));
            d.send(id, "over tls");
            REQUIRE(run_until(io, [&] { return sink.message_count(id) == 2; }));
            CHECK(sink.records[id].messages[1].first == "over tls");
            d.close(id);
            REQUIRE(run_until(io, [&] { return sink.closed(id); }));
            CHECK(sink.close_of(id).code == 1000);
            CHECK_FALSE(sink.close_of(id).error);
        }
        check_contract(sink);
    }
}

TETHER_CONFORMANCE_CASE("wss:// with a wrong host name, an expired, a self-signed certificate or "
                        "an unknown CA fails verification; no request reaches the server",
                        "[interop][tls]") {
    using T = TestType;
    typename T::io_context io;
    const tether::default_close_policy policy;
    auto with_ca = quick<T>();
    with_ca.tls.ca_file = pki().ca_file;
    const auto refused = [&](const python_peer& py, const typename T::options& o,
                             const std::string& host) {
        recording_sink sink;
        typename T::transport t(io, o);
        driver d(t, sink);
        const auto id = d.connect(py.url("/echo", host), "tls-token");
        REQUIRE(run_until(io, [&] { return sink.closed(id); }));
        CHECK_FALSE(sink.opened(id));
        check_contract(sink);
        return sink.close_of(id);
    };
    SECTION("certificate for another name") {
        python_peer py(&pki().wrong_name);
        for (const char* host : {"127.0.0.1", "localhost"}) {
            INFO(host);
            const auto ev = refused(py, with_ca, host);
            INFO(ev.detail);
            CHECK(ev.error == tether::error::tls_verification_failed);
            CHECK_THAT(ev.detail, Contains(std::string("does not match host '") + host + "'"));
            CHECK(policy.decide(ev).action == tether::close_action::stop);
        }
        CHECK(requests_seen<T>(io, py) == "0"); // the opt-out accepts it
    }
    SECTION("expired") {
        python_peer py(&pki().expired);
        const auto ev = refused(py, with_ca, "localhost");
        INFO(ev.detail);
        CHECK(ev.error == tether::error::tls_verification_failed);
        CHECK_THAT(ev.detail, Contains("expired"));
        CHECK(policy.decide(ev).action == tether::close_action::stop);
        CHECK(requests_seen<T>(io, py) == "0");
    }
    SECTION("self-signed") {
        python_peer py(&pki().self_signed);
        const auto ev = refused(py, with_ca, "127.0.0.1");
        INFO(ev.detail);
        CHECK(ev.error == tether::error::tls_verification_failed);
        CHECK_THAT(ev.detail, Contains("self-signed") || Contains("self signed"));
        CHECK(requests_seen<T>(io, py) == "0");
    }
    SECTION("CA not trusted (system store only)") {
        python_peer py(&pki().good);
        const auto ev = refused(py, quick<T>(), "localhost");
        INFO(ev.detail);
        CHECK(ev.error == tether::error::tls_verification_failed);
        CHECK_THAT(ev.detail, Contains("certificate verification failed at depth"));
        CHECK_THAT(ev.detail, Contains("local issuer"));
        CHECK(policy.decide(ev).action == tether::close_action::stop);
        CHECK(requests_seen<T>(io, py) == "0");
    }
}

TETHER_CONFORMANCE_CASE("destroying the transport with connections in every state calls no sink",
                        "[interop][lifetime]") {
    using T = TestType;
    typename T::io_context io;
    python_peer py;
    typename T::raw_peer hanging(io);
    hanging.answer_handshake = false;
    recording_sink sink;
    connection_id open_id = 0;
    {
        typename T::transport t(io, quick<T>());
        driver d(t, sink);
        open_id = d.connect(py.url("/echo"));
        const auto echo2 = d.connect(py.url("/echo"));
        REQUIRE(run_until(io, [&] { return sink.opened(open_id) && sink.opened(echo2); }));
        d.connect(hanging.url());                    // connecting
        d.connect("ws://api.example.com/", "token"); // refusal queued, not delivered
        d.send(open_id, "in flight");
        d.send(echo2, "in flight too");
        d.close(echo2); // closing
    }
    const auto calls = sink.calls;
    run_for(io, 500ms); // queued handlers run now; the echo would arrive in this time
    CHECK(sink.calls == calls);
    CHECK(sink.message_count(open_id) == 0);
    CHECK_FALSE(sink.closed(open_id));
    check_contract(sink);
}

TETHER_CONFORMANCE_CASE("a moved transport keeps its connections", "[interop][lifetime]") {
    using T = TestType;
    typename T::io_context io;
    python_peer py;
    recording_sink sink;
    typename T::transport first(io, quick<T>());
    driver d1(first, sink);
    const auto id = d1.connect(py.url("/echo"));
    typename T::transport t(std::move(first));
    driver d(t, sink);
    REQUIRE(run_until(io, [&] { return sink.opened(id) || sink.closed(id); }));
    REQUIRE(sink.opened(id));
    CHECK(d.send(id, "moved") == std::error_code());
    REQUIRE(run_until(io, [&] { return sink.message_count(id) == 1; }));
    d.close(id);
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    CHECK_FALSE(sink.close_of(id).error);
    check_contract(sink);
}

TETHER_CONFORMANCE_CASE("transports on one io_context keep their own TLS settings, also "
                        "interleaved",
                        "[interop][tls]") {
    // One trusts the test CA, the other only the system store, and their
    // connections are built alternately.
    using T = TestType;
    typename T::io_context io;
    python_peer py(&pki().good);
    auto trusting_opts = quick<T>();
    trusting_opts.tls.ca_file = pki().ca_file;
    recording_sink trusting_sink, default_sink;
    typename T::transport trusting(io, trusting_opts);
    typename T::transport system_only(io, quick<T>());
    driver trusting_d(trusting, trusting_sink);
    driver default_d(system_only, default_sink);
    std::vector<connection_id> good, refused;
    for (int i = 0; i < 3; ++i) {
        good.push_back(trusting_d.connect(py.url("/echo"), "tls-token"));
        refused.push_back(default_d.connect(py.url("/echo"), "tls-token"));
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
    // tokens reached the server only over the verified connections
    const auto count = trusting_d.connect(py.url("/requests"));
    REQUIRE(run_until(io, [&] { return trusting_sink.message_count(count) == 1; }));
    CHECK(trusting_sink.records[count].messages[0].first == "3");
    good.push_back(count);
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

TETHER_CONFORMANCE_CASE("the minimum TLS version is enforced", "[interop][tls]") {
    using T = TestType;
    typename T::io_context io;
    python_peer py(&pki().good, 0ms, 20s, /*tls12_max=*/true);
    recording_sink sink, sink12;
    auto o = quick<T>();
    o.tls.ca_file = pki().ca_file;
    typename T::transport tls12(io, o);
    driver d12(tls12, sink12);
    o.tls.min_version = tether::tls_version::tls1_3;
    typename T::transport tls13(io, o);
    driver d13(tls13, sink);
    const auto id = d13.connect(py.url("/echo"), "tok");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const close_event& ev = sink.close_of(id);
    INFO(ev.detail);
    CHECK_FALSE(sink.opened(id));
    CHECK(ev.error == tether::error::connection_failed);
    CHECK_THAT(ev.detail, Contains("TLS handshake with 127.0.0.1:" + std::to_string(py.port)));
    // TLS 1.2 is fine by default; the refused attempt sent no request
    const auto ok = d12.connect(py.url("/requests"), "tok");
    REQUIRE(run_until(io, [&] { return sink12.message_count(ok) == 1 || sink12.closed(ok); }));
    INFO((sink12.closed(ok) ? sink12.close_of(ok).detail : std::string()));
    REQUIRE(sink12.message_count(ok) == 1);
    CHECK(sink12.records[ok].messages[0].first == "0");
    d12.close(ok);
    REQUIRE(run_until(io, [&] { return sink12.closed(ok); }));
    check_contract(sink);
    check_contract(sink12);
}

// ---- through tinyproxy (HTTP CONNECT) ----------------------------------------------------

TETHER_CONFORMANCE_CASE("ws:// through tinyproxy with Basic auth; token and messages reach the "
                        "origin",
                        "[interop][proxy]") {
    using T = TestType;
    typename T::io_context io;
    python_peer py;
    test_proxy::tinyproxy proxy({{py.port}, "proxyuser", "proxy-pass-1"});
    auto o = quick<T>();
    o.proxy = proxy_at(proxy, "proxyuser", "proxy-pass-1");
    recording_sink sink;
    typename T::transport t(io, o);
    driver d(t, sink);
    const auto id = d.connect(py.url("/headers/through"), "tunnel-token");
    REQUIRE(run_until(io, [&] { return sink.message_count(id) == 1 || sink.closed(id); }));
    INFO((sink.closed(id) ? sink.close_of(id).detail : std::string()));
    REQUIRE(sink.message_count(id) == 1);
    const auto seen = sink.records[id].messages[0].first;
    CHECK_THAT(seen, Contains("\"authorization\": \"Bearer tunnel-token\""));
    CHECK_THAT(seen, Contains("\"path\": \"/headers/through\""));
    CHECK_THAT(seen, !Contains("proxy-authorization"));
    CHECK(d.send(id, "via proxy") == std::error_code());
    REQUIRE(run_until(io, [&] { return sink.message_count(id) == 2; }));
    CHECK(sink.records[id].messages[1].first == "via proxy");
    d.close(id);
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    CHECK_FALSE(sink.close_of(id).error);
    CHECK(proxy.connect_requests() == 1);
    check_contract(sink);
}

TETHER_CONFORMANCE_CASE("wss:// through tinyproxy verifies the origin's certificate by the "
                        "origin's name",
                        "[interop][proxy][tls]") {
    using T = TestType;
    for (const bool good : {true, false}) {
        INFO((good ? "good certificate" : "certificate for another name"));
        typename T::io_context io;
        python_peer py(good ? &pki().good : &pki().wrong_name);
        test_proxy::tinyproxy proxy({{py.port}, "u", "p"});
        auto o = quick<T>();
        o.proxy = proxy_at(proxy, "u", "p");
        o.tls.ca_file = pki().ca_file;
        recording_sink sink;
        typename T::transport t(io, o);
        driver d(t, sink);
        // the origin is "localhost"; the proxy is 127.0.0.1
        const auto id = d.connect(py.url("/headers/tls", "localhost"), "tls-token");
        REQUIRE(run_until(io, [&] { return sink.message_count(id) == 1 || sink.closed(id); }));
        CHECK(proxy.connect_requests() == 1);
        if (good) {
            INFO((sink.closed(id) ? sink.close_of(id).detail : std::string()));
            REQUIRE(sink.message_count(id) == 1);
            CHECK_THAT(sink.records[id].messages[0].first,
                       Contains("\"authorization\": \"Bearer tls-token\""));
            d.close(id);
            REQUIRE(run_until(io, [&] { return sink.closed(id); }));
        } else {
            REQUIRE(sink.closed(id));
            CHECK_FALSE(sink.opened(id));
            CHECK(sink.close_of(id).error == tether::error::tls_verification_failed);
            CHECK_THAT(sink.close_of(id).detail, Contains("does not match host 'localhost'"));
            CHECK(requests_seen<T>(io, py) == "0"); // the token never reached the origin
        }
        check_contract(sink);
    }
}

TETHER_CONFORMANCE_CASE("407 without proxy credentials is proxy_auth_required and a stop",
                        "[interop][proxy]") {
    using T = TestType;
    typename T::io_context io;
    python_peer py;
    test_proxy::tinyproxy proxy({{py.port}, "proxyuser", "right-pass"});
    auto o = quick<T>();
    o.proxy = proxy_at(proxy);
    recording_sink sink;
    typename T::transport t(io, o);
    driver d(t, sink);
    const auto id = d.connect(py.url("/echo"), "tok");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const close_event& ev = sink.close_of(id);
    INFO(ev.detail);
    CHECK(ev.error == tether::error::proxy_auth_required);
    CHECK(ev.proxy_status == 407);
    CHECK(ev.http_status == 0);
    CHECK_THAT(ev.detail, Contains("no proxy credentials configured"));
    CHECK(tether::default_close_policy().decide(ev).action == tether::close_action::stop);
    CHECK(requests_seen<T>(io, py) == "0");
    check_contract(sink);
}

TETHER_CONFORMANCE_CASE("403 from the proxy (port not allowed) is proxy_denied and a stop",
                        "[interop][proxy]") {
    using T = TestType;
    typename T::io_context io;
    python_peer py;
    test_proxy::tinyproxy proxy({{1}, "", ""}); // CONNECT only to port 1
    auto o = quick<T>();
    o.proxy = proxy_at(proxy);
    recording_sink sink;
    typename T::transport t(io, o);
    driver d(t, sink);
    const auto id = d.connect(py.url("/echo"), "tok");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const close_event& ev = sink.close_of(id);
    INFO(ev.detail);
    CHECK(ev.error == tether::error::proxy_denied);
    CHECK(ev.proxy_status == 403);
    CHECK(ev.http_status == 0);
    CHECK_FALSE(ev.handshake_refused());
    CHECK_THAT(ev.detail, Contains("HTTP proxy 127.0.0.1:" + std::to_string(proxy.port())));
    const auto decision = tether::default_close_policy().decide(ev);
    CHECK(decision.action == tether::close_action::stop);
    CHECK(decision.stop_reason == tether::error::proxy_denied);
    CHECK(requests_seen<T>(io, py) == "0");
    check_contract(sink);
}

TETHER_CONFORMANCE_CASE("an origin the proxy cannot reach is proxy_error and a network retry",
                        "[interop][proxy]") {
    using T = TestType;
    typename T::io_context io;
    const auto dead = test_proxy::unused_port();
    test_proxy::tinyproxy proxy({{dead}, "", ""});
    auto o = quick<T>();
    o.proxy = proxy_at(proxy);
    recording_sink sink;
    typename T::transport t(io, o);
    driver d(t, sink);
    const auto id = d.connect("ws://127.0.0.1:" + std::to_string(dead) + "/");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const close_event& ev = sink.close_of(id);
    INFO(ev.detail);
    CHECK(ev.error == tether::error::proxy_error);
    CHECK(ev.proxy_status >= 500);
    const auto decision = tether::default_close_policy().decide(ev);
    CHECK(decision.action == tether::close_action::reconnect);
    CHECK(decision.cls == tether::failure_class::network);
    check_contract(sink);
}

TETHER_CONFORMANCE_CASE("no_proxy sends the origin direct; the proxy sees no request",
                        "[interop][proxy]") {
    using T = TestType;
    typename T::io_context io;
    python_peer py;
    test_proxy::tinyproxy proxy({{py.port}, "", ""});
    auto o = quick<T>();
    o.proxy = proxy_at(proxy, "", "", "example.com, 127.0.0.1");
    recording_sink sink;
    typename T::transport t(io, o);
    driver d(t, sink);
    const auto id = d.connect(py.url("/echo"), "tok");
    REQUIRE(run_until(io, [&] { return sink.opened(id) || sink.closed(id); }));
    REQUIRE(sink.opened(id));
    d.close(id);
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    CHECK(proxy.connect_requests() == 0);
    check_contract(sink);
}

#endif // TETHER_TEST_PYTHON

} // namespace conformance

#endif // TETHER_TESTS_TRANSPORT_CONFORMANCE_HPP
