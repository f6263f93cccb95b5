// Baseline: a raw Boost.Beast client (header-only Beast over Boost.Asio,
// plain ws://), written as Beast's own examples write one. Run by tether_bench,
// which owns the server (bench_server.hpp); see bench_peer.hpp.
//
//   tether_bench_beast throughput --variant async|sync --port P --count N --size S
//     async: websocket::stream<beast::tcp_stream>, one async_read into a
//            flat_buffer per message (one completion per message), then
//            async_close.
//     sync:  websocket::stream<tcp::socket>, ws.read(buffer) in a loop, then
//            close().
//     Timed from the end of the handshake to the N-th message (wall clock and
//     this thread's CPU). Every message must be text of exactly S bytes.
//   tether_bench_beast idle --port P --count K [--window W]
//     K connections on one io_context (W handshakes in flight), each with an
//     async_read pending into its own flat_buffer, as a client waiting for
//     messages has; VmRSS before and after.
//
// Beast's defaults are kept: UTF-8 validation of text messages is on (the raw
// websocketpp client validates too), no permessage-deflate, no auto-fragment
// concern (the client only receives).
#include "bench_peer.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <chrono>
#include <csignal>
#include <functional>
#include <memory>
#include <vector>

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

int cmd_throughput(const peer::options& o, const target& t) {
    const std::string variant = o.str("variant", "async");
    const std::size_t n = o.num("count", 100000), size = o.num("size", 64);
    if (variant != "async" && variant != "sync") die("--variant is async or sync");
    const run_figures f = variant == "async" ? receive_async(t, n, size) : receive_sync(t, n, size);
    if (f.count != n || f.bytes != n * size)
        die("beast " + variant + " received " + std::to_string(f.count) + " messages (" +
            std::to_string(f.bytes) + " bytes), expected exactly " + std::to_string(n));
    peer::print_throughput(variant == "async" ? "beast_async" : "beast_sync", f.count, f.bytes,
                           f.t1 - f.t0, f.c1 - f.c0);
    return 0;
}

struct idle_connection {
    explicit idle_connection(net::io_context& io) : ws(io) {}
    websocket::stream<beast::tcp_stream> ws;
    beast::flat_buffer buf;
};

int cmd_idle(const peer::options& o, const target& t) {
    const std::size_t k = o.num("count", 1000), window = o.num("window", 128);
    peer::raise_nofile(static_cast<rlim_t>(k + 1024));
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
    } catch (const std::exception& e) {
        die(std::string("beast: exception: ") + e.what());
    }
    die("usage: tether_bench_beast throughput|idle --port P [--name value]...");
}
