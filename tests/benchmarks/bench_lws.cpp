// Baseline: a raw libwebsockets (4.1) client, plain ws://, on lws's own event
// loop (lws_service). Run by tether_bench, which owns the server
// (bench_server.hpp); see bench_peer.hpp.
//
//   tether_bench_lws throughput --port P --count N --size S
//     One context, one client connection. lws hands the payload over in
//     pieces (at most rx_buffer_size bytes each); a message is counted when
//     lws_is_final_fragment() says its last piece has arrived. Timed from
//     LWS_CALLBACK_CLIENT_ESTABLISHED to the N-th message (wall clock and this
//     thread's CPU); then a normal close.
//   tether_bench_lws idle --port P --count K [--window W]
//     One context, K client connections (W handshakes in flight); VmRSS
//     before and after.
//
// Settings, the same in both modes: LWS_SERVER_OPTION_VALIDATE_UTF8 (the raw
// websocketpp client validates UTF-8 too), rx_buffer_size and
// pt_serv_buf_size 16384 (websocketpp reads into a 16 KiB buffer; lws's
// default is 4096), no extensions (no permessage-deflate), no subprotocol.
#include "bench_peer.hpp"

#include <libwebsockets.h>

#include <csignal>

namespace {

using peer::die;

constexpr std::size_t read_size = 16384;

struct state {
    bool idle = false;
    std::size_t n = 0, size = 0;
    // throughput
    std::size_t count = 0, bytes = 0, piece_bytes = 0;
    std::int64_t t0 = 0, t1 = 0, c0 = 0, c1 = 0;
    bool established = false, closed = false;
    // idle
    std::size_t started = 0, opened = 0;
    std::int64_t open_done = 0;
    // where to connect
    lws_context* ctx = nullptr;
    int port = 0;
    const char* path = "/stream";
};

void connect_one(state& s) {
    lws_client_connect_info ci;
    std::memset(&ci, 0, sizeof ci);
    ci.context = s.ctx;
    ci.address = "127.0.0.1";
    ci.port = s.port;
    ci.path = s.path;
    ci.host = "127.0.0.1";
    ci.origin = "127.0.0.1";
    ci.protocol = nullptr; // no Sec-WebSocket-Protocol: the server offers none
    ci.local_protocol_name = "tether-bench";
    ci.ietf_version_or_minus_one = -1;
    if (!lws_client_connect_via_info(&ci)) die("lws: lws_client_connect_via_info failed");
}

void start_next(state& s) {
    if (s.started == s.n) return;
    ++s.started;
    connect_one(s);
}

int callback(lws* wsi, lws_callback_reasons reason, void* /*user*/, void* in, size_t len) {
    lws_context* ctx = lws_get_context(wsi);
    if (!ctx) return 0;
    auto* sp = static_cast<state*>(lws_context_user(ctx));
    if (!sp) return 0;
    state& s = *sp;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        die(std::string("lws: connection failed: ") +
            (in ? std::string(static_cast<const char*>(in), len) : std::string("(no reason)")));
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (s.idle) {
            if (++s.opened == s.n) {
                s.open_done = peer::mono_ns();
                return 0;
            }
            start_next(s);
            return 0;
        }
        s.established = true;
        s.t0 = peer::mono_ns();
        s.c0 = peer::thread_cpu_ns();
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (s.idle) die("lws idle: an idle connection received data");
        if (lws_frame_is_binary(wsi)) die("lws: a binary message; the server sends text");
        s.piece_bytes += len;
        if (!lws_is_final_fragment(wsi)) return 0;
        if (s.piece_bytes != s.size)
            die("lws: a message of " + std::to_string(s.piece_bytes) + " bytes, expected " +
                std::to_string(s.size));
        s.bytes += s.piece_bytes;
        s.piece_bytes = 0;
        if (++s.count == s.n) {
            s.t1 = peer::mono_ns();
            s.c1 = peer::thread_cpu_ns();
            lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, nullptr, 0);
            return -1; // lws sends the close frame with the reason above
        }
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (s.idle) die("lws idle: an idle connection closed");
        if (s.count != s.n)
            die("lws: the connection closed after " + std::to_string(s.count) + " messages");
        s.closed = true;
        return 0;
    default: return 0;
    }
}

const lws_protocols protocols[] = {
    {"tether-bench", callback, 0, read_size, 0, nullptr, 0},
    {nullptr, nullptr, 0, 0, 0, nullptr, 0},
};

lws_context* make_context(state& s, std::size_t fds) {
    lws_set_log_level(LLL_ERR, nullptr);
    lws_context_creation_info info;
    std::memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.gid = -1;
    info.uid = -1;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    info.pt_serv_buf_size = read_size;
    info.fd_limit_per_thread = static_cast<unsigned int>(fds);
    info.user = &s;
    lws_context* ctx = lws_create_context(&info);
    if (!ctx) die("lws: lws_create_context failed");
    return ctx;
}

int cmd_throughput(const peer::options& o, state& s) {
    s.n = o.num("count", 100000);
    s.size = o.num("size", 64);
    s.ctx = make_context(s, 64);
    connect_one(s);
    while (!s.closed)
        if (lws_service(s.ctx, 0) < 0) die("lws: lws_service failed");
    if (!s.established) die("lws: never established");
    if (s.count != s.n || s.bytes != s.n * s.size)
        die("lws received " + std::to_string(s.count) + " messages (" + std::to_string(s.bytes) +
            " bytes), expected exactly " + std::to_string(s.n));
    lws_context_destroy(s.ctx);
    peer::print_throughput("lws", s.count, s.bytes, s.t1 - s.t0, s.c1 - s.c0);
    return 0;
}

int cmd_idle(const peer::options& o, state& s) {
    s.idle = true;
    s.n = o.num("count", 1000);
    const std::size_t window = o.num("window", 128);
    peer::raise_nofile(static_cast<rlim_t>(s.n + 1024));
    s.ctx = make_context(s, s.n + 64);
    const long rss0 = peer::proc_status_kb("VmRSS");
    const int threads0 = peer::thread_count();
    const std::int64_t t0 = peer::mono_ns();
    for (std::size_t i = 0; i < window; ++i)
        start_next(s);
    while (s.opened < s.n)
        if (lws_service(s.ctx, 0) < 0) die("lws: lws_service failed");
    // As tether_bench idle: 200 ms more for the last handlers. lws_service(ctx, 0)
    // sleeps until the next event (here about 30 s away); a negative timeout
    // makes it return at once, so poll every millisecond.
    const std::int64_t settle = peer::mono_ns() + 200000000;
    while (peer::mono_ns() < settle) {
        if (lws_service(s.ctx, -1) < 0) die("lws: lws_service failed");
        usleep(1000);
    }
    const long rss1 = peer::proc_status_kb("VmRSS");
    peer::print_idle("lws", s.n, rss0, rss1, threads0, s.open_done - t0);
    std::_Exit(0); // skip tearing down thousands of connections one by one
}

} // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    const peer::options o(argc, argv);
    static state s;
    const std::size_t port = o.num("port", 0);
    if (port == 0 || port > 65535) die("--port is required");
    s.port = static_cast<int>(port);
    static const std::string path = o.str("path", "/stream");
    s.path = path.c_str();
    if (o.mode == "throughput") return cmd_throughput(o, s);
    if (o.mode == "idle") return cmd_idle(o, s);
    die("usage: tether_bench_lws throughput|idle --port P [--name value]...");
}
