// beast_transport over real sockets on 127.0.0.1: the transport conformance
// list (conformance.hpp, shared with the websocketpp transport), then what
// only this transport has: permessage-deflate, the peer's close frame
// reported at once, one deadline timer per io_context, buffered-message
// handling, and (Boost mode) the client on it. Also compiled with
// TETHER_USE_BOOST_ASIO (tether_beast_boost_tests). Every wait is bounded; no
// assertion depends on a sleep.
#include <tether/transport/beast_transport.hpp>
#if defined(TETHER_USE_BOOST_ASIO)
#include <tether/basic_reconnecting_client.hpp>
#include <tether/token_policy/callback_token.hpp>
#endif
#include <tether/transport/concept.hpp>

#include "raw_peer.hpp" // basic_raw_peer, server_frame(), close_frame()
#include "support.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <boost/system/error_code.hpp>

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

static_assert(tether::is_transport_v<tether::beast_transport>,
              "beast_transport must meet the Transport requirements");

namespace {

/// Boost.Asio for the raw scripted peer (see raw_peer.hpp).
struct boost_asio_flavour {
    using io_context = boost::asio::io_context;
    using tcp = boost::asio::ip::tcp;
    using error_code = boost::system::error_code;
    using streambuf = boost::asio::streambuf;
    static auto make_address(const std::string& a) { return boost::asio::ip::make_address(a); }
    template <class T> static auto buffer(T& data) { return boost::asio::buffer(data); }
};

/// The conformance list's view of this transport.
struct beast_conformance {
    using transport = tether::beast_transport;
    using options = tether::beast_transport_options;
    using io_context = boost::asio::io_context;
    using raw_peer = test_support::basic_raw_peer<boost_asio_flavour>;

    /// The code reported, and sent, for an invalid close frame.
    static std::uint16_t invalid_frame_close_code(const std::string&) {
        return tether::close_code::protocol_error;
    }
    /// Beast's words for it.
    static const char* invalid_frame_detail(const std::string& sample) {
        if (sample == "reason not UTF-8") return "close frame payload was not valid utf8";
        if (sample == "one-byte payload") return "close frame payload size was invalid";
        if (sample == "unmasked frame with reserved bits") return "contained illegal reserved bits";
        return "close frame reason code was invalid";
    }
    /// Beast answers a violation or an oversized message with a close frame.
    static constexpr bool sends_close_frame_on_violation = true;
    /// Beast reads a refusal's body (up to its parser's limit).
    static constexpr bool keeps_refusal_body_written_after_headers = true;
    /// The TLS setup failure for a host name over 255 bytes (SNI and X509_VERIFY_PARAM).
    static constexpr const char* long_host_name_detail = "OpenSSL refused it as the host name";
};

} // namespace

#define TETHER_CONFORMANCE_TRAITS beast_conformance
#define TETHER_CONFORMANCE_TAG "[beast]"
#include "conformance.hpp"

using namespace std::chrono_literals;
using Catch::Contains;
using test_support::check_contract;
using test_support::driver;
using test_support::ms;
using test_support::recording_sink;
using test_support::run_for;
using test_support::run_until;
using test_support::steady;
using tether::beast_transport;
using tether::beast_transport_options;
using tether::close_event;
using tether::connection_id;
using tether::message_kind;
namespace net = boost::asio;

namespace {

using boost_raw_peer = beast_conformance::raw_peer;

beast_transport_options quick_options() {
    return test_support::quick_options<beast_transport_options>();
}

} // namespace

// ---- Beast only -----------------------------------------------------------------------------

TEST_CASE("beast: invalid permessage-deflate settings throw at construction", "[beast][options]") {
    net::io_context io;
    auto o = quick_options();
    o.deflate_window_bits = 7;
    CHECK_THROWS_AS(beast_transport(io, o), std::system_error);
    o = quick_options();
    o.deflate_mem_level = 0;
    CHECK_THROWS_AS(beast_transport(io, o), std::system_error);
}

TEST_CASE("beast: the peer's close frame is reported at once, even if the peer never closes TCP",
          "[beast][close]") {
    for (const bool after_teardown : {false, true}) {
        INFO("report_close_after_teardown = " << after_teardown);
        net::io_context io;
        boost_raw_peer peer(io); // sends the close frame, then neither answers nor closes
        peer.after_handshake = test_support::close_frame(4001, "Token expired");
        recording_sink sink;
        auto o = quick_options();
        o.close_timeout = 2s;
        o.report_close_after_teardown = after_teardown;
        beast_transport t(io, o);
        driver d{t, sink};
        const auto id = d.connect(peer.url());
        REQUIRE(run_until(io, [&] { return sink.opened(id); }));
        const auto opened_at = steady::now();
        REQUIRE(run_until(io, [&] { return sink.closed(id); }));
        const close_event& ev = sink.close_of(id);
        INFO(ev.detail);
        CHECK(ev.code == 4001);
        CHECK(ev.reason == "Token expired");
        CHECK_FALSE(ev.initiated_locally);
        CHECK_FALSE(ev.error);
        const auto took = sink.records[id].closed_at - opened_at;
        INFO("reported " << ms(took) << " ms after open");
        CHECK(took < 200ms); // not after close_timeout, not after a FIN that never comes
        // our answer went out (masked close frame echoing 4001), then the socket was closed
        REQUIRE(run_until(
            io, [&] { return peer.peer_closed; }, 3s));
        REQUIRE(peer.received.size() >= 8);
        CHECK(static_cast<unsigned char>(peer.received[0]) == 0x88);
        check_contract(sink);
    }
}

#ifdef TETHER_TEST_PYTHON
using test_support::python_peer;

TEST_CASE("beast interop: permessage-deflate when asked for, and messages still echo",
          "[beast][interop][deflate]") {
    net::io_context io;
    python_peer py;
    auto o = quick_options();
    o.permessage_deflate = true;
    {
        recording_sink sink;
        beast_transport t(io, o);
        driver d{t, sink};
        const auto id = d.connect(py.url("/headers/x"));
        REQUIRE(run_until(io, [&] { return sink.message_count(id) == 1 || sink.closed(id); }));
        REQUIRE(sink.message_count(id) == 1);
        const auto seen = sink.records[id].messages[0].first;
        INFO(seen);
        CHECK_THAT(seen, Contains("permessage-deflate"));
        d.close(id);
        REQUIRE(run_until(io, [&] { return sink.closed(id); }));
        check_contract(sink);
    }
    beast_transport t(io, o);
    recording_sink echo_sink;
    driver d{t, echo_sink};
    const auto id = d.connect(py.url("/echo"));
    REQUIRE(run_until(io, [&] { return echo_sink.opened(id); }));
    const std::string big(100000, 'z');
    CHECK(d.send(id, big) == std::error_code());
    REQUIRE(
        run_until(io, [&] { return echo_sink.message_count(id) == 1 || echo_sink.closed(id); }));
    if (echo_sink.closed(id)) FAIL(echo_sink.close_of(id).detail);
    CHECK(echo_sink.records[id].messages[0].first == big);
    check_contract(echo_sink);
}

TEST_CASE("beast interop: with permessage-deflate the first message after open is echoed",
          "[beast][interop][deflate]") {
    net::io_context io;
    python_peer py;
    recording_sink sink;
    auto o = quick_options();
    o.permessage_deflate = true;
    beast_transport t(io, o);
    driver d{t, sink};
    const auto id = d.connect(py.url("/echo"));
    REQUIRE(run_until(io, [&] { return sink.opened(id); }));
    const std::string big(100000, 'z');
    d.send(id, big);
    d.send(id, "second");
    REQUIRE(run_until(
        io, [&] { return sink.message_count(id) == 2 || sink.closed(id); }, 2s));
    CHECK(sink.records[id].messages[0].first == big);
}

TEST_CASE("beast: connections on one io_context share one deadline timer, each fires at its own "
          "time",
          "[beast][failure]") {
    // Every connection's deadlines on an io_context sit in one queue behind one
    // timer (whichever transport made them). Four transports on one
    // io_context, a peer that accepts TCP and never answers: the handshake
    // deadlines (set out of order) fire in order, each at its own time, and
    // one withdrawn from the middle of the queue never fires.
    net::io_context io;
    net::ip::tcp::acceptor acceptor(io, {net::ip::make_address("127.0.0.1"), 0});
    std::vector<std::unique_ptr<net::ip::tcp::socket>> held;
    std::function<void()> accept_next = [&] {
        acceptor.async_accept([&](const boost::system::error_code& ec, net::ip::tcp::socket s) {
            if (ec) return;
            held.push_back(std::make_unique<net::ip::tcp::socket>(std::move(s)));
            accept_next();
        });
    };
    accept_next();
    const std::string url = "ws://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port());

    // far enough apart that a deadline run late (at an earlier-queued one's
    // time) is seen as late
    const std::chrono::milliseconds timeouts[] = {900ms, 200ms, 1500ms, 500ms};
    std::vector<std::unique_ptr<recording_sink>> sinks;
    std::vector<std::unique_ptr<beast_transport>> transports;
    std::vector<connection_id> ids;
    const auto start = steady::now();
    for (const auto timeout : timeouts) {
        auto o = quick_options();
        o.handshake_timeout = timeout;
        sinks.push_back(std::make_unique<recording_sink>());
        transports.push_back(std::make_unique<beast_transport>(io, o));
        driver d{*transports.back(), *sinks.back()};
        ids.push_back(d.connect(url, "tok"));
    }
    // withdraw the 1500 ms one once the others are queued behind it
    net::steady_timer withdraw(io, 100ms);
    withdraw.async_wait([&](const boost::system::error_code&) {
        driver d{*transports[2], *sinks[2]};
        d.close(ids[2]);
    });
    const auto all_closed = [&] {
        for (std::size_t i = 0; i < sinks.size(); ++i)
            if (!sinks[i]->closed(ids[i])) return false;
        return true;
    };
    REQUIRE(run_until(io, all_closed, 5s));

    const close_event& withdrawn = sinks[2]->close_of(ids[2]);
    CHECK(withdrawn.error == tether::error::operation_cancelled);
    CHECK(sinks[2]->records[ids[2]].closed_at - start < 1500ms);
    std::vector<std::pair<steady::time_point, std::size_t>> order;
    for (const std::size_t i : {0u, 1u, 3u}) {
        const close_event& ev = sinks[i]->close_of(ids[i]);
        const auto took = sinks[i]->records[ids[i]].closed_at - start;
        INFO("connection with a " << timeouts[i].count() << " ms timeout closed after " << ms(took)
                                  << " ms");
        CHECK(ev.error == tether::error::handshake_timeout);
        CHECK(took >= timeouts[i]);
        CHECK(took <= timeouts[i] + test_support::scheduling_slack);
        order.emplace_back(sinks[i]->records[ids[i]].closed_at, i);
    }
    std::sort(order.begin(), order.end());
    CHECK(order[0].second == 1); // 200 ms
    CHECK(order[1].second == 3); // 500 ms
    CHECK(order[2].second == 0); // 900 ms
    for (const auto& s : sinks)
        check_contract(*s);
}

// ---- measurements (hidden: run with "[.measure]") ------------------------------------------

TEST_CASE("beast measure: heap per connection with and without permessage-deflate", "[.measure]") {
    net::io_context io;
    python_peer py;
    constexpr int n = 20;
    const auto heap = [] { return static_cast<long long>(mallinfo2().uordblks); };
    for (const bool deflate : {false, true}) {
        auto o = quick_options();
        o.permessage_deflate = deflate;
        recording_sink sink;
        beast_transport t(io, o);
        driver d{t, sink};
        const auto before = heap();
        std::vector<connection_id> ids;
        for (int i = 0; i < n; ++i)
            ids.push_back(d.connect(py.url("/echo")));
        REQUIRE(run_until(io, [&] {
            for (auto id : ids)
                if (!sink.opened(id)) return false;
            return true;
        }));
        // one message each way, so both zlib streams have been used
        for (auto id : ids)
            d.send(id, std::string(2000, 'a'));
        REQUIRE(run_until(io, [&] {
            for (auto id : ids)
                if (sink.message_count(id) != 1) return false;
            return true;
        }));
        const auto per_connection = (heap() - before) / n;
        WARN("beast_transport, permessage-deflate " << (deflate ? "on" : "off") << ": "
                                                    << per_connection
                                                    << " bytes of heap per open connection");
        for (auto id : ids)
            d.close(id);
        REQUIRE(run_until(io, [&] { return t.active_connections() == 0; }));
    }
}

TEST_CASE("beast interop: a burst of buffered messages takes a few handlers, not one each",
          "[beast][interop][perf]") {
    net::io_context io;
    python_peer py;
    recording_sink sink;
    beast_transport t(io, quick_options());
    driver d{t, sink};
    const auto id = d.connect(py.url("/echo"));
    REQUIRE(run_until(io, [&] { return sink.opened(id); }));
    constexpr int n = 100;
    d.send(id, "burst " + std::to_string(n));
    // count the handlers the io_context runs until all n messages are in
    std::size_t handlers = 0;
    const auto deadline = steady::now() + 5s;
    while (sink.message_count(id) < static_cast<std::size_t>(n) && steady::now() < deadline)
        handlers += io.run_one_for(20ms);
    REQUIRE(sink.message_count(id) == static_cast<std::size_t>(n));
    INFO("beast_transport: " << handlers << " handlers for " << n
                             << " messages that arrived in one write");
    CHECK(handlers < 20); // one per message without the synchronous reads
    CHECK(sink.records[id].messages[n - 1].first == "m" + std::to_string(n - 1));
    check_contract(sink);
}

#if defined(TETHER_USE_BOOST_ASIO)
// ---- the client on the Beast transport (Boost mode) -----------------------------------------
//
// In Boost mode tether::net is boost::asio, so basic_reconnecting_client runs on
// the Beast transport's executor. Against the independent Python peer: a token
// the server refuses with 401 is refreshed once and the next handshake opens;
// a message goes through and back; stop() ends the run.

TEST_CASE("beast client (Boost mode): a 401 refreshes the token, the next handshake opens, echo, "
          "stop",
          "[beast][interop][client]") {
    net::io_context io;
    python_peer py;
    int fetches = 0;
    auto fetch = [&fetches] {
        tether::token_result r;
        r.value.value = tether::secret(++fetches == 1 ? "stale-token" : "py-token");
        r.value.fresh = true;
        return r;
    };
    tether::client_options o;
    o.url = py.url("/auth");
    tether::basic_reconnecting_client<beast_transport, tether::callback_token<decltype(fetch)>>
        client(o, beast_transport(io, quick_options()), tether::callback_token(fetch));
    std::vector<close_event> closes;
    std::vector<tether::close_action> actions;
    std::vector<std::string> received;
    int opens = 0;
    bool stopped = false;
    client.on_open([&](const tether::open_event&) {
        ++opens;
        client.send("over beast");
    });
    client.on_message([&](const tether::message_view& m) { received.emplace_back(m.data); });
    client.on_close([&](const close_event& e, const tether::reconnect_decision& d) {
        closes.push_back(e);
        actions.push_back(d.action);
    });
    client.on_stopped([&](const tether::stopped_event&) { stopped = true; });
    client.start();
    REQUIRE(run_until(
        io, [&] { return received.size() == 1; }, 20s));
    CHECK(received[0] == "over beast");
    CHECK(opens == 1);
    CHECK(fetches == 2);
    REQUIRE(closes.size() == 1);
    CHECK(closes[0].http_status == 401);
    CHECK(actions[0] == tether::close_action::refresh_token_then_reconnect);
    client.stop();
    REQUIRE(run_until(
        io, [&] { return stopped; }, 10s));
    CHECK(client.state() == tether::client_state::stopped);
    const auto line = py.proc->read_line(5s);
    REQUIRE(line);
    CHECK(line->rfind("closed 1000", 0) == 0);
}
#endif

#endif

// ---- threads: one thread per io_context ------------------------------------------------------
// (kept apart at the end of the file)

TEST_CASE("beast threads: an io_context run by a second thread is refused", "[beast][threads]") {
    net::io_context io;
    boost_raw_peer first_peer(io);
    boost_raw_peer second_peer(io);
    recording_sink sink;
    beast_transport t(io, quick_options());
    driver d{t, sink};
    // this thread runs the io_context first...
    const connection_id first = d.connect(first_peer.url());
    REQUIRE(run_until(io, [&] { return sink.opened(first); }));
    // ...then a second one, while this one lives (a joined thread's id may be
    // reused): the transport's state is not synchronised, so it must refuse.
    connection_id second = 0;
    std::thread b([&] {
        net::post(io, [&] { second = d.connect(second_peer.url()); });
        run_until(io, [&] { return second != 0 && sink.closed(second); });
    });
    b.join();
    REQUIRE(second != 0);
    REQUIRE(sink.closed(second));
    INFO(sink.close_of(second).detail);
    CHECK_FALSE(sink.opened(second));
    CHECK(sink.close_of(second).error == tether::error::connection_failed);
    CHECK_THAT(sink.close_of(second).detail, Contains("more than one thread"));
    CHECK_THAT(sink.close_of(second).detail, Contains("run it on one thread"));
    CHECK(second_peer.connections == 0); // refused before any network activity
    // the refusal sticks: a later connection fails too, without touching the network
    const connection_id third = d.connect(second_peer.url());
    REQUIRE(run_until(io, [&] { return sink.closed(third); }));
    CHECK_FALSE(sink.opened(third));
    CHECK_THAT(sink.close_of(third).detail, Contains("more than one thread"));
    // and the open connection ends at its next event, here a send
    CHECK(d.send(first, "x") == tether::error::not_connected);
    REQUIRE(run_until(io, [&] { return sink.closed(first); }));
    CHECK(sink.close_of(first).was_open);
    CHECK(sink.close_of(first).error == tether::error::connection_failed);
    CHECK_THAT(sink.close_of(first).detail, Contains("more than one thread"));
    CHECK(second_peer.connections == 0);
    check_contract(sink);
}
