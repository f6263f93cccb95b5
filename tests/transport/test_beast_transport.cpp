// beast_transport over real sockets on 127.0.0.1, at the transport level (a
// recording sink, no client): the Python `websockets` library as an
// independent peer (plain and TLS, certificates made at test time) and a raw
// scripted Boost.Asio peer for stalls, refusals and invalid frames. Every
// wait is bounded; no assertion depends on a sleep.
#include <tether/transport/beast_transport.hpp>
#if defined(TETHER_USE_BOOST_ASIO)
#include <tether/basic_reconnecting_client.hpp>
#include <tether/token_policy/callback_token.hpp>
#endif
#include <tether/transport/concept.hpp>

#include "../tinyproxy_fixture.hpp"
#include "raw_peer.hpp" // websocket_accept(), server_frame(), close_frame()
#include "support.hpp"  // test_pki, temp_dir, child_process

#include <catch2/catch.hpp>

#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <malloc.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

static_assert(tether::is_transport_v<tether::beast_transport>,
              "beast_transport must meet the Transport requirements");

using namespace std::chrono_literals;
using Catch::Contains;
using tether::beast_transport;
using tether::beast_transport_options;
using tether::close_event;
using tether::connection_id;
using tether::message_kind;
namespace net = boost::asio;

namespace {

using steady = std::chrono::steady_clock;

/// Timer and scheduling delay allowed on top of a bound: the machine is
/// shared and the tests also run under sanitizers.
constexpr auto scheduling_slack = 400ms;

long long ms(steady::duration d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

/// Runs `io` until `done()` or `limit` passes; false on timeout.
template <class Pred>
bool run_until(net::io_context& io, Pred done, std::chrono::milliseconds limit = 10s) {
    const auto deadline = steady::now() + limit;
    while (!done()) {
        if (steady::now() >= deadline) return false;
        if (io.stopped()) io.restart();
        if (io.run_one_for(20ms) == 0 && io.stopped()) std::this_thread::sleep_for(1ms);
    }
    return true;
}

void run_for(net::io_context& io, std::chrono::milliseconds d) {
    run_until(
        io, [] { return false; }, d);
}

/// Records every sink call, and flags any made from inside a transport call.
struct recording_sink {
    struct record {
        int opens = 0;
        int closes = 0;
        tether::open_info info;
        std::vector<std::pair<std::string, message_kind>> messages;
        close_event closed;
        steady::time_point closed_at{};
        steady::time_point last_message_at{};
    };
    std::map<connection_id, record> records;
    bool inside_transport_call = false;
    int inline_calls = 0;
    int calls_after_close = 0;
    int calls = 0;

    void on_transport_open(connection_id id, const tether::open_info& info) {
        note(id);
        auto& r = records[id];
        ++r.opens;
        r.info = info;
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
        ++calls;
        if (inside_transport_call) ++inline_calls;
        if (records.count(id) && records[id].closes > 0) ++calls_after_close;
    }
};

/// Transport calls made the way the client makes them, watching for inline sink calls.
struct driver {
    beast_transport& t;
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

beast_transport_options quick_options() {
    beast_transport_options o;
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

const test_support::test_pki& pki() {
    static test_support::temp_dir dir;
    static test_support::test_pki p(dir);
    return p;
}

// ---- a raw scripted peer on Boost.Asio -------------------------------------------------

/// Accepts one connection at a time on 127.0.0.1, reads the upgrade request,
/// optionally answers 101 (plus scripted bytes), then only reads.
class boost_raw_peer {
public:
    explicit boost_raw_peer(net::io_context& io, const std::string& address = "127.0.0.1")
        : acceptor_(io, net::ip::tcp::endpoint(net::ip::make_address(address), 0)) {
        accept();
    }

    bool answer_handshake = true;
    std::string extra_response_headers; ///< each ending in "\r\n"
    std::string after_handshake;        ///< raw bytes right after the 101 response

    int connections = 0;
    std::string request;
    std::string received; ///< bytes after the request
    bool peer_closed = false;

    std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
    std::string url() const {
        const auto a = acceptor_.local_endpoint().address();
        const std::string host = a.is_v6() ? "[" + a.to_string() + "]" : a.to_string();
        return "ws://" + host + ":" + std::to_string(port()) + "/";
    }

private:
    void accept() {
        acceptor_.async_accept([this](const boost::system::error_code& ec, net::ip::tcp::socket s) {
            if (ec) return;
            ++connections;
            socket_ = std::make_shared<net::ip::tcp::socket>(std::move(s));
            net::async_read_until(
                *socket_, buf_, "\r\n\r\n",
                [this, s = socket_](const boost::system::error_code& e, std::size_t n) {
                    if (e) {
                        peer_closed = true;
                        return;
                    }
                    const auto data = buf_.data();
                    const std::string all(net::buffers_begin(data), net::buffers_end(data));
                    request = all.substr(0, n);
                    received = all.substr(n);
                    buf_.consume(buf_.size());
                    if (answer_handshake) respond();
                    read_rest();
                });
        });
    }

    void respond() {
        std::string key;
        const auto at = request.find("Sec-WebSocket-Key: ");
        if (at != std::string::npos)
            key = request.substr(at + 19, request.find("\r\n", at) - at - 19);
        response_ =
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: " +
            test_support::websocket_accept(key) + "\r\n" + extra_response_headers + "\r\n" +
            after_handshake;
        net::async_write(*socket_, net::buffer(response_),
                         [s = socket_](const boost::system::error_code&, std::size_t) {});
    }

    void read_rest() {
        socket_->async_read_some(
            net::buffer(chunk_),
            [this, s = socket_](const boost::system::error_code& ec, std::size_t n) {
                if (ec) {
                    peer_closed = true;
                    return;
                }
                received.append(chunk_.data(), n);
                read_rest();
            });
    }

    net::ip::tcp::acceptor acceptor_;
    std::shared_ptr<net::ip::tcp::socket> socket_;
    net::streambuf buf_;
    std::string response_;
    std::array<char, 4096> chunk_{};
};

} // namespace

// ---- without a peer -----------------------------------------------------------------------

TEST_CASE("beast: a token is never sent in clear to a host that is not loopback",
          "[beast][security]") {
    net::io_context io;
    recording_sink sink;
    beast_transport t(io, quick_options());
    driver d{t, sink};
    const auto id = d.connect("ws://api.example.com/stream", "SECRET");
    CHECK_FALSE(sink.closed(id)); // never inline
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const close_event& ev = sink.close_of(id);
    CHECK(ev.error == tether::error::insecure_transport);
    CHECK_THAT(ev.detail, Contains("api.example.com"));
    CHECK_FALSE(ev.was_open);
    // the same URL without a token is not refused for that reason
    const auto bad = d.connect("http://x/");
    REQUIRE(run_until(io, [&] { return sink.closed(bad); }));
    CHECK(sink.close_of(bad).error == tether::error::invalid_url);
    check_contract(sink);
}

TEST_CASE("beast: invalid options throw at construction", "[beast][options]") {
    net::io_context io;
    auto o = quick_options();
    o.close_timeout = 0ms;
    CHECK_THROWS_AS(beast_transport(io, o), std::system_error);
    o = quick_options();
    o.deflate_window_bits = 7;
    CHECK_THROWS_AS(beast_transport(io, o), std::system_error);
}

// ---- the raw peer ---------------------------------------------------------------------------

TEST_CASE("beast: close() while connecting aborts at once; no byte of the upgrade leaves",
          "[beast][close][security]") {
    net::io_context io;
    boost_raw_peer peer(io);
    peer.answer_handshake = false;
    recording_sink sink;
    {
        beast_transport t(io, quick_options());
        driver d{t, sink};
        // close() right after connect(), while resolving "localhost"
        const auto id =
            d.connect("ws://localhost:" + std::to_string(peer.port()) + "/", "SECRET-TOKEN-1");
        d.close(id);
        d.close(id); // idempotent
        CHECK_FALSE(sink.closed(id));
        REQUIRE(run_until(io, [&] { return sink.closed(id); }));
        CHECK(sink.close_of(id).error == tether::error::operation_cancelled);
        CHECK(sink.close_of(id).initiated_locally);
        // resolve, connect and upgrade would finish well within this on loopback
        run_for(io, 500ms);
        CHECK(sink.records[id].closes == 1);
        // the transport destroyed while resolving: nothing leaves either
        d.connect("ws://localhost:" + std::to_string(peer.port()) + "/", "SECRET-TOKEN-2");
    }
    const auto calls = sink.calls;
    run_for(io, 500ms);
    CHECK(sink.calls == calls);
    INFO(peer.request);
    CHECK(peer.request.empty());
    CHECK(peer.connections == 0);
    check_contract(sink);
}

TEST_CASE("beast: close() while the upgrade is unanswered reports once and drops the socket",
          "[beast][close]") {
    net::io_context io;
    boost_raw_peer peer(io);
    peer.answer_handshake = false;
    recording_sink sink;
    beast_transport t(io, quick_options());
    driver d{t, sink};
    const auto id = d.connect(peer.url());
    REQUIRE(run_until(io, [&] { return !peer.request.empty(); }));
    d.close(id);
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    CHECK(sink.close_of(id).error == tether::error::operation_cancelled);
    REQUIRE(run_until(
        io, [&] { return peer.peer_closed; }, 3s));
    check_contract(sink);
}

TEST_CASE("beast: a server that never answers the upgrade hits the handshake timeout",
          "[beast][timeout]") {
    net::io_context io;
    boost_raw_peer peer(io);
    peer.answer_handshake = false;
    recording_sink sink;
    auto o = quick_options();
    o.handshake_timeout = 300ms;
    beast_transport t(io, o);
    driver d{t, sink};
    const auto start = steady::now();
    const auto id = d.connect(peer.url());
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const close_event& ev = sink.close_of(id);
    CHECK(ev.error == tether::error::handshake_timeout);
    CHECK_THAT(ev.detail, Contains("waiting for the upgrade response"));
    const auto took = sink.records[id].closed_at - start;
    CHECK(took >= 300ms);
    CHECK(took <= 300ms + scheduling_slack);
    check_contract(sink);
}

TEST_CASE("beast: a subprotocol the client did not offer fails the connection; the token "
          "subprotocol is reported as [token]",
          "[beast][protocol]") {
    net::io_context io;
    recording_sink sink;
    SECTION("not offered") {
        boost_raw_peer peer(io);
        peer.extra_response_headers = "Sec-WebSocket-Protocol: other\r\n";
        beast_transport t(io, quick_options());
        driver d{t, sink};
        const auto id = d.connect(peer.url(), {}, {"chat.v1"});
        REQUIRE(run_until(io, [&] { return sink.closed(id); }));
        CHECK(sink.close_of(id).error == tether::error::protocol_error);
        CHECK_FALSE(sink.opened(id));
    }
    SECTION("the token entry selected") {
        boost_raw_peer peer(io);
        peer.extra_response_headers = "Sec-WebSocket-Protocol: tok.abc123\r\n";
        auto o = quick_options();
        o.token_in = tether::token_placement::subprotocol;
        o.token_subprotocol_prefix = "tok.";
        beast_transport t(io, o);
        driver d{t, sink};
        const auto id = d.connect(peer.url(), "abc123", {"chat.v1"});
        REQUIRE(run_until(io, [&] { return sink.opened(id); }));
        CHECK(sink.records[id].info.subprotocol == "[token]");
        CHECK_THAT(peer.request, Contains("Sec-WebSocket-Protocol: chat.v1, tok.abc123"));
        CHECK(peer.request.find("Authorization") == std::string::npos);
    }
    check_contract(sink);
}

TEST_CASE("beast: a peer that stops answering is detected within ping interval + pong timeout",
          "[beast][liveness]") {
    net::io_context io;
    boost_raw_peer peer(io); // answers the upgrade, then never writes again
    recording_sink sink;
    auto o = quick_options();
    o.ping_interval = 150ms;
    o.pong_timeout = 100ms;
    beast_transport t(io, o);
    driver d{t, sink};
    const auto id = d.connect(peer.url());
    REQUIRE(run_until(io, [&] { return sink.opened(id); }));
    const auto opened_at = steady::now();
    REQUIRE(run_until(
        io, [&] { return sink.closed(id); }, 3s));
    const auto took = sink.records[id].closed_at - opened_at;
    const close_event& ev = sink.close_of(id);
    INFO(ev.detail);
    CHECK(ev.error == tether::error::pong_timeout);
    CHECK(ev.code == tether::close_code::abnormal);
    CHECK(ev.was_open);
    CHECK(ev.initiated_locally);
    INFO("detected after " << ms(took) << " ms");
    CHECK(took >= 250ms);
    CHECK(took <= 250ms + scheduling_slack);
    // the ping went out: a masked ping frame (0x89)
    REQUIRE_FALSE(peer.received.empty());
    CHECK(static_cast<unsigned char>(peer.received[0]) == 0x89);
    check_contract(sink);
}

TEST_CASE("beast: idle timeout when no frame arrives", "[beast][liveness]") {
    net::io_context io;
    boost_raw_peer peer(io);
    peer.after_handshake = test_support::server_frame(0x1, "hello"); // one frame, then silence
    recording_sink sink;
    auto o = quick_options();
    o.idle_timeout = 200ms;
    beast_transport t(io, o);
    driver d{t, sink};
    const auto id = d.connect(peer.url());
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    REQUIRE(sink.message_count(id) == 1);
    const auto took = sink.records[id].closed_at - sink.records[id].last_message_at;
    CHECK(sink.close_of(id).error == tether::error::idle_timeout);
    CHECK(sink.close_of(id).code == tether::close_code::abnormal);
    INFO("detected after " << ms(took) << " ms");
    CHECK(took >= 200ms);
    CHECK(took <= 250ms + scheduling_slack);
    check_contract(sink);
}

TEST_CASE("beast: a peer that never answers the close frame hits the close timeout",
          "[beast][close]") {
    net::io_context io;
    boost_raw_peer peer(io);
    recording_sink sink;
    auto o = quick_options();
    o.close_timeout = 200ms;
    beast_transport t(io, o);
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

TEST_CASE("beast: invalid close frames from the peer are clear protocol errors",
          "[beast][protocol]") {
    struct sample {
        const char* name;
        std::string frame;
        std::uint16_t code;
    };
    const sample samples[] = {
        {"close code 1005 on the wire", test_support::close_frame(1005, ""),
         tether::close_code::protocol_error},
        {"close code 999", test_support::close_frame(999, ""), tether::close_code::protocol_error},
        {"close code 1004 (reserved)", test_support::close_frame(1004, ""),
         tether::close_code::protocol_error},
        {"reason not UTF-8", test_support::close_frame(1000, "\xff\xfe"),
         tether::close_code::protocol_error},
        {"one-byte payload", test_support::server_frame(0x8, "x"),
         tether::close_code::protocol_error},
    };
    for (const auto& s : samples) {
        INFO(s.name);
        net::io_context io;
        boost_raw_peer peer(io);
        peer.after_handshake = s.frame;
        recording_sink sink;
        auto o = quick_options();
        o.close_timeout = 300ms; // the peer never answers Beast's close frame
        beast_transport t(io, o);
        driver d{t, sink};
        const auto start = steady::now();
        const auto id = d.connect(peer.url());
        REQUIRE(run_until(io, [&] { return sink.closed(id); }));
        const close_event& ev = sink.close_of(id);
        INFO(ev.detail << " after " << ms(sink.records[id].closed_at - start) << " ms");
        CHECK(ev.error == tether::error::protocol_error);
        CHECK(ev.code == s.code);
        CHECK(ev.was_open);
        CHECK(sink.records[id].closed_at - start <= 300ms + scheduling_slack);
        check_contract(sink);
    }
}

TEST_CASE("beast: an IPv6 literal is bracketed in Host", "[beast][url]") {
    net::io_context io;
    std::optional<boost_raw_peer> peer;
    try {
        peer.emplace(io, "::1");
    } catch (const std::exception& e) {
        WARN("no IPv6 loopback here: " << e.what());
        return;
    }
    recording_sink sink;
    beast_transport t(io, quick_options());
    driver d{t, sink};
    const auto id = d.connect(peer->url(), "v6-token");
    REQUIRE(run_until(io, [&] { return sink.opened(id) || sink.closed(id); }));
    CHECK(sink.opened(id));
    CHECK_THAT(peer->request, Contains("Host: [::1]:" + std::to_string(peer->port()) + "\r\n"));
    check_contract(sink);
}

TEST_CASE("beast: send errors: unknown ids, closed connections and invalid text", "[beast][send]") {
    net::io_context io;
    boost_raw_peer peer(io);
    recording_sink sink;
    beast_transport t(io, quick_options());
    driver d{t, sink};
    CHECK(d.send(42, "x") == tether::error::not_connected);
    const auto id = d.connect(peer.url());
    CHECK(d.send(id, "x") == tether::error::not_connected); // still connecting
    REQUIRE(run_until(io, [&] { return sink.opened(id); }));
    CHECK(d.send(id, "\xc3\x28") == tether::error::invalid_text_message);
    CHECK(d.send(id, "\xc3\x28", message_kind::binary) == std::error_code());
    CHECK(d.send(id, "gr\xc3\xbc\xc3\x9f") == std::error_code());
    check_contract(sink);
}

// ---- Python `websockets` as an independent peer ----------------------------------------------

#ifdef TETHER_TEST_PYTHON
namespace {
const char* python_server_script = R"PY(
import asyncio, json, ssl, sys
from http import HTTPStatus
import websockets

cert = sys.argv[1] if len(sys.argv) > 2 else None
key = sys.argv[2] if len(sys.argv) > 2 else None

async def check(path, headers):
    if path.startswith("/refuse"):
        return (HTTPStatus.UNAUTHORIZED, [("Retry-After", "7"), ("Content-Type", "text/plain")],
                b"token expired; " + b"x" * 2000)
    if path.startswith("/auth") and headers.get("Authorization") != "Bearer py-token":
        return HTTPStatus.UNAUTHORIZED, [("Retry-After", "3")], b"stale token\n"
    return None

async def handler(ws, path):
    if path.startswith("/headers"):
        hs = {k.lower(): v for k, v in ws.request_headers.raw_items()}
        await ws.send(json.dumps({"path": path, "headers": hs}, sort_keys=True))
    if path.startswith("/close/"):
        await ws.close(int(path.split("/")[2]), "server says bye")
        return
    try:
        async for msg in ws:
            if isinstance(msg, str) and msg.startswith("big "):
                await ws.send(b"x" * int(msg[4:]))
                continue
            if isinstance(msg, str) and msg.startswith("burst "):
                # one write: every frame arrives in the client's buffer together
                n = int(msg[6:])
                frames = b"".join(bytes([0x81, len(m)]) + m
                                  for m in (("m%d" % i).encode() for i in range(n)))
                ws.transport.write(frames)
                continue
            await ws.send(msg)
    except websockets.ConnectionClosed:
        pass
    print("closed %s %s" % (ws.close_code, ws.close_reason), flush=True)

async def main():
    ctx = None
    if cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
    async with websockets.serve(handler, "127.0.0.1", 0, process_request=check, ssl=ctx,
                                ping_interval=None, subprotocols=["chat.v1"]) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.sleep(60)

asyncio.run(main())
)PY";

struct python_peer {
    test_support::temp_dir dir;
    std::optional<test_support::child_process> proc;
    std::uint16_t port = 0;
    bool tls = false;

    /// `cert`: none for ws://, else the server's certificate and key.
    explicit python_peer(const test_support::issued* cert = nullptr) : tls(cert != nullptr) {
        const std::string script = dir.write("server.py", python_server_script);
        std::vector<std::string> argv{TETHER_TEST_PYTHON, script};
        if (cert) {
            argv.push_back(dir.write("cert.pem", cert->cert_pem));
            argv.push_back(dir.write("key.pem", cert->key_pem));
        }
        proc.emplace(argv);
        const auto line = proc->read_line(15s);
        REQUIRE(line);
        port = static_cast<std::uint16_t>(std::stoi(*line));
    }
    std::string url(const std::string& path, const std::string& host = "127.0.0.1") const {
        return std::string(tls ? "wss://" : "ws://") + host + ":" + std::to_string(port) + path;
    }
};
} // namespace

TEST_CASE("beast interop: open, text and binary echo, client close code reaches the server",
          "[beast][interop]") {
    net::io_context io;
    python_peer py;
    recording_sink sink;
    beast_transport t(io, quick_options());
    driver d{t, sink};
    const auto id = d.connect(py.url("/echo"), {}, {"chat.v1"});
    REQUIRE(run_until(io, [&] { return sink.opened(id); }));
    CHECK(sink.records[id].info.subprotocol == "chat.v1");
    const std::string binary("\x00\x01\xff\x80", 4);
    CHECK(d.send(id, "hello") == std::error_code());
    CHECK(d.send(id, binary, message_kind::binary) == std::error_code());
    REQUIRE(run_until(io, [&] { return sink.message_count(id) == 2; }));
    const auto& m = sink.records[id].messages;
    CHECK(m[0] == std::make_pair(std::string("hello"), message_kind::text));
    CHECK(m[1] == std::make_pair(binary, message_kind::binary));
    d.close(id, 4000, "done");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const close_event& ev = sink.close_of(id);
    INFO(ev.detail);
    CHECK(ev.code == 4000);
    CHECK(ev.reason == "done");
    CHECK(ev.initiated_locally);
    CHECK(ev.was_open);
    CHECK_FALSE(ev.error);
    const auto line = py.proc->read_line(5s);
    REQUIRE(line);
    CHECK(*line == "closed 4000 done");
    check_contract(sink);
}

TEST_CASE("beast interop: a server-initiated close keeps its code and reason, reported at the "
          "close frame",
          "[beast][interop]") {
    net::io_context io;
    python_peer py;
    recording_sink sink;
    beast_transport t(io, quick_options());
    driver d{t, sink};
    const auto id = d.connect(py.url("/close/4001"));
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const close_event& ev = sink.close_of(id);
    INFO(ev.detail);
    CHECK(ev.code == 4001);
    CHECK(ev.reason == "server says bye");
    CHECK_FALSE(ev.initiated_locally);
    CHECK(ev.was_open);
    CHECK_FALSE(ev.error);
    CHECK(t.active_connections() == 0);
    check_contract(sink);
}

TEST_CASE("beast interop: a refused handshake carries status, Retry-After and a bounded body",
          "[beast][interop]") {
    net::io_context io;
    python_peer py;
    recording_sink sink;
    auto o = quick_options();
    o.max_body_excerpt = 64;
    beast_transport t(io, o);
    driver d{t, sink};
    const auto id = d.connect(py.url("/refuse"), "tok");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const close_event& ev = sink.close_of(id);
    INFO(ev.detail);
    CHECK(ev.http_status == 401);
    CHECK(ev.handshake_refused());
    REQUIRE(ev.retry_after);
    CHECK(*ev.retry_after == 7000ms);
    CHECK(ev.body_excerpt.rfind("token expired; xxx", 0) == 0);
    CHECK(ev.body_excerpt.size() <= 64 + 16); // the excerpt marks its cut
    CHECK_THAT(ev.detail, Contains("HTTP 401"));
    CHECK_FALSE(sink.opened(id));

    // a wrong token is refused by the server that checks it; the right one opens
    const auto wrong = d.connect(py.url("/auth"), "old-token");
    const auto right = d.connect(py.url("/auth"), "py-token");
    REQUIRE(run_until(io, [&] { return sink.closed(wrong) && sink.opened(right); }));
    CHECK(sink.close_of(wrong).http_status == 401);
    REQUIRE(sink.close_of(wrong).retry_after);
    CHECK(*sink.close_of(wrong).retry_after == 3000ms);
    check_contract(sink);
}

TEST_CASE("beast interop: token placements, headers, user agent and subprotocols reach the server",
          "[beast][interop][token]") {
    net::io_context io;
    python_peer py;
    recording_sink sink;
    const auto headers_seen = [&](beast_transport_options o, const std::string& token,
                                  std::vector<std::string> protocols = {}) {
        beast_transport t(io, o);
        driver d{t, sink};
        const auto id =
            d.connect(py.url("/headers/x"), token, std::move(protocols), {{"X-Request", "r1"}});
        REQUIRE(run_until(io, [&] { return sink.message_count(id) == 1; }));
        d.close(id);
        REQUIRE(run_until(io, [&] { return sink.closed(id); }));
        return sink.records[id].messages[0].first;
    };
    SECTION("Authorization: Bearer (default)") {
        auto o = quick_options();
        o.headers = {{"X-Tenant", "t1"}};
        o.user_agent = "beast-test/1";
        const auto seen = headers_seen(o, "abc.def", {"chat.v1"});
        INFO(seen);
        CHECK_THAT(seen, Contains("\"authorization\": \"Bearer abc.def\""));
        CHECK_THAT(seen, Contains("\"x-tenant\": \"t1\""));
        CHECK_THAT(seen, Contains("\"x-request\": \"r1\""));
        CHECK_THAT(seen, Contains("\"user-agent\": \"beast-test/1\""));
        CHECK_THAT(seen, Contains("\"sec-websocket-protocol\": \"chat.v1\""));
        CHECK_THAT(seen, Contains("\"path\": \"/headers/x\""));
        CHECK_THAT(seen, !Contains("permessage-deflate")); // off by default
    }
    SECTION("query parameter, percent-encoded") {
        auto o = quick_options();
        o.token_in = tether::token_placement::query_parameter;
        const auto seen = headers_seen(o, "a/b c");
        INFO(seen);
        CHECK_THAT(seen, Contains("\"path\": \"/headers/x?access_token=a%2Fb%20c\""));
        CHECK_THAT(seen, !Contains("authorization"));
    }
    SECTION("subprotocol entry") {
        auto o = quick_options();
        o.token_in = tether::token_placement::subprotocol;
        o.token_subprotocol_prefix = "tok.";
        const auto seen = headers_seen(o, "abc", {"chat.v1"});
        INFO(seen);
        CHECK_THAT(seen, Contains("\"sec-websocket-protocol\": \"chat.v1, tok.abc\""));
        CHECK_THAT(seen, !Contains("authorization"));
    }
    SECTION("permessage-deflate when asked for, and messages still echo") {
        auto o = quick_options();
        o.permessage_deflate = true;
        const auto seen = headers_seen(o, "");
        INFO(seen);
        CHECK_THAT(seen, Contains("permessage-deflate"));
        beast_transport t(io, o);
        recording_sink echo_sink;
        driver d{t, echo_sink};
        const auto id = d.connect(py.url("/echo"));
        REQUIRE(run_until(io, [&] { return echo_sink.opened(id); }));
        const std::string big(100000, 'z');
        CHECK(d.send(id, big) == std::error_code());
        REQUIRE(run_until(
            io, [&] { return echo_sink.message_count(id) == 1 || echo_sink.closed(id); }));
        if (echo_sink.closed(id)) FAIL(echo_sink.close_of(id).detail);
        CHECK(echo_sink.records[id].messages[0].first == big);
        check_contract(echo_sink);
    }
    check_contract(sink);
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

TEST_CASE("beast interop: an oversized incoming message closes with 1009 and message_too_large",
          "[beast][interop][limits]") {
    net::io_context io;
    python_peer py;
    recording_sink sink;
    auto o = quick_options();
    o.max_message_size = 1024;
    beast_transport t(io, o);
    driver d{t, sink};
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
    const auto line = py.proc->read_line(5s); // the server saw our 1009
    REQUIRE(line);
    CHECK(line->rfind("closed 1009", 0) == 0);
    check_contract(sink);
}

TEST_CASE("beast interop: wss:// with a certificate from the configured CA, by IP and by name",
          "[beast][interop][tls]") {
    net::io_context io;
    python_peer py(&pki().good);
    recording_sink sink;
    auto o = quick_options();
    o.tls.ca_file = pki().ca_file;
    beast_transport t(io, o);
    driver d{t, sink};
    for (const char* host : {"127.0.0.1", "localhost"}) {
        INFO(host);
        const auto id = d.connect(py.url("/echo", host), "tls-token");
        REQUIRE(run_until(io, [&] { return sink.opened(id) || sink.closed(id); }));
        if (sink.closed(id)) FAIL(sink.close_of(id).detail);
        d.send(id, "over tls");
        REQUIRE(run_until(io, [&] { return sink.message_count(id) == 1; }));
        CHECK(sink.records[id].messages[0].first == "over tls");
        d.close(id);
        REQUIRE(run_until(io, [&] { return sink.closed(id); }));
        CHECK(sink.close_of(id).code == 1000);
    }
    check_contract(sink);
}

TEST_CASE("beast interop: wss:// with a wrong host name or an unknown CA fails verification",
          "[beast][interop][tls]") {
    net::io_context io;
    recording_sink sink;
    SECTION("certificate for another name") {
        python_peer py(&pki().wrong_name);
        auto o = quick_options();
        o.tls.ca_file = pki().ca_file;
        beast_transport t(io, o);
        driver d{t, sink};
        for (const char* host : {"127.0.0.1", "localhost"}) {
            INFO(host);
            const auto id = d.connect(py.url("/echo", host), "tls-token");
            REQUIRE(run_until(io, [&] { return sink.closed(id); }));
            const close_event& ev = sink.close_of(id);
            INFO(ev.detail);
            CHECK(ev.error == tether::error::tls_verification_failed);
            CHECK_THAT(ev.detail, Contains(std::string("does not match host '") + host + "'"));
            CHECK_FALSE(sink.opened(id));
        }
    }
    SECTION("CA not trusted (system store only)") {
        python_peer py(&pki().good);
        beast_transport t(io, quick_options());
        driver d{t, sink};
        const auto id = d.connect(py.url("/echo", "localhost"));
        REQUIRE(run_until(io, [&] { return sink.closed(id); }));
        const close_event& ev = sink.close_of(id);
        INFO(ev.detail);
        CHECK(ev.error == tether::error::tls_verification_failed);
        CHECK_THAT(ev.detail, Contains("certificate verification failed at depth"));
    }
    SECTION("the loudly named opt-out accepts it") {
        python_peer py(&pki().wrong_name);
        auto o = quick_options();
        o.tls.insecure_skip_verify_i_know_what_i_am_doing = true;
        beast_transport t(io, o);
        driver d{t, sink};
        const auto id = d.connect(py.url("/echo", "localhost"));
        REQUIRE(run_until(io, [&] { return sink.opened(id) || sink.closed(id); }));
        CHECK(sink.opened(id));
    }
    check_contract(sink);
}

TEST_CASE("beast interop: destroying the transport with a connection open calls no sink",
          "[beast][interop][lifetime]") {
    net::io_context io;
    python_peer py;
    boost_raw_peer hanging(io);
    hanging.answer_handshake = false;
    recording_sink sink;
    connection_id open_id = 0;
    {
        beast_transport t(io, quick_options());
        driver d{t, sink};
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
    CHECK_FALSE(sink.closed(open_id));
    check_contract(sink);
}

// ---- through tinyproxy (HTTP CONNECT) -------------------------------------------------------

namespace {
tether::proxy_options proxy_at(const test_proxy::tinyproxy& p, const std::string& user = {},
                               const std::string& password = {}) {
    return tether::proxy_options::from_url(p.url(user, password));
}
} // namespace

TEST_CASE("beast proxy: ws:// through tinyproxy with Basic auth; token and messages reach the "
          "origin",
          "[beast][interop][proxy]") {
    net::io_context io;
    python_peer py;
    test_proxy::tinyproxy proxy({{py.port}, "proxyuser", "proxy-pass-1"});
    auto o = quick_options();
    o.proxy = proxy_at(proxy, "proxyuser", "proxy-pass-1");
    recording_sink sink;
    beast_transport t(io, o);
    driver d{t, sink};
    const auto id = d.connect(py.url("/headers/through"), "tunnel-token");
    REQUIRE(run_until(io, [&] { return sink.message_count(id) == 1 || sink.closed(id); }));
    INFO((sink.closed(id) ? sink.close_of(id).detail : std::string()));
    REQUIRE(sink.message_count(id) == 1);
    const auto seen = sink.records[id].messages[0].first;
    CHECK_THAT(seen, Contains("\"authorization\": \"Bearer tunnel-token\""));
    CHECK_THAT(seen, !Contains("proxy-authorization"));
    CHECK(d.send(id, "via proxy") == std::error_code());
    REQUIRE(run_until(io, [&] { return sink.message_count(id) == 2; }));
    CHECK(sink.records[id].messages[1].first == "via proxy");
    d.close(id);
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    CHECK(proxy.connect_requests() == 1);
    check_contract(sink);
}

TEST_CASE("beast proxy: wss:// through tinyproxy verifies the origin's certificate by the "
          "origin's name",
          "[beast][interop][proxy][tls]") {
    for (const bool good : {true, false}) {
        INFO((good ? "good certificate" : "certificate for another name"));
        net::io_context io;
        python_peer py(good ? &pki().good : &pki().wrong_name);
        test_proxy::tinyproxy proxy({{py.port}, "", ""});
        auto o = quick_options();
        o.proxy = proxy_at(proxy);
        o.tls.ca_file = pki().ca_file;
        recording_sink sink;
        beast_transport t(io, o);
        driver d{t, sink};
        const auto id = d.connect(py.url("/echo", "localhost"), "tls-token");
        REQUIRE(run_until(io, [&] { return sink.opened(id) || sink.closed(id); }));
        if (good) {
            INFO((sink.closed(id) ? sink.close_of(id).detail : std::string()));
            CHECK(sink.opened(id));
        } else {
            REQUIRE(sink.closed(id));
            CHECK(sink.close_of(id).error == tether::error::tls_verification_failed);
            CHECK_THAT(sink.close_of(id).detail, Contains("does not match host 'localhost'"));
        }
        CHECK(proxy.connect_requests() == 1);
        check_contract(sink);
    }
}

TEST_CASE("beast proxy: 407 without proxy credentials is proxy_auth_required",
          "[beast][interop][proxy]") {
    net::io_context io;
    python_peer py;
    test_proxy::tinyproxy proxy({{py.port}, "proxyuser", "right-pass"});
    auto o = quick_options();
    o.proxy = proxy_at(proxy);
    recording_sink sink;
    beast_transport t(io, o);
    driver d{t, sink};
    const auto id = d.connect(py.url("/echo"), "tok");
    REQUIRE(run_until(io, [&] { return sink.closed(id); }));
    const close_event& ev = sink.close_of(id);
    INFO(ev.detail);
    CHECK(ev.error == tether::error::proxy_auth_required);
    CHECK(ev.proxy_status == 407);
    CHECK(ev.http_status == 0);
    check_contract(sink);
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

TEST_CASE("beast interop: a burst of buffered messages, handlers run per message",
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
    WARN("beast_transport: " << handlers << " handlers for " << n
                             << " messages that arrived in one write");
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
