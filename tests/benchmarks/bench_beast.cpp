// Baseline: a raw Boost.Beast client (header-only Beast over Boost.Asio,
// plain ws://), written as Beast's own examples write one, and next to it
// tether's client on beast_transport (Boost mode, TETHER_USE_BOOST_ASIO), in
// the same program so both are built with the same flags and library. Run by
// tether_bench, which owns the server (bench_server.hpp); see bench_peer.hpp.
//
//   tether_bench_beast throughput --variant async|sync|tether --port P --count N --size S
//     async: websocket::stream<beast::tcp_stream>, one async_read into a
//            flat_buffer per message (one completion per message), then
//            async_close.
//     sync:  websocket::stream<tcp::socket>, ws.read(buffer) in a loop, then
//            close().
//     tether: basic_reconnecting_client<beast_transport>, on_message per
//            message (as tether_bench's tether variant on websocketpp), then
//            stop(); pings off (the server writes raw frames).
//     Timed from the end of the handshake (on_open) to the N-th message (wall
//     clock and this thread's CPU). Every message must be text of exactly S bytes.
//   tether_bench_beast idle --variant beast|tether --port P --count K [--window W]
//     K connections on one io_context (W handshakes in flight); VmRSS before
//     and after. beast: each with an async_read pending into its own
//     flat_buffer, as a client waiting for messages has. tether: K
//     basic_reconnecting_client, each on its own beast_transport (default
//     options: pings every 20 s), as tether_bench's idle tether variant.
//   tether_bench_beast reconnect --port P --token-port T --command-fd F --cycles N
//     tether on beast_transport with a shared_token_source (token already
//     fresh), the server in seed mode: per cycle a raw Beast connect with a
//     bearer token (the baseline), a background refresh through a second
//     handle, then 'x' on the server's command pipe (fd F, inherited): the
//     server closes with 4001 "Token expired @<ns>". Timed from that stamp to
//     on_open. Tokens come from the server's /oauth/token, one POST each on a
//     plain socket (oauth2_client_credentials does not build in Boost mode).
//
// Beast's defaults are kept: UTF-8 validation of text messages is on (the raw
// websocketpp client validates too), no permessage-deflate, no auto-fragment
// concern (the client only receives).
#include "bench_peer.hpp"

#include <tether/basic_reconnecting_client.hpp>
#include <tether/close_policy/default_close_policy.hpp>
#include <tether/token_policy/shared_token_source.hpp>
#include <tether/transport/beast_transport.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <chrono>
#include <csignal>
#include <functional>
#include <memory>
#include <vector>

#if !defined(TETHER_USE_BOOST_ASIO)
#error "bench_beast.cpp is built in Boost mode (TETHER_USE_BOOST_ASIO): see CMakeLists.txt"
#endif

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;
using peer::die;

struct target {
    tcp::endpoint endpoint;
    std::string host, path;
};

struct run_figures {
    std::size_t count = 0, bytes = 0;
    std::int64_t t0 = 0, t1 = 0, c0 = 0, c1 = 0;
};

void check(beast::error_code ec, const char* what) {
    if (ec) die(std::string("beast: ") + what + ": " + ec.message());
}

void take(run_figures& f, bool text, std::size_t size, std::size_t expected_size) {
    if (!text) die("beast: a binary message; the server sends text");
    if (size != expected_size)
        die("beast: a message of " + std::to_string(size) + " bytes, expected " +
            std::to_string(expected_size));
    f.bytes += size;
}

class async_receiver {
public:
    async_receiver(net::io_context& io, const target& t, std::size_t n, std::size_t size)
        : ws_(io), target_(t), n_(n), size_(size) {}

    void start() {
        beast::get_lowest_layer(ws_).async_connect(target_.endpoint, [this](beast::error_code ec) {
            check(ec, "connect");
            // As Beast's examples do: the websocket stream keeps its own timeouts.
            beast::get_lowest_layer(ws_).expires_never();
            ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
            ws_.async_handshake(target_.host, target_.path, [this](beast::error_code ec2) {
                check(ec2, "handshake");
                f_.t0 = peer::mono_ns();
                f_.c0 = peer::thread_cpu_ns();
                read();
            });
        });
    }

    const run_figures& figures() const { return f_; }
    bool closed() const { return closed_; }

private:
    void read() {
        ws_.async_read(buf_, [this](beast::error_code ec, std::size_t m) {
            if (ec)
                die("beast async: read failed after " + std::to_string(f_.count) +
                    " messages: " + ec.message());
            take(f_, ws_.got_text(), m, size_);
            buf_.consume(m);
            if (++f_.count == n_) {
                f_.t1 = peer::mono_ns();
                f_.c1 = peer::thread_cpu_ns();
                ws_.async_close(websocket::close_code::normal, [this](beast::error_code ec2) {
                    check(ec2, "close");
                    closed_ = true;
                });
                return;
            }
            read();
        });
    }

    websocket::stream<beast::tcp_stream> ws_;
    beast::flat_buffer buf_;
    target target_;
    std::size_t n_, size_;
    run_figures f_;
    bool closed_ = false;
};

run_figures receive_async(const target& t, std::size_t n, std::size_t size) {
    net::io_context io;
    async_receiver r(io, t, n, size);
    r.start();
    io.run();
    if (!r.closed()) die("beast async: the connection did not close cleanly");
    return r.figures();
}

run_figures receive_sync(const target& t, std::size_t n, std::size_t size) {
    net::io_context io;
    websocket::stream<tcp::socket> ws(io);
    run_figures f;
    ws.next_layer().connect(t.endpoint);
    ws.handshake(t.host, t.path);
    f.t0 = peer::mono_ns();
    f.c0 = peer::thread_cpu_ns();
    beast::flat_buffer buf;
    while (f.count < n) {
        const std::size_t m = ws.read(buf);
        take(f, ws.got_text(), m, size);
        buf.consume(m);
        ++f.count;
    }
    f.t1 = peer::mono_ns();
    f.c1 = peer::thread_cpu_ns();
    ws.close(websocket::close_code::normal);
    return f;
}

// ---- tether on beast_transport ------------------------------------------------------------

using namespace std::chrono_literals;

std::string ws_url(const target& t, const std::string& path) { return "ws://" + t.host + path; }

run_figures receive_tether(const target& t, std::size_t n, std::size_t size) {
    net::io_context io;
    run_figures f;
    bool opened = false, stopped = false;
    {
        tether::beast_transport_options to;
        to.ping_interval =
            0ms; // the server writes raw frames: no pongs among them (as websocketpp)
        tether::client_options o;
        o.url = ws_url(t, t.path);
        tether::basic_reconnecting_client<tether::beast_transport> c(
            o, tether::beast_transport(io, to));
        c.on_open([&](const tether::open_event&) {
            opened = true;
            f.t0 = peer::mono_ns();
            f.c0 = peer::thread_cpu_ns();
        });
        c.on_message([&](const tether::message_view& m) {
            take(f, m.kind == tether::message_kind::text, m.data.size(), size);
            if (++f.count == n) {
                f.t1 = peer::mono_ns();
                f.c1 = peer::thread_cpu_ns();
                c.stop();
            }
        });
        c.on_close([&](const tether::close_event& ev, const tether::reconnect_decision&) {
            if (f.count != n)
                die("beast tether: closed after " + std::to_string(f.count) +
                    " messages: " + ev.detail);
        });
        c.on_stopped([&](const tether::stopped_event&) { stopped = true; });
        c.start();
        io.run();
    }
    io.restart();
    io.run(); // handlers posted by the destructors
    if (!opened) die("beast tether: never opened");
    if (!stopped) die("beast tether: did not stop");
    return f;
}

int cmd_throughput(const peer::options& o, const target& t) {
    const std::string variant = o.str("variant", "async");
    const std::size_t n = o.num("count", 100000), size = o.num("size", 64);
    if (variant != "async" && variant != "sync" && variant != "tether")
        die("--variant is async, sync or tether");
    const run_figures f = variant == "async"  ? receive_async(t, n, size)
                          : variant == "sync" ? receive_sync(t, n, size)
                                              : receive_tether(t, n, size);
    if (f.count != n || f.bytes != n * size)
        die("beast " + variant + " received " + std::to_string(f.count) + " messages (" +
            std::to_string(f.bytes) + " bytes), expected exactly " + std::to_string(n));
    peer::print_throughput(("beast_" + variant).c_str(), f.count, f.bytes, f.t1 - f.t0,
                           f.c1 - f.c0);
    return 0;
}

struct idle_connection {
    explicit idle_connection(net::io_context& io) : ws(io) {}
    websocket::stream<beast::tcp_stream> ws;
    beast::flat_buffer buf;
};

int idle_raw(const target& t, std::size_t k, std::size_t window) {
    net::io_context io;
    std::vector<std::unique_ptr<idle_connection>> conns;
    std::size_t started = 0, opened = 0;
    std::int64_t t0 = 0, t1 = 0;
    std::function<void()> start_next = [&] {
        if (started == k) return;
        ++started;
        conns.push_back(std::make_unique<idle_connection>(io));
        idle_connection& c = *conns.back();
        beast::get_lowest_layer(c.ws).async_connect(t.endpoint, [&](beast::error_code ec) {
            check(ec, "idle connect");
            beast::get_lowest_layer(c.ws).expires_never();
            c.ws.set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
            c.ws.async_handshake(t.host, t.path, [&](beast::error_code ec2) {
                check(ec2, "idle handshake");
                c.ws.async_read(c.buf, [](beast::error_code ec3, std::size_t) {
                    die("beast idle: an idle connection " +
                        (ec3 ? "failed: " + ec3.message() : std::string("received a message")));
                });
                if (++opened == k) {
                    t1 = peer::mono_ns();
                    io.stop();
                    return;
                }
                start_next();
            });
        });
    };
    conns.reserve(k);
    const long rss0 = peer::proc_status_kb("VmRSS");
    const int threads0 = peer::thread_count();
    t0 = peer::mono_ns();
    for (std::size_t i = 0; i < window; ++i)
        start_next();
    io.run();
    if (opened != k)
        die("only " + std::to_string(opened) + " of " + std::to_string(k) + " connections opened");
    io.restart();
    io.run_for(std::chrono::milliseconds(200)); // as tether_bench idle: let handlers settle
    const long rss1 = peer::proc_status_kb("VmRSS");
    peer::print_idle("beast", k, rss0, rss1, threads0, t1 - t0);
    std::_Exit(0); // skip tearing down thousands of connections one by one
}

int idle_tether(const target& t, std::size_t k, std::size_t window) {
    using client_t = tether::basic_reconnecting_client<tether::beast_transport>;
    net::io_context io;
    // A first transport, made and kept before the first reading: what a process
    // pays once (the transport's code and statics; a TLS trust store, when the
    // settings load one: shared_tls_client_context) is reported on its own
    // (setup_kb), and the delta is the per-connection cost.
    const long rss_setup0 = peer::proc_status_kb("VmRSS");
    const tether::beast_transport first(io);
    const long setup_kb = peer::proc_status_kb("VmRSS") - rss_setup0;
    std::vector<std::unique_ptr<client_t>> clients;
    std::size_t started = 0, opened = 0;
    std::int64_t t0 = 0, t1 = 0;
    const std::string url = ws_url(t, t.path);
    std::function<void()> start_next = [&] {
        if (started == k) return;
        ++started;
        tether::client_options o;
        o.url = url;
        clients.push_back(std::make_unique<client_t>(o, tether::beast_transport(io)));
        client_t& c = *clients.back();
        c.on_open([&](const tether::open_event&) {
            if (++opened == k) {
                t1 = peer::mono_ns();
                io.stop();
                return;
            }
            start_next();
        });
        c.on_close([](const tether::close_event& ev, const tether::reconnect_decision&) {
            die("beast tether idle: an idle connection closed: " + ev.detail);
        });
        c.start();
    };
    clients.reserve(k);
    const long rss0 = peer::proc_status_kb("VmRSS");
    const int threads0 = peer::thread_count();
    t0 = peer::mono_ns();
    for (std::size_t i = 0; i < window; ++i)
        start_next();
    io.run();
    if (opened != k)
        die("only " + std::to_string(opened) + " of " + std::to_string(k) + " connections opened");
    io.restart();
    io.run_for(std::chrono::milliseconds(200)); // as tether_bench idle: let handlers settle
    const long rss1 = peer::proc_status_kb("VmRSS");
    peer::print_idle("beast_tether", k, rss0, rss1, threads0, t1 - t0, setup_kb);
    std::_Exit(0);
}

int cmd_idle(const peer::options& o, const target& t) {
    const std::size_t k = o.num("count", 1000), window = o.num("window", 128);
    const std::string variant = o.str("variant", "beast");
    if (variant != "beast" && variant != "tether") die("--variant is beast or tether");
    peer::raise_nofile(static_cast<rlim_t>(k + 1024));
    return variant == "beast" ? idle_raw(t, k, window) : idle_tether(t, k, window);
}

// ---- reconnect after an expiry close (tether on beast_transport) -----------------------------

namespace http = beast::http;

/// A token fetcher (a TokenPolicy, the shared_token_source's Fetcher): one
/// POST to the server's /oauth/token per fetch on a new connection, written
/// as a fixed request and read to the end (the endpoint answers with
/// Connection: close), the JSON answer read for access_token and expires_in.
/// What oauth2_client_credentials does in standalone mode, reduced to what
/// the benchmark's endpoint needs, on plain sockets (Beast's HTTP client
/// would cost this TU more compile time).
class beast_token_fetcher {
public:
    beast_token_fetcher(net::io_context& io, tcp::endpoint ep)
        : s_(std::make_shared<shared>(io, ep)) {}

    template <class Handler> void async_get_token(Handler&& h) {
        auto op = std::make_shared<fetch>(s_->io);
        op->handler = std::forward<Handler>(h);
        s_->current = op;
        const std::string body =
            "grant_type=client_credentials&client_id=bench&client_secret=bench-secret";
        op->request =
            "POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(s_->endpoint.port()) +
            "\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: " +
            std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
        op->socket.async_connect(s_->endpoint, [op](beast::error_code ec) {
            if (ec) return op->fail("connect: " + ec.message());
            net::async_write(op->socket, net::buffer(op->request),
                             [op](beast::error_code ec2, std::size_t) {
                                 if (ec2) return op->fail("write: " + ec2.message());
                                 net::async_read(op->socket, net::dynamic_buffer(op->answer),
                                                 [op](beast::error_code ec3, std::size_t) {
                                                     if (ec3 && ec3 != net::error::eof)
                                                         return op->fail("read: " + ec3.message());
                                                     op->done();
                                                 });
                             });
        });
    }
    void invalidate(const tether::secret&) {}
    void cancel() {
        if (auto op = s_->current.lock()) {
            beast::error_code ignored;
            op->socket.close(ignored);
        }
    }

private:
    struct fetch {
        explicit fetch(net::io_context& io) : socket(io) {}
        tcp::socket socket;
        std::string request, answer;
        std::function<void(tether::token_result)> handler;

        void fail(const std::string& why) {
            handler(tether::token_result::failure(
                make_error_code(tether::error::token_request_failed), "beast fetcher: " + why));
        }
        void done() {
            const std::string& a = answer;
            const std::string key = "\"access_token\":\"";
            const auto at = a.find(key);
            const auto end = at == std::string::npos ? at : a.find('"', at + key.size());
            if (a.compare(0, 13, "HTTP/1.1 200 ") != 0 || end == std::string::npos)
                return fail("unexpected answer: " + a);
            tether::token tok(tether::secret(a.substr(at + key.size(), end - at - key.size())));
            const auto life = a.find("\"expires_in\":");
            if (life != std::string::npos)
                tok.lifetime =
                    std::chrono::seconds(std::strtol(a.c_str() + life + 13, nullptr, 10));
            tok.fresh = true;
            handler(tether::token_result::success(std::move(tok)));
        }
    };
    struct shared {
        shared(net::io_context& i, tcp::endpoint e) : io(i), endpoint(e) {}
        net::io_context& io;
        tcp::endpoint endpoint;
        std::weak_ptr<fetch> current;
    };
    std::shared_ptr<shared> s_;
};

std::int64_t close_stamp(const tether::close_event& ev) {
    const auto at = ev.reason.find('@');
    if (ev.code != 4001 || at == std::string::npos)
        die("beast tether: expected close 4001 'Token expired @<ns>', got " +
            std::to_string(ev.code) + " '" + ev.reason + "' " + ev.detail);
    return std::stoll(ev.reason.substr(at + 1));
}

/// The baseline: a fresh raw Beast connect with a bearer token as Beast's
/// async client example makes one (async_resolve of the URL's host, as
/// tether and websocketpp do, then the set-up of the async client above),
/// timed from the start to the end of the handshake, then closed; `done`
/// runs once the close completed.
class baseline_connect {
public:
    baseline_connect(net::io_context& io, const target& t) : io_(io), target_(t), resolver_(io) {}

    std::string token;
    std::vector<double> connect_ms;

    void run(std::function<void()> done) {
        auto ws = std::make_shared<websocket::stream<beast::tcp_stream>>(io_);
        const std::int64_t t0 = peer::mono_ns();
        resolver_.async_resolve(
            target_.endpoint.address().to_string(), std::to_string(target_.endpoint.port()),
            [this, ws, t0, done](beast::error_code ec, tcp::resolver::results_type r) {
                check(ec, "baseline resolve");
                connected(ws, t0, done, r);
            });
    }

private:
    void connected(const std::shared_ptr<websocket::stream<beast::tcp_stream>>& ws, std::int64_t t0,
                   const std::function<void()>& done, const tcp::resolver::results_type& r) {
        beast::get_lowest_layer(*ws).async_connect(r, [this, ws, t0, done](beast::error_code ec,
                                                                           const tcp::endpoint&) {
            check(ec, "baseline connect");
            beast::get_lowest_layer(*ws).expires_never();
            ws->set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
            ws->set_option(websocket::stream_base::decorator(
                [bearer = "Bearer " + token](websocket::request_type& r) {
                    r.set(http::field::authorization, bearer);
                }));
            ws->async_handshake(
                target_.host, "/baseline", [this, ws, t0, done](beast::error_code ec2) {
                    check(ec2, "baseline handshake");
                    connect_ms.push_back(static_cast<double>(peer::mono_ns() - t0) / 1e6);
                    ws->async_close(websocket::close_code::normal,
                                    [ws, done](beast::error_code ec3) {
                                        check(ec3, "baseline close");
                                        done();
                                    });
                });
        });
    }

    net::io_context& io_;
    target target_;
    tcp::resolver resolver_;
};

int cmd_reconnect(const peer::options& o, const target& t) {
    const std::size_t cycles = o.num("cycles", 200), token_port = o.num("token-port", 0);
    const int command_fd = static_cast<int>(o.num("command-fd", 0));
    if (token_port == 0 || token_port > 65535 || command_fd <= 2)
        die("reconnect needs --token-port and --command-fd (the server's command pipe)");
    const tcp::endpoint token_ep(net::ip::make_address("127.0.0.1"),
                                 static_cast<unsigned short>(token_port));
    const auto expire = [command_fd] {
        const char x = 'x';
        if (write(command_fd, &x, 1) != 1) die("the server's command pipe is broken");
    };
    net::io_context io;
    std::vector<double> cycle_ms, close_event_ms;
    {
        using source_t = tether::shared_token_source<beast_token_fetcher>;
        source_t source(beast_token_fetcher(io, token_ep),
                        tether::steady_timing(io.get_executor()));
        auto other = source.handle();
        beast_token_fetcher base_fetcher(io, token_ep);
        baseline_connect base(io, t);
        tether::client_options co;
        co.url = ws_url(t, "/seed/fresh-beast");
        co.auth_failure_uptime = 0ms; // cycles are short: an expiry close is never a rejection here
        tether::default_close_policy::options cpo;
        cpo.application_codes = tether::close_action::refresh_token_then_reconnect; // 4001
        using client_t =
            tether::basic_reconnecting_client<tether::beast_transport, source_t::handle_type>;
        client_t c(co, tether::beast_transport(io), source.handle(),
                   tether::default_close_policy(cpo));
        std::size_t opens = 0;
        std::int64_t closed_at = 0, close_seen_at = 0;
        std::uint64_t fetches_at_close = 0;
        bool stopping = false;
        const auto refresh_then_close = [&] {
            // the background refresh: drop the current token, fetch the next
            other.async_get_token([&](tether::token_result r) {
                if (r.error) die("beast tether: token: " + r.detail);
                net::post(io, [&, current = r.value.value] {
                    other.invalidate(current);
                    other.async_get_token([&, current](tether::token_result r2) {
                        if (r2.error || r2.value.value == current)
                            die("beast tether: the background refresh failed: " + r2.detail);
                        net::post(io, expire);
                    });
                });
            });
        };
        c.on_close([&](const tether::close_event& ev, const tether::reconnect_decision& d) {
            if (stopping) return;
            close_seen_at = peer::mono_ns();
            closed_at = close_stamp(ev);
            fetches_at_close = source.stats().fetches;
            if (d.action != tether::close_action::refresh_token_then_reconnect)
                die("beast tether: 4001 did not mean refresh");
        });
        c.on_open([&](const tether::open_event&) {
            if (++opens > 1) {
                const std::int64_t now = peer::mono_ns();
                cycle_ms.push_back(static_cast<double>(now - closed_at) / 1e6);
                close_event_ms.push_back(static_cast<double>(close_seen_at - closed_at) / 1e6);
                if (source.stats().fetches != fetches_at_close)
                    die("beast tether: the reconnect fetched a token: it was not fresh");
            }
            if (opens > cycles) {
                stopping = true;
                c.stop();
                return;
            }
            base.run(refresh_then_close);
        });
        c.on_stopped([&](const tether::stopped_event& e) {
            if (!stopping) die("beast tether: client stopped: " + e.reason.message());
            io.stop(); // the source's refresh timer (an hour away) would keep run() busy
        });
        base_fetcher.async_get_token([&](tether::token_result r) {
            if (r.error) die("beast tether: baseline token: " + r.detail);
            base.token = std::string(r.value.value.reveal());
            c.start();
        });
        io.run();
        if (cycle_ms.size() != cycles)
            die("beast tether: only " + std::to_string(cycle_ms.size()) + " reconnects");
        std::printf(
            "{\"kind\": \"reconnect\", \"variant\": \"beast_fresh\", \"cycles\": %zu, %s, %s, "
            "%s, \"optimized\": %s}\n",
            cycles, peer::summary_json("reconnect", cycle_ms).c_str(),
            peer::summary_json("close_frame_to_on_close", close_event_ms).c_str(),
            peer::summary_json("baseline", base.connect_ms).c_str(),
            peer::optimized() ? "true" : "false");
        std::fflush(stdout);
    }
    io.restart();
    io.run_for(std::chrono::milliseconds(100)); // handlers posted by the destructors
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    const peer::options o(argc, argv);
    try {
        target t;
        const std::size_t port = o.num("port", 0);
        if (port == 0 || port > 65535) die("--port is required");
        t.endpoint =
            tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port));
        t.host = "127.0.0.1:" + std::to_string(port);
        t.path = o.str("path", "/stream");
        if (o.mode == "throughput") return cmd_throughput(o, t);
        if (o.mode == "idle") return cmd_idle(o, t);
        if (o.mode == "reconnect") return cmd_reconnect(o, t);
    } catch (const std::exception& e) {
        die(std::string("beast: exception: ") + e.what());
    }
    die("usage: tether_bench_beast throughput|idle|reconnect --port P [--name value]...");
}
