// tether: a production Transport on Boost.Beast over Boost.Asio (Boost >= 1.81).
//
// The same behaviour as websocketpp_transport (see that header and
// docs/transports.md): ws:// and wss:// in one type, TLS peers and host names
// verified by default, the token where the server wants it and never in clear
// to a host that is not loopback, refused handshakes reported with status,
// headers, a bounded body excerpt and Retry-After, one overall handshake
// deadline, pings with a pong deadline, an idle timeout, a close timeout and
// a maximum message size. The executor and timers are Boost.Asio's.
//
// Threading: run the io_context on ONE thread and call the transport from
// that thread (the client does: it lives on the transport's executor). The
// transport refuses an io_context whose handlers it sees on a second thread:
// that connection and every later one fail with error::connection_failed and
// a detail saying so ("run it on one thread"), as websocketpp_transport does.
// Destroy the transport before the io_context, and not from inside one of its
// sink calls.
//
// Cancellation: close() before the handshake completed, the handshake
// deadline, or the transport's destruction closes the socket at once, inside
// the call, so no byte of the upgrade request (no credential) leaves
// afterwards. After the transport is destroyed no sink is called.
//
// The peer's close frame is reported when it arrives (Beast's control
// callback), not after the TCP teardown that follows it: Beast then answers
// the close in the background. The teardown itself does not wait for the
// peer's FIN either (see beast_tcp_socket): a close is reported in both
// directions as soon as the close frames are exchanged.
//
// Memory per idle connection: every connection's deadlines (handshake, ping,
// pong, idle check, close, linger) are entries in one queue per io_context
// behind one timer, shared by every beast_transport on it (deadline_queue),
// not timers and pending waits of its own; what only the opening handshake
// needs (the upgrade request's strings, the response, the resolver, proxy
// state) is allocated by connect() and dropped on open. Beast's own timer
// (its stream's timeout option) still bounds closing handshakes and teardowns.
//
// HTTP proxy (`proxy`, none by default): as websocketpp_transport, the
// transport connects to the proxy, opens a CONNECT tunnel to the origin on
// that socket (detail/proxy_tunnel.hpp builds the request and judges the
// answer) and only then starts TLS (with the origin's SNI and name) and the
// upgrade. The handshake deadline covers the CONNECT exchange too.
//
// With the client: define TETHER_USE_BOOST_ASIO (Boost mode, detail/net.hpp)
// so tether's own networking runs on Boost.Asio too (docs/transports.md).
//
//     boost::asio::io_context io;
//     tether::beast_transport_options o;
//     o.tls.ca_file = "/etc/ssl/my-ca.pem";
//     tether::beast_transport t(io, o);
#ifndef TETHER_TRANSPORT_BEAST_TRANSPORT_HPP
#define TETHER_TRANSPORT_BEAST_TRANSPORT_HPP

#include <tether/close_event.hpp>
#include <tether/connect_request.hpp>
#include <tether/detail/beast_scanning_stream.hpp>
#include <tether/detail/close_payload.hpp>
#include <tether/detail/connection_map.hpp>
#include <tether/detail/printable.hpp>
#include <tether/detail/proxy_tunnel.hpp>
#include <tether/detail/retry_after.hpp>
#include <tether/detail/shared_copy.hpp>
#include <tether/detail/tls_native.hpp>
#include <tether/detail/url.hpp>
#include <tether/detail/wake_heap.hpp>
#include <tether/detail/wipe.hpp>
#include <tether/error.hpp>
#include <tether/message.hpp>
#include <tether/proxy.hpp>
#include <tether/tls_options.hpp>
#include <tether/transport/transport_options.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/websocket/error.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <boost/version.hpp>

#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#if BOOST_VERSION < 108100
#error "tether: beast_transport needs Boost 1.81 or newer (Boost.Beast)"
#endif

TETHER_NAMESPACE_BEGIN

struct beast_transport_options {
    token_placement token_in = token_placement::authorization_header;
    /// Query parameter name for token_placement::query_parameter. Note that
    /// URLs end up in proxy and server access logs; prefer the header.
    std::string token_query_parameter = "access_token";
    /// Prepended to the token for token_placement::subprotocol; the token must
    /// then consist of HTTP token characters. If the server selects that
    /// entry, open_info reports it as "[token]".
    std::string token_subprotocol_prefix;

    std::vector<http_header> headers;      ///< sent on every upgrade, before the request's own
    std::vector<std::string> subprotocols; ///< offered on every upgrade, before the request's own
    std::string user_agent = "tether/0.1";

    tls_options tls;

    /// Allow a token over plain ws:// to a host that is not loopback. Anyone
    /// on the path can read and replay it.
    bool allow_insecure_token_transport = false;

    /// Tunnel through an HTTP proxy (CONNECT); none by default. A token over
    /// plain ws:// (loopback origin) then also needs a loopback proxy.
    proxy_options proxy;

    /// DNS + TCP + (proxy CONNECT) + TLS + upgrade must finish within this.
    std::chrono::milliseconds handshake_timeout{10000};
    /// After close() (or the peer's close frame), the closing handshake and the
    /// TCP teardown get this long before the socket is closed.
    std::chrono::milliseconds close_timeout{5000};
    /// A ping every ping_interval (0: never); nothing received within
    /// pong_timeout of a ping means the connection is dead.
    std::chrono::milliseconds ping_interval{20000};
    std::chrono::milliseconds pong_timeout{10000};
    /// No frame of any kind for this long means the connection is dead (0: off).
    std::chrono::milliseconds idle_timeout{0};

    /// Larger incoming messages close the connection with 1009.
    std::size_t max_message_size = 16u * 1024u * 1024u;
    /// Bytes of a refused handshake's body kept in close_event::body_excerpt.
    /// (Beast reads the whole refusal body, up to its parser's 8 MB limit,
    /// within the handshake deadline; only this much is kept.)
    std::size_t max_body_excerpt = 512;

    /// Offer permessage-deflate (RFC 7692). Off by default: zlib state costs
    /// memory on every connection that negotiates it. zlib's formula: deflate
    /// (1 << (window_bits + 2)) + (1 << (mem_level + 9)), inflate
    /// (1 << window_bits) + ~7 KiB; at 15 / 4 on both sides about 175 KiB per
    /// connection. The server picks the window sizes: measured against Python
    /// websockets 10.4 (which answers 12 / 12), 58.6 KB of heap per open
    /// connection instead of 17.9 KB without ("beast measure" test,
    /// docs/transports.md).
    bool permessage_deflate = false;
    int deflate_window_bits = 15; ///< 9..15, client_max_window_bits offered
    int deflate_mem_level = 4;    ///< 1..9 (Beast's default)

    /// false (default): the peer's close frame is reported from Beast's
    /// control callback, as soon as it is parsed; true: when Beast's read
    /// completes, after it answered the close and tore the connection down.
    /// Since the teardown does not wait for the peer (beast_tcp_socket), both
    /// are prompt; true only adds the write of our answering close frame.
    bool report_close_after_teardown = false;

    /// Throws std::system_error (error::invalid_option) naming the bad option.
    void validate() const {
        const auto fail = [](const std::string& what) {
            throw detail::invalid_option("tether: beast_transport_options: " + what);
        };
        if (handshake_timeout.count() <= 0) fail("handshake_timeout must be positive");
        if (close_timeout.count() <= 0) fail("close_timeout must be positive");
        if (ping_interval.count() < 0) fail("ping_interval must not be negative");
        if (ping_interval.count() > 0 && pong_timeout.count() <= 0)
            fail("pong_timeout must be positive when pings are enabled");
        if (idle_timeout.count() < 0) fail("idle_timeout must not be negative");
        if (max_message_size == 0) fail("max_message_size must be at least 1");
        if (deflate_window_bits < 9 || deflate_window_bits > 15)
            fail("deflate_window_bits must be within 9..15");
        if (deflate_mem_level < 1 || deflate_mem_level > 9)
            fail("deflate_mem_level must be within 1..9");
        proxy.validate("beast_transport_options");
        if (token_in == token_placement::query_parameter && token_query_parameter.empty())
            fail("token_query_parameter must not be empty");
        if (!token_subprotocol_prefix.empty() && !detail::is_http_token(token_subprotocol_prefix))
            fail("token_subprotocol_prefix must consist of HTTP token characters");
        if (!detail::is_safe_header_value(user_agent))
            fail("user_agent contains a control character");
        for (const auto& h : headers)
            if (!detail::is_http_token(h.first) || !detail::is_safe_header_value(h.second))
                fail("header '" + h.first + "' is not a valid HTTP header");
        for (const auto& p : subprotocols)
            if (!detail::is_http_token(p)) fail("subprotocol '" + p + "' is not a valid token");
    }
};

namespace detail {

/// True when two Beast transports may share one copy of these options.
/// Compares every field (a field added to beast_transport_options must be
/// added here); a proxy configuration is never shared (it may hold
/// credentials), and "not the same" only costs a copy. As
/// same_transport_settings (websocketpp_transport.hpp).
inline bool same_beast_transport_settings(const beast_transport_options& a,
                                          const beast_transport_options& b) {
    const auto direct = [](const proxy_options& p) {
        return !p.https && !p.http && p.no_proxy.empty() && p.no_proxy.text().empty();
    };
    return a.token_in == b.token_in && a.token_query_parameter == b.token_query_parameter &&
           a.token_subprotocol_prefix == b.token_subprotocol_prefix && a.headers == b.headers &&
           a.subprotocols == b.subprotocols && a.user_agent == b.user_agent &&
           same_tls_settings(a.tls, b.tls) &&
           a.allow_insecure_token_transport == b.allow_insecure_token_transport &&
           direct(a.proxy) && direct(b.proxy) && a.handshake_timeout == b.handshake_timeout &&
           a.close_timeout == b.close_timeout && a.ping_interval == b.ping_interval &&
           a.pong_timeout == b.pong_timeout && a.idle_timeout == b.idle_timeout &&
           a.max_message_size == b.max_message_size && a.max_body_excerpt == b.max_body_excerpt &&
           a.permessage_deflate == b.permessage_deflate &&
           a.deflate_window_bits == b.deflate_window_bits &&
           a.deflate_mem_level == b.deflate_mem_level &&
           a.report_close_after_teardown == b.report_close_after_teardown;
}

/// Validated options, shared among transports made with equal options while
/// one of them is alive (detail::shared_copy): the options are hundreds of
/// bytes and every client owns its transport. Read-only once made.
/// Throws std::system_error (error::invalid_option) for invalid options.
inline std::shared_ptr<const beast_transport_options>
shared_beast_transport_options(beast_transport_options o) {
    o.validate();
    return shared_copy(std::move(o), &same_beast_transport_settings);
}

/// A sink's three thunks, one table per sink type.
struct beast_sink_thunks {
    void (*open)(void*, connection_id, const open_info&);
    void (*message)(void*, connection_id, const message_view&);
    void (*close)(void*, connection_id, close_event&&);
};

template <class Sink> struct beast_sink_table {
    static void open(void* p, connection_id id, const open_info& i) {
        static_cast<Sink*>(p)->on_transport_open(id, i);
    }
    static void message(void* p, connection_id id, const message_view& m) {
        static_cast<Sink*>(p)->on_transport_message(id, m);
    }
    static void close(void* p, connection_id id, close_event&& e) {
        static_cast<Sink*>(p)->on_transport_close(id, std::move(e));
    }
    static constexpr beast_sink_thunks thunks{&open, &message, &close};
};

/// A sink, type-erased without allocation: the object and its type's thunk
/// table (16 bytes in every connection, where three thunks took 32).
struct beast_sink_ref {
    void* self = nullptr;
    const beast_sink_thunks* thunks = nullptr;

    void open(void* p, connection_id id, const open_info& i) const { thunks->open(p, id, i); }
    void message(void* p, connection_id id, const message_view& m) const {
        thunks->message(p, id, m);
    }
    void close(void* p, connection_id id, close_event&& e) const {
        thunks->close(p, id, std::move(e));
    }

    template <class Sink> static beast_sink_ref to(Sink& s) {
        beast_sink_ref r;
        r.self = &s;
        r.thunks = &beast_sink_table<Sink>::thunks;
        return r;
    }
};

/// RFC 3629 UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
/// Beast checks incoming text but not outgoing; websocketpp checks both.
inline bool is_valid_utf8(std::string_view s) noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const auto* end = p + s.size();
    while (p < end) {
        const unsigned char c = *p;
        if (c < 0x80) {
            ++p;
            continue;
        }
        int n = 0;
        unsigned char lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf)
            n = 1;
        else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            if (c == 0xe0) lo = 0xa0;
            if (c == 0xed) hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            if (c == 0xf0) lo = 0x90;
            if (c == 0xf4) hi = 0x8f;
        } else
            return false;
        if (end - p <= n) return false;
        if (p[1] < lo || p[1] > hi) return false;
        for (int i = 2; i <= n; ++i)
            if (p[i] < 0x80 || p[i] > 0xbf) return false;
        p += n + 1;
    }
    return true;
}

/// tcp::socket under a name of our own, so that argument-dependent lookup
/// finds the async_teardown overloads below before Beast's. Beast's teardown
/// after the closing handshake (or after failing the connection) shuts down
/// the send side and then reads until the peer closes TCP, with no time limit
/// on that path: a peer that never closes kept a protocol error or a close
/// from ever being reported. RFC 6455 7.1.1 lets a client close the TCP
/// connection once close frames were exchanged, and 7.1.7 when it fails the
/// connection: so the transport closes at once. The cost: the TIME_WAIT state
/// stays on the client's side rather than the server's.
class beast_tcp_socket : public boost::asio::ip::tcp::socket {
public:
    using boost::asio::ip::tcp::socket::socket;
};

/// Closes at once and completes through the socket's executor (never inline).
template <class Handler>
void async_teardown(boost::beast::role_type, beast_tcp_socket& s, Handler&& handler) {
    boost::system::error_code ignored;
    s.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ignored);
    s.close(ignored);
    boost::asio::post(s.get_executor(),
                      boost::beast::bind_front_handler(std::forward<Handler>(handler),
                                                       boost::system::error_code()));
}

/// The same under TLS: no close_notify exchange, whose answer many servers
/// never send (the WebSocket close frames already ended the session).
template <class Handler>
void async_teardown(boost::beast::role_type role, boost::asio::ssl::stream<beast_tcp_socket>& s,
                    Handler&& handler) {
    async_teardown(role, s.next_layer(), std::forward<Handler>(handler));
}

/// Boost.Asio's ssl::context around the very SSL_CTX that
/// shared_tls_client_context() built on tether::net (standalone Asio by
/// default, Boost.Asio in Boost mode), so the transports, OAuth 2.0 and Genesys
/// apply one TLS policy (tls_options.hpp) and share one loaded trust store.
/// Both wrappers own a reference (SSL_CTX_up_ref). Each wrapper's destructor
/// frees the verify and password callbacks it finds in the SSL_CTX as its own
/// type: make_tls_client_context() installs neither (verification is set per
/// stream), and adopting a context that has one is refused rather than risked.
struct shared_boost_ssl_context {
    std::shared_ptr<net::ssl::context> origin; // keeps the cache entry alive
    std::unique_ptr<boost::asio::ssl::context> context;

    explicit shared_boost_ssl_context(const tls_options& o) : origin(shared_tls_client_context(o)) {
        SSL_CTX* handle = origin->native_handle();
        if (SSL_CTX_get_app_data(handle) || SSL_CTX_get_default_passwd_cb_userdata(handle))
            throw detail::invalid_option(
                "tether: tls_options: the shared TLS context carries callbacks; cannot adopt it");
        SSL_CTX_up_ref(handle);
        context = std::make_unique<boost::asio::ssl::context>(handle);
    }
};

} // namespace detail

/// The Beast Transport (see transport/concept.hpp for the contract).
class beast_transport {
public:
    using executor_type = boost::asio::io_context::executor_type;
    using clock_type = std::chrono::steady_clock;
    using timer_type = boost::asio::steady_timer;
    using options = beast_transport_options;

    /// Runs on the caller's io_context, which must outlive the transport.
    /// Throws std::system_error (error::invalid_option) for invalid options or TLS settings.
    explicit beast_transport(boost::asio::io_context& io, options o = {})
        : core_(std::make_unique<core>(io, std::move(o))) {}

    beast_transport(beast_transport&&) noexcept = default;
    beast_transport& operator=(beast_transport&&) noexcept = default;
    beast_transport(const beast_transport&) = delete;
    beast_transport& operator=(const beast_transport&) = delete;
    ~beast_transport() = default;

    executor_type get_executor() const noexcept { return core_->io->get_executor(); }
    clock_type::time_point now() const noexcept { return clock_type::now(); }
    timer_type make_timer() const { return timer_type(core_->io->get_executor()); }
    boost::asio::io_context& context() const noexcept { return *core_->io; }
    const options& get_options() const noexcept { return core_->opts; }
    /// Connections started and not yet reported closed.
    std::size_t active_connections() const noexcept { return core_->conns.size(); }

    /// Starts one attempt; every outcome reaches `sink` later, on the executor.
    template <class Sink> connection_id connect(const connect_request& req, Sink& sink) {
        return core_->connect(req, detail::beast_sink_ref::to(sink));
    }

    /// Queues one message on an open connection.
    std::error_code send(connection_id id, std::string_view data, message_kind kind) {
        return core_->send(id, data, kind);
    }

    /// Bytes of messages send() took for `id` that are not written yet.
    std::size_t buffered_amount(connection_id id) const { return core_->buffered_amount(id); }

    /// Starts a graceful close (an abort while still connecting). Idempotent;
    /// unknown ids are ignored. Invalid codes become 1000; long reasons are cut.
    void close(connection_id id, std::uint16_t code, std::string_view reason) {
        core_->close(id, code, reason);
    }

private:
    using tcp = boost::asio::ip::tcp;
    using bec = boost::system::error_code;
    using plain_ws =
        boost::beast::websocket::stream<detail::scanning_stream<detail::beast_tcp_socket>>;
    using tls_ws = boost::beast::websocket::stream<
        detail::scanning_stream<boost::asio::ssl::stream<detail::beast_tcp_socket>>>;
    using response_type = boost::beast::http::response<boost::beast::http::string_body>;

    struct core;
    enum class phase : unsigned char { connecting, open, closing, finished };

    struct outgoing {
        enum class what : unsigned char { text, binary, ping, close } kind;
        std::string data;
    };

    /// The write queue: a std::deque (elements stay put while Beast writes
    /// from the front one) that exists only while something is queued. An
    /// empty libstdc++ deque holds a 512-byte block and its map, and an idle
    /// connection queues nothing but a ping now and then.
    class write_queue {
    public:
        bool empty() const noexcept { return !q_ || q_->empty(); }
        outgoing& front() { return q_->front(); }
        void push_back(outgoing item) {
            if (!q_) q_ = std::make_unique<std::deque<outgoing>>();
            q_->push_back(std::move(item));
        }
        void pop_front() {
            q_->pop_front();
            if (q_->empty()) q_.reset();
        }
        void clear() noexcept { q_.reset(); }

    private:
        std::unique_ptr<std::deque<outgoing>> q_;
    };

    /// Bound to the io_context's executor rather than the polymorphic one:
    /// smaller timers, and smaller pending waits.
    using timer =
        boost::asio::basic_waitable_timer<clock_type, boost::asio::wait_traits<clock_type>,
                                          boost::asio::io_context::executor_type>;

    /// What a connection's main deadline is for: the handshake, then (open)
    /// the next ping or the pong, then the close; after a close reported at
    /// the peer's close frame, the linger (the socket is closed then at the
    /// latest). Never two at once; the idle check has its own time point.
    enum class due : unsigned char { none, handshake, ping, pong, close, linger };
    static constexpr clock_type::time_point never = clock_type::time_point::max();
    static constexpr std::uint32_t not_queued = ~std::uint32_t(0);
    struct deadline_queue;

    /// Everything about one connection. Every pending operation's handler
    /// holds it, so it outlives them; `owner` and `sink` are cleared when the
    /// transport goes away, so no handler reaches a dead sink.
    struct conn_state : std::enable_shared_from_this<conn_state> {
        conn_state(core* o, connection_id i, detail::beast_sink_ref s,
                   std::shared_ptr<deadline_queue> q)
            : owner(o), id(i), sink(s), deadlines(std::move(q)) {}
        conn_state(const conn_state&) = delete;
        conn_state& operator=(const conn_state&) = delete;
        ~conn_state() { deadlines->remove(*this); }

        /// What only the opening handshake needs: made by connect(), dropped
        /// on open (an idle connection would otherwise carry the upgrade
        /// response's fields, the request's strings and the resolver).
        struct handshake_state {
            explicit handshake_state(boost::asio::io_context& io) : resolver(io) {}
            handshake_state(const handshake_state&) = delete;
            handshake_state& operator=(const handshake_state&) = delete;
            ~handshake_state() { wipe(); }

            tcp::resolver resolver;
            std::string authority; // the Host field
            std::string target;    // may hold the token (query placement): wiped after use
            // set: the socket goes to it, then CONNECT host:port
            std::unique_ptr<proxy_server> proxy;
            secret proxy_request; // the CONNECT request (may hold proxy credentials)
            std::unique_ptr<detail::connect_reply_reader> proxy_reader;
            // only while a CONNECT answer is read: not 2 KiB in every handshake
            std::unique_ptr<std::array<char, 2048>> proxy_buffer;
            std::shared_ptr<tls_handshake_report> tls_report;

            // upgrade request contents, read by the decorator when Beast builds it
            std::vector<http_header> headers;
            std::string authorization; // "Bearer <token>"
            std::vector<std::string> offered_subprotocols;
            std::string token_subprotocol;
            response_type response;

            bool loopback_only = false; // a token over plain ws://: loopback addresses only
            bool tcp_connected = false;
            bool tunnel_open = false;
            bool tls_done = false;

            void wipe() noexcept {
                detail::wipe(authorization);
                detail::wipe(token_subprotocol);
                for (auto& p : offered_subprotocols)
                    detail::wipe(p);
                detail::wipe(target);
                proxy_request = secret();
            }
        };

        core* owner;
        connection_id id;
        detail::beast_sink_ref sink;
        // the io_context's deadline queue, shared by every connection on it;
        // kept alive by each, as a lingering connection may outlive the transport
        std::shared_ptr<deadline_queue> deadlines;
        std::unique_ptr<handshake_state> hs; // until open
        std::unique_ptr<plain_ws> plain;
        std::unique_ptr<tls_ws> tls;

        std::string host; // without IPv6 brackets: resolver, SNI, verification, messages
        std::uint16_t port = 0;
        phase state = phase::connecting;
        due main_due = due::none;
        bool writing = false;
        bool close_requested = false;
        std::uint16_t requested_code = close_code::normal;
        std::uint32_t queue_index = not_queued; // in the deadline queue's heap
        // Frames seen, compared only for change (32 bits wrap harmlessly).
        std::uint32_t frames_received = 0;
        std::uint32_t frames_at_ping = 0;
        std::uint32_t frames_at_idle_check = 0;

        boost::beast::flat_buffer rbuf;
        write_queue queue;
        std::size_t buffered = 0;
        std::unique_ptr<std::string> requested_reason; // set by close(): 8 bytes, not 32

        // Deadlines, kept by the io_context's deadline_queue: `main_due` at
        // `main_at` (never when none), the next idle check at `idle_at`.
        clock_type::time_point main_at = never;
        clock_type::time_point idle_at = never;
        clock_type::time_point wake_at() const noexcept { return std::min(main_at, idle_at); }
        clock_type::time_point last_activity{};

        std::string where() const { return detail::format_authority(host, port, 0); }
        std::string close_reason() const {
            return requested_reason ? *requested_reason : std::string();
        }
        /// Whom the TCP connection goes to (while connecting).
        std::string peer() const {
            return hs && hs->proxy ? "HTTP proxy " + hs->proxy->authority() : where();
        }

        template <class F> void with_ws(F&& f) {
            if (plain) f(*plain);
            if (tls) f(*tls);
        }
        tcp::socket* socket() {
            if (plain) return &plain->next_layer().next_layer();
            if (tls) return &tls->next_layer().next_layer().next_layer();
            return nullptr;
        }
        void close_socket() noexcept {
            bec ignored;
            if (auto* s = socket()) s->close(ignored);
        }
        void wipe_credentials() noexcept {
            if (hs) hs->wipe();
        }
    };

    /// Every connection's deadlines on one io_context behind one timer (as
    /// websocketpp_transport's): a binary min-heap of connections by wake-up
    /// time, each knowing its index. Three timers per connection cost their
    /// bytes plus a pending wait and a slot in Asio's timer queue in every
    /// idle connection (a ping is always due); with the handshake state
    /// dropped on open, an idle connection costs about 1.3 kB less
    /// (tests/benchmarks/README.md). One per io_context, shared by every
    /// beast_transport on it, kept alive by the connections on it (made again
    /// by the next connection after the last one is gone); only touched on
    /// the io_context's thread.
    struct deadline_queue : std::enable_shared_from_this<deadline_queue> {
        explicit deadline_queue(boost::asio::io_context& io) : wakeup(io.get_executor()) {}

        timer wakeup;
        detail::wake_heap<conn_state> heap;
        clock_type::time_point armed_at = never; // the pending wait's expiry
        std::uint64_t generation = 0;            // tells a re-armed wait's stale completion
        bool running = false;                    // run_due() is under way: it re-arms at the end

        /// The queue of this io_context (made when none is alive).
        static std::shared_ptr<deadline_queue> for_context(boost::asio::io_context& io) {
            static std::mutex mutex;
            static std::vector<std::pair<boost::asio::io_context*, std::weak_ptr<deadline_queue>>>
                made;
            std::lock_guard<std::mutex> lock(mutex);
            std::shared_ptr<deadline_queue> found;
            for (auto it = made.begin(); it != made.end();) {
                auto q = it->second.lock();
                if (!q) {
                    it = made.erase(it);
                    continue;
                }
                if (it->first == &io) found = std::move(q);
                ++it;
            }
            if (found) return found;
            auto q = std::make_shared<deadline_queue>(io);
            made.emplace_back(&io, q);
            return q;
        }

        /// After st's main_at or idle_at changed: (re)queues it at the
        /// earlier, and points the timer at the earliest.
        void update(conn_state& st) {
            place(st);
            arm();
        }
        void remove(conn_state& st) noexcept { heap.remove(st); }

    private:
        /// Queues st at its wake-up time, or takes it out when it has none.
        void place(conn_state& st) {
            if (st.wake_at() == never) return remove(st);
            heap.place(st);
        }

        /// Points the timer at the earliest wake-up, if it is not already
        /// waiting for that or an earlier one. (A wait for a time nobody
        /// needs any more just finds nothing due.)
        void arm() {
            if (running || heap.empty() || heap.front()->wake_at() >= armed_at) return;
            armed_at = heap.front()->wake_at();
            const std::uint64_t g = ++generation;
            wakeup.expires_at(armed_at);
            wakeup.async_wait([w = weak_from_this(), g](const bec&) {
                const auto q = w.lock();
                if (!q || q->generation != g) return; // re-armed since
                q->armed_at = never;
                q->run_due();
            });
        }

        /// Runs every deadline that has passed, earliest first.
        void run_due() {
            running = true;
            const auto now = clock_type::now();
            while (!heap.empty() && heap.front()->wake_at() <= now) {
                const std::shared_ptr<conn_state> st = heap.front()->shared_from_this();
                remove(*st);
                if (st->main_due != due::none && st->main_at <= now) {
                    const due what = st->main_due;
                    const clock_type::time_point at = st->main_at;
                    st->main_due = due::none;
                    st->main_at = never;
                    core::on_deadline(st, what, at);
                }
                if (st->idle_at <= now) {
                    st->idle_at = never;
                    core::on_idle_check(st);
                }
                place(*st); // what is still set (or was set meanwhile)
            }
            running = false;
            arm();
        }
    };

    struct core {
        core(boost::asio::io_context& context, options o)
            : io(&context), shared_opts(detail::shared_beast_transport_options(std::move(o))),
              opts(*shared_opts) {
            // As websocketpp_transport: settings that name files are checked
            // (and loaded) here, so bad TLS settings throw here, not on the
            // first wss://. Default settings cannot be wrong, and a transport
            // that only ever opens ws:// need not load the system trust store
            // (several MB touched, once per process): its first wss://
            // connection makes the context.
            if (!detail::same_tls_settings(opts.tls, tls_options{}))
                tls_context = std::make_shared<detail::shared_boost_ssl_context>(opts.tls);
        }

        ~core() {
            // Detach every connection: no sink call from now on. Pending
            // handlers keep their connection alive and find `owner` null.
            auto all = std::move(conns);
            for (auto& entry : all) {
                conn_state& st = *entry.second;
                st.sink = detail::beast_sink_ref{};
                st.owner = nullptr;
                st.state = phase::finished;
                stop_connection(st, true); // also a connection lingering after its close frame
            }
        }

        boost::asio::io_context* io;
        std::shared_ptr<const options> shared_opts; // validated, shared with equal options
        const options& opts;
        std::shared_ptr<detail::shared_boost_ssl_context> tls_context;
        detail::connection_map<std::shared_ptr<conn_state>> conns;
        connection_id last_id = 0;
        /// The thread seen running this transport's handlers, and whether a
        /// second one was seen (then everything is refused).
        std::atomic<std::thread::id> runner{};
        std::atomic<bool> multi_threaded{false};

        // ---- one thread ----------------------------------------------------

        /// False once this transport's handlers have been seen on two threads.
        /// Checked in every handler and in calls made from a handler; a call
        /// from outside run() (before it, or from the thread that will run it)
        /// is not a handler and is not counted.
        bool single_threaded() noexcept {
            if (multi_threaded.load(std::memory_order_relaxed)) return false;
            if (!io->get_executor().running_in_this_thread()) return true;
            const auto me = std::this_thread::get_id();
            std::thread::id expected{};
            if (runner.compare_exchange_strong(expected, me) || expected == me) return true;
            multi_threaded.store(true);
            return false;
        }

        /// True (and `st` is finished) if a second thread runs the io_context
        /// (see the header comment).
        bool refused(conn_state& st) {
            if (single_threaded()) return false;
            close_event ev;
            ev.error = error::connection_failed;
            if (st.state != phase::connecting) {
                ev.was_open = true;
                ev.initiated_locally = true;
                ev.code = close_code::abnormal;
            }
            ev.detail = "beast_transport: the io_context is run by more than one thread; run it "
                        "on one thread (README, Threads)";
            finish(st, std::move(ev), true);
            return true;
        }

        // ---- connect ---------------------------------------------------

        connection_id connect(const connect_request& req, detail::beast_sink_ref sink) {
            const connection_id id = ++last_id;
            // the io_context's queue (the core does not hold it: 16 bytes in every
            // client's transport; looked up per attempt)
            auto st =
                std::make_shared<conn_state>(this, id, sink, deadline_queue::for_context(*io));
            st->hs = std::make_unique<conn_state::handshake_state>(*io);
            conns.emplace(id, st);
            if (refused(*st)) return id;

            std::string why;
            auto url = detail::parse_ws_url(req.url, why);
            if (!url) return fail_early(*st, error::invalid_url, why), id;
            conn_state::handshake_state& hs = *st->hs;
            st->host = url->host;
            st->port = url->port;
            hs.authority = url->authority();
            if (url->ipv6_literal && hs.authority.front() != '[')
                hs.authority = "[" + url->host + "]"; // default port: brackets still needed
            const bool has_token = !req.token.empty();
            if (has_token &&
                !detail::token_transport_allowed(*url, opts.allow_insecure_token_transport))
                return fail_early(*st, error::insecure_transport,
                                  "refusing to send the token over ws:// to '" + url->host +
                                      "': use wss:// or set allow_insecure_token_transport"),
                       id;
            hs.loopback_only = has_token && !url->secure && !opts.allow_insecure_token_transport;
            if (const proxy_server* p = opts.proxy.select(url->secure, url->host, url->port))
                hs.proxy = std::make_unique<proxy_server>(*p);

            hs.target = url->target;
            const std::string_view token = req.token.reveal();
            if (has_token) {
                bool ok = false;
                switch (opts.token_in) {
                case token_placement::authorization_header:
                    ok = detail::is_credential_text(token);
                    if (ok) {
                        hs.authorization.reserve(7 + token.size());
                        hs.authorization += "Bearer ";
                        hs.authorization += token;
                    }
                    break;
                case token_placement::query_parameter:
                    detail::append_query_parameter(hs.target, opts.token_query_parameter, token);
                    ok = true;
                    break;
                case token_placement::subprotocol:
                    hs.token_subprotocol = opts.token_subprotocol_prefix + std::string(token);
                    ok = detail::is_http_token(hs.token_subprotocol);
                    break;
                }
                if (!ok)
                    return fail_early(*st, error::invalid_upgrade_request,
                                      "the token contains characters that cannot be placed in "
                                      "the upgrade request as configured"),
                           id;
            }
            const std::vector<std::string>* subprotocol_lists[] = {&opts.subprotocols,
                                                                   &req.subprotocols};
            for (const auto* list : subprotocol_lists)
                for (const auto& p : *list) {
                    if (!detail::is_http_token(p))
                        return fail_early(*st, error::invalid_upgrade_request,
                                          "subprotocol '" + detail::body_excerpt(p, 64) +
                                              "' is not a valid token"),
                               id;
                    hs.offered_subprotocols.push_back(p);
                }
            if (!hs.token_subprotocol.empty())
                hs.offered_subprotocols.push_back(hs.token_subprotocol);
            const std::vector<http_header>* header_lists[] = {&opts.headers, &req.headers};
            for (const auto* list : header_lists)
                for (const auto& h : *list) {
                    if (!detail::is_http_token(h.first) || !detail::is_safe_header_value(h.second))
                        return fail_early(*st, error::invalid_upgrade_request,
                                          "header '" + detail::body_excerpt(h.first, 64) +
                                              "' is not a valid HTTP header"),
                               id;
                    hs.headers.push_back(h);
                }

            if (url->secure) {
                if (!tls_context) {
                    try {
                        tls_context = std::make_shared<detail::shared_boost_ssl_context>(opts.tls);
                    } catch (const std::exception& e) {
                        return fail_early(*st, error::connection_failed,
                                          std::string("TLS setup failed: ") + e.what()),
                               id;
                    }
                }
                st->tls = std::make_unique<tls_ws>(drain_limit(), *io, *tls_context->context);
                hs.tls_report = std::make_shared<tls_handshake_report>();
                if (!detail::prepare_native_tls_client(
                        st->tls->next_layer().next_layer().native_handle(), st->host, opts.tls,
                        hs.tls_report))
                    return fail_early(*st, error::connection_failed,
                                      "TLS setup for '" + detail::body_excerpt(st->host, 64) +
                                          "' failed: OpenSSL refused it as the host name (longer "
                                          "than 255 bytes?)"),
                           id;
            } else {
                st->plain = std::make_unique<plain_ws>(drain_limit(), *io);
            }

            arm_handshake_deadline(st);
            hs.resolver.async_resolve(
                hs.proxy ? hs.proxy->host : st->host,
                std::to_string(hs.proxy ? hs.proxy->port : st->port),
                [st](const bec& ec, tcp::resolver::results_type r) { on_resolved(st, ec, r); });
            return id;
        }

        /// Reports a failure found before any network activity (later, never inline).
        void fail_early(conn_state& st, error e, std::string detail) {
            close_event ev;
            ev.error = e;
            ev.detail = std::move(detail);
            finish(st, std::move(ev), true);
        }

        static bool abandoned(const std::shared_ptr<conn_state>& st, phase expected) {
            return !st->owner || st->state != expected;
        }

        static void on_resolved(const std::shared_ptr<conn_state>& st, const bec& ec,
                                const tcp::resolver::results_type& results) {
            if (abandoned(st, phase::connecting)) return;
            core& self = *st->owner;
            if (self.refused(*st)) return;
            if (ec) {
                close_event ev;
                ev.error = error::connection_failed;
                const proxy_server* proxy = st->hs->proxy.get();
                ev.detail = "cannot resolve '" + (proxy ? proxy->host : st->host) + "'" +
                            (proxy ? " (the HTTP proxy)" : "") + ": " + ec.message();
                return self.finish(*st, std::move(ev), true);
            }
            std::vector<tcp::endpoint> endpoints;
            for (const auto& entry : results) {
                const auto a = entry.endpoint().address();
                const bool loopback =
                    a.is_loopback() ||
                    (a.is_v6() && a.to_v6().is_v4_mapped() &&
                     boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, a.to_v6())
                         .is_loopback());
                if (!st->hs->loopback_only || loopback) endpoints.push_back(entry.endpoint());
            }
            if (endpoints.empty()) {
                close_event ev;
                ev.error = error::insecure_transport;
                ev.detail = st->peer() +
                            " resolved to no loopback address; refusing to send the token over "
                            "ws://";
                return self.finish(*st, std::move(ev), true);
            }
            boost::asio::async_connect(
                *st->socket(), endpoints,
                [st](const bec& e, const tcp::endpoint&) { on_connected(st, e); });
        }

        static void on_connected(const std::shared_ptr<conn_state>& st, const bec& ec) {
            if (abandoned(st, phase::connecting)) return; // the socket is closed
            core& self = *st->owner;
            if (self.refused(*st)) return;
            if (ec) {
                close_event ev;
                ev.error = error::connection_failed;
                ev.detail = "cannot connect to " + st->peer() + ": " + ec.message();
                return self.finish(*st, std::move(ev), true);
            }
            st->hs->tcp_connected = true;
            bec ignored;
            st->socket()->set_option(tcp::no_delay(true), ignored);
            if (st->hs->proxy) return self.start_tunnel(st);
            start_secure_or_upgrade(st);
        }

        // ---- HTTP proxy tunnel ---------------------------------------------

        void start_tunnel(const std::shared_ptr<conn_state>& st) {
            conn_state::handshake_state& hs = *st->hs;
            hs.proxy_request =
                detail::build_connect_request(st->host, st->port, *hs.proxy, opts.user_agent);
            hs.proxy_reader = std::make_unique<detail::connect_reply_reader>(*hs.proxy);
            hs.proxy_buffer = std::make_unique<std::array<char, 2048>>();
            boost::asio::async_write(
                *st->socket(),
                boost::asio::buffer(hs.proxy_request.reveal().data(), hs.proxy_request.size()),
                [st](const bec& ec, std::size_t) {
                    st->hs->proxy_request = secret(); // wiped
                    if (abandoned(st, phase::connecting) || st->owner->refused(*st)) return;
                    if (ec) return tunnel_io_failed(st, ec, "sending CONNECT to the");
                    read_tunnel_answer(st);
                });
        }

        static void read_tunnel_answer(const std::shared_ptr<conn_state>& st) {
            st->socket()->async_read_some(
                boost::asio::buffer(*st->hs->proxy_buffer), [st](const bec& ec, std::size_t n) {
                    if (abandoned(st, phase::connecting) || st->owner->refused(*st)) return;
                    auto& reader = *st->hs->proxy_reader;
                    bool done = n > 0 && reader.feed(st->hs->proxy_buffer->data(), n);
                    if (!done && ec == boost::asio::error::eof) done = reader.feed_eof();
                    if (done) return on_tunnel(st, reader.result());
                    if (ec) return tunnel_io_failed(st, ec, "reading the answer of the");
                    read_tunnel_answer(st);
                });
        }

        static void tunnel_io_failed(const std::shared_ptr<conn_state>& st, const bec& ec,
                                     const char* what) {
            close_event ev;
            ev.error = error::connection_failed;
            ev.detail = std::string(what) + " HTTP proxy " + st->hs->proxy->authority() + ": " +
                        ec.message() + " (tunnel to " + st->where() + ")";
            st->owner->finish(*st, std::move(ev), true);
        }

        static void on_tunnel(const std::shared_ptr<conn_state>& st, const detail::proxy_reply& r) {
            if (r.error) {
                close_event ev;
                ev.error = r.error.category() == error_category()
                               ? r.error
                               : make_error_code(error::connection_failed);
                ev.proxy_status = r.status;
                ev.retry_after = r.retry_after;
                ev.detail = r.detail + " (tunnel to " + st->where() + ")";
                return st->owner->finish(*st, std::move(ev), true);
            }
            st->hs->tunnel_open = true;
            st->hs->proxy_reader.reset();
            st->hs->proxy_buffer.reset();
            start_secure_or_upgrade(st);
        }

        /// TLS to the origin (inside the tunnel, if any), then the upgrade.
        static void start_secure_or_upgrade(const std::shared_ptr<conn_state>& st) {
            core& self = *st->owner;
            if (st->tls) {
                st->tls->next_layer().next_layer().async_handshake(
                    boost::asio::ssl::stream_base::client,
                    [st](const bec& e) { on_tls_handshake(st, e); });
                return;
            }
            self.start_upgrade(st);
        }

        static void on_tls_handshake(const std::shared_ptr<conn_state>& st, const bec& ec) {
            if (abandoned(st, phase::connecting)) return;
            core& self = *st->owner;
            if (self.refused(*st)) return;
            if (ec) {
                close_event ev;
                const auto& report = st->hs->tls_report;
                const bool verify = report && report->verification_failed();
                ev.error = verify ? error::tls_verification_failed : error::connection_failed;
                const std::string why = report ? report->describe() : std::string();
                ev.detail = "TLS handshake with " + st->where() +
                            " failed: " + (why.empty() ? ec.message() : why);
                return self.finish(*st, std::move(ev), true);
            }
            st->hs->tls_done = true;
            self.start_upgrade(st);
        }

        void start_upgrade(const std::shared_ptr<conn_state>& st) {
            namespace websocket = boost::beast::websocket;
            namespace http = boost::beast::http;
            st->with_ws([&](auto& ws) {
                // our own deadline covers the opening handshake; Beast's timeout
                // bounds its closing handshakes and teardowns once open
                ws.set_option(websocket::stream_base::timeout{
                    websocket::stream_base::none(), websocket::stream_base::none(), false});
                ws.read_message_max(opts.max_message_size);
                websocket::permessage_deflate pmd;
                pmd.client_enable = opts.permessage_deflate;
                pmd.client_max_window_bits = opts.deflate_window_bits;
                pmd.memLevel = opts.deflate_mem_level;
                ws.set_option(pmd);
                // `s` outlives the stream, which the state owns
                ws.set_option(websocket::stream_base::decorator(
                    [s = st.get(), ua = opts.user_agent](websocket::request_type& r) {
                        if (!s->hs) return; // only the opening handshake builds a request
                        const conn_state::handshake_state& hs = *s->hs;
                        for (const auto& h : hs.headers) {
                            const auto existing = r.find(h.first);
                            if (existing == r.end())
                                r.insert(h.first, h.second);
                            else
                                r.set(h.first, std::string(existing->value()) + ", " + h.second);
                        }
                        if (!hs.authorization.empty())
                            r.set(http::field::authorization, hs.authorization);
                        if (r.find(http::field::user_agent) == r.end() && !ua.empty())
                            r.set(http::field::user_agent, ua);
                        if (!hs.offered_subprotocols.empty()) {
                            std::string list;
                            for (const auto& p : hs.offered_subprotocols)
                                list += (list.empty() ? "" : ", ") + p;
                            r.set(http::field::sec_websocket_protocol, list);
                            detail::wipe(list);
                        }
                    }));
                ws.control_callback(
                    [s = st.get()](websocket::frame_type kind, boost::beast::string_view) {
                        on_control_frame(*s, kind);
                    });
                ws.async_handshake(st->hs->response, st->hs->authority, st->hs->target,
                                   [st](const bec& e) { on_handshake(st, e); });
            });
        }

        // ---- deadlines ---------------------------------------------------

        /// Sets st's main deadline (due::none clears it).
        static void set_deadline(conn_state& st, due what, clock_type::time_point at) {
            st.main_due = what;
            st.main_at = what == due::none ? never : at;
            st.deadlines->update(st);
        }

        /// Called by the io_context's deadline queue when st's main deadline passed.
        /// (`at`: when it was due.)
        static void on_deadline(const std::shared_ptr<conn_state>& st, due what,
                                clock_type::time_point at) {
            switch (what) {
            case due::handshake: return on_handshake_deadline(st);
            case due::ping: return on_ping_due(st);
            case due::pong: return on_pong_deadline(st, at);
            case due::close: return on_close_deadline(st);
            case due::linger: return st->close_socket(); // reported at the peer's close frame
            case due::none: return;
            }
        }

        void arm_handshake_deadline(const std::shared_ptr<conn_state>& st) {
            set_deadline(*st, due::handshake, clock_type::now() + opts.handshake_timeout);
        }

        static void on_handshake_deadline(const std::shared_ptr<conn_state>& s) {
            if (abandoned(s, phase::connecting) || s->owner->refused(*s)) return;
            const conn_state::handshake_state& hs = *s->hs;
            const char* stage = !hs.tcp_connected ? "resolving and connecting"
                                : (hs.proxy && !hs.tunnel_open)
                                    ? "waiting for the HTTP proxy's answer to CONNECT"
                                : (s->tls && !hs.tls_done) ? "in the TLS handshake"
                                                           : "waiting for the upgrade response";
            close_event ev;
            ev.error = error::handshake_timeout;
            ev.detail = "no WebSocket handshake with " + s->where() + " within " +
                        std::to_string(s->owner->opts.handshake_timeout.count()) + " ms (stuck " +
                        stage + ")";
            s->owner->finish(*s, std::move(ev), true);
        }

        static void on_handshake(const std::shared_ptr<conn_state>& st, const bec& ec) {
            namespace websocket = boost::beast::websocket;
            namespace http = boost::beast::http;
            if (abandoned(st, phase::connecting)) return;
            core& self = *st->owner;
            if (self.refused(*st)) return;
            // Beast's default response says 200 before anything was read: only
            // upgrade_declined means an HTTP answer other than 101 arrived
            const response_type& res = st->hs->response;
            const int status = static_cast<int>(res.result_int());
            if (ec == websocket::error::upgrade_declined) {
                close_event ev;
                ev.http_status = status;
                const auto retry = res.find(http::field::retry_after);
                if (retry != res.end())
                    ev.retry_after = detail::parse_retry_after(
                        std::string_view(retry->value().data(), retry->value().size()),
                        std::chrono::system_clock::now());
                ev.body_excerpt = detail::body_excerpt(res.body(), self.opts.max_body_excerpt);
                const auto phrase = res.reason();
                ev.detail =
                    "handshake refused by " + st->where() + ": HTTP " + std::to_string(status) +
                    " " + detail::body_excerpt(std::string_view(phrase.data(), phrase.size()), 64);
                const auto location = res.find(http::field::location);
                if (status >= 300 && status < 400 && location != res.end())
                    ev.detail += " (redirects are not followed; Location: " +
                                 detail::body_excerpt(std::string_view(location->value().data(),
                                                                       location->value().size()),
                                                      200) +
                                 ")";
                return self.finish(*st, std::move(ev), true);
            }
            if (ec) {
                close_event ev;
                if (ec.category() ==
                    websocket::make_error_code(websocket::error::closed).category()) {
                    ev.error = error::protocol_error;
                    ev.detail =
                        "invalid upgrade response from " + st->where() + ": " + ec.message();
                } else {
                    ev.error = error::connection_failed;
                    ev.detail = "connection to " + st->where() +
                                " lost during the handshake: " + ec.message();
                }
                return self.finish(*st, std::move(ev), true);
            }
            const auto proto = res.find(http::field::sec_websocket_protocol);
            std::string selected = proto == res.end() ? std::string() : std::string(proto->value());
            bool offered = selected.empty();
            for (const auto& p : st->hs->offered_subprotocols)
                offered = offered || p == selected;
            if (!offered) {
                // RFC 6455 4.1: a subprotocol we did not offer fails the connection
                close_event ev;
                ev.error = error::protocol_error;
                ev.detail = "the server selected subprotocol '" +
                            detail::body_excerpt(selected, 64) + "', which was not offered";
                return self.finish(*st, std::move(ev), true);
            }
            st->state = phase::open;
            set_deadline(*st, due::none, never); // start_liveness() sets the pings' deadline
            open_info info;
            const bool token_selected =
                !st->hs->token_subprotocol.empty() && selected == st->hs->token_subprotocol;
            info.subprotocol = token_selected ? std::string("[token]") : std::move(selected);
            if (token_selected) detail::wipe(selected);
            st->hs.reset(); // wiped; the response, the resolver, the request's strings go too
            st->with_ws([&](auto& ws) {
                // bounds Beast's own closing handshakes and teardowns: after a
                // protocol violation or an oversized message it sends a close
                // frame and waits for the peer, which may never answer
                websocket::stream_base::timeout t;
                t.handshake_timeout = self.opts.close_timeout;
                t.idle_timeout = websocket::stream_base::none();
                t.keep_alive_pings = false;
                ws.set_option(t);
            });
            self.start_liveness(st);
            do_read(st);
            if (st->sink.self) st->sink.open(st->sink.self, st->id, info);
        }

        // ---- reading -----------------------------------------------------

        static void on_control_frame(conn_state& st, boost::beast::websocket::frame_type kind) {
            ++st.frames_received;
            if (kind != boost::beast::websocket::frame_type::close) return;
            if (!st.owner || st.state == phase::finished) return;
            if (st.owner->refused(st)) return;
            if (st.owner->opts.report_close_after_teardown) return;
            // The peer's close frame: its code and reason are final. Report now;
            // Beast answers it and tears the TCP connection down in the
            // background, bounded by close_timeout (linger).
            close_event ev;
            st.with_ws([&](auto& ws) { ev = describe_close_frame(st, ws.reason()); });
            st.owner->finish(st, std::move(ev), false);
        }

        static close_event describe_close_frame(const conn_state& st,
                                                const boost::beast::websocket::close_reason& cr) {
            close_event ev;
            ev.was_open = true;
            const auto code = static_cast<std::uint16_t>(cr.code);
            ev.code = code == 0 ? close_code::no_status : code;
            ev.reason.assign(cr.reason.data(), cr.reason.size());
            if (st.close_requested) {
                ev.initiated_locally = true;
                if (code == 0) {
                    ev.code = st.requested_code;
                    ev.reason = st.close_reason();
                }
            }
            return ev;
        }

        static void do_read(const std::shared_ptr<conn_state>& st) {
            st->with_ws([&](auto& ws) {
                ws.async_read(st->rbuf, [st](const bec& ec, std::size_t) { on_read(st, ec); });
            });
        }

        /// The largest message read synchronously once whole (see
        /// scanning_stream): Beast's read buffer holds 1536 bytes, and a
        /// message over max_message_size fails the connection.
        std::uint16_t drain_limit() const noexcept {
            return static_cast<std::uint16_t>(opts.max_message_size < 1536 ? opts.max_message_size
                                                                           : 1536);
        }

        /// At most this many messages are read synchronously in a row: then
        /// the scheduler runs timers and other connections.
        static constexpr int max_drain = 64;

        static void on_read(const std::shared_ptr<conn_state>& st, const bec& ec) {
            if (!st->owner || st->state == phase::finished) {
                // after a report at the close frame: Beast's teardown is done,
                // the linger deadline need not keep the state alive any longer
                if (ec) set_deadline(*st, due::none, never);
                return;
            }
            core& self = *st->owner;
            if (self.refused(*st)) return;
            // Beast's close operation takes over reading (and ends the pending
            // read with operation_aborted): its completion reports
            if (ec == boost::asio::error::operation_aborted && st->close_requested) return;
            if (ec) return self.on_read_error(st, ec);
            if (!deliver(st)) return;
            // Messages already whole in Beast's buffer: read them now, without
            // a trip through the scheduler for each (scanning_stream).
            for (int n = 0; n < max_drain; ++n) {
                bec read_ec;
                bool read = false;
                st->with_ws([&](auto& ws) {
                    if (st->state != phase::open || st->close_requested ||
                        !ws.next_layer().scanner().next_message_whole())
                        return;
                    read = true;
                    ws.read(st->rbuf, read_ec);
                });
                if (!read) break;
                if (read_ec) return self.on_read_error(st, read_ec);
                if (!deliver(st)) return;
            }
            do_read(st);
        }

        /// Hands the message in rbuf to the sink. False when the connection
        /// is done with after it (the sink closed it or destroyed the transport).
        static bool deliver(const std::shared_ptr<conn_state>& st) {
            ++st->frames_received;
            bool text = true;
            st->with_ws([&](auto& ws) {
                text = ws.got_text();
                ws.next_layer().scanner().message_read();
            });
            const auto data = st->rbuf.cdata();
            if (st->sink.self)
                st->sink.message(
                    st->sink.self, st->id,
                    message_view{
                        std::string_view(static_cast<const char*>(data.data()), data.size()),
                        text ? message_kind::text : message_kind::binary});
            st->rbuf.consume(st->rbuf.size());
            return st->owner && st->state != phase::finished;
        }

        void on_read_error(const std::shared_ptr<conn_state>& st, const bec& ec) {
            namespace websocket = boost::beast::websocket;
            close_event ev;
            ev.was_open = true;
            if (ec == websocket::error::closed) {
                st->with_ws([&](auto& ws) { ev = describe_close_frame(*st, ws.reason()); });
            } else if (ec == websocket::error::message_too_big) {
                ev.initiated_locally = true;
                ev.code = close_code::message_too_big;
                ev.error = error::message_too_large;
                ev.detail = "a message from " + st->where() + " exceeds max_message_size (" +
                            std::to_string(opts.max_message_size) + " bytes)";
            } else if (ec.category() ==
                           websocket::make_error_code(websocket::error::closed).category() &&
                       ec != websocket::error::buffer_overflow) {
                ev.initiated_locally = true;
                ev.code = ec == websocket::error::bad_frame_payload ? close_code::invalid_payload
                                                                    : close_code::protocol_error;
                ev.error = error::protocol_error;
                ev.detail = st->where() + " violated the WebSocket protocol: " + ec.message();
            } else if (st->close_requested && ec == boost::beast::error::timeout) {
                ev.initiated_locally = true;
                ev.code = st->requested_code;
                ev.reason = st->close_reason();
                ev.error = error::close_timeout;
                ev.detail = "the peer did not finish the closing handshake in time";
            } else {
                // no close frame: the connection dropped (RFC 6455 7.1.5 calls this 1006)
                ev.initiated_locally = st->close_requested;
                ev.code = close_code::abnormal;
                ev.error = error::connection_failed;
                ev.detail = "connection to " + st->where() +
                            " dropped without a close frame: " + ec.message();
            }
            finish(*st, std::move(ev), true);
        }

        // ---- liveness ----------------------------------------------------

        void start_liveness(const std::shared_ptr<conn_state>& st) {
            const auto now = clock_type::now();
            st->last_activity = now;
            st->frames_at_idle_check = st->frames_received;
            if (opts.idle_timeout.count() > 0) st->idle_at = now + idle_check_period();
            if (opts.ping_interval.count() > 0)
                set_deadline(*st, due::ping, now + opts.ping_interval);
            else
                set_deadline(*st, due::none, never);
        }

        static void on_ping_due(const std::shared_ptr<conn_state>& st) {
            if (abandoned(st, phase::open) || st->owner->refused(*st)) return;
            const options& o = st->owner->opts;
            st->frames_at_ping = st->frames_received;
            st->owner->enqueue(st, outgoing{outgoing::what::ping, {}});
            // a failed ping write shows up as a read error; the pong deadline still applies
            set_deadline(*st, due::pong, clock_type::now() + o.pong_timeout);
        }

        /// `pong_at`: the ping went out pong_timeout before it.
        static void on_pong_deadline(const std::shared_ptr<conn_state>& st,
                                     clock_type::time_point pong_at) {
            if (abandoned(st, phase::open)) return;
            core& self = *st->owner;
            if (self.refused(*st)) return;
            if (st->frames_received == st->frames_at_ping) {
                close_event ev;
                ev.was_open = true;
                ev.initiated_locally = true;
                ev.code = close_code::abnormal;
                ev.error = error::pong_timeout;
                ev.detail = "nothing received from " + st->where() + " within " +
                            std::to_string(self.opts.pong_timeout.count()) + " ms of a ping";
                return self.finish(*st, std::move(ev), true);
            }
            set_deadline(*st, due::ping,
                         pong_at - self.opts.pong_timeout + self.opts.ping_interval);
        }

        /// A few checks per idle_timeout keep detection within idle_timeout * 1.25.
        std::chrono::milliseconds idle_check_period() const {
            const auto period = opts.idle_timeout / 4;
            return period.count() < 1 ? std::chrono::milliseconds(1) : period;
        }

        static void on_idle_check(const std::shared_ptr<conn_state>& s) {
            if (abandoned(s, phase::open)) return;
            core& self = *s->owner;
            if (self.refused(*s)) return;
            const auto now = clock_type::now();
            if (s->frames_received != s->frames_at_idle_check) {
                s->frames_at_idle_check = s->frames_received;
                s->last_activity = now;
            } else if (now - s->last_activity >= self.opts.idle_timeout) {
                close_event ev;
                ev.was_open = true;
                ev.initiated_locally = true;
                ev.code = close_code::abnormal;
                ev.error = error::idle_timeout;
                ev.detail = "no frame from " + s->where() + " for " +
                            std::to_string(self.opts.idle_timeout.count()) + " ms";
                return self.finish(*s, std::move(ev), true);
            }
            s->idle_at = now + self.idle_check_period();
            s->deadlines->update(*s);
        }

        // ---- writing -----------------------------------------------------

        std::error_code send(connection_id id, std::string_view data, message_kind kind) {
            const auto it = conns.find(id);
            if (it == conns.end() || it->second->state != phase::open) return error::not_connected;
            if (refused(*it->second)) return error::not_connected;
            if (kind == message_kind::text && !detail::is_valid_utf8(data))
                return error::invalid_text_message;
            enqueue(it->second, outgoing{kind == message_kind::binary ? outgoing::what::binary
                                                                      : outgoing::what::text,
                                         std::string(data)});
            return {};
        }

        std::size_t buffered_amount(connection_id id) const {
            const auto it = conns.find(id);
            if (it == conns.end() || it->second->state != phase::open) return 0;
            return it->second->buffered;
        }

        /// Beast allows one write-like operation (write, ping, close) at a
        /// time: everything goes through this queue, in order.
        void enqueue(const std::shared_ptr<conn_state>& st, outgoing item) {
            st->buffered += item.data.size();
            st->queue.push_back(std::move(item));
            if (!st->writing) write_next(st);
        }

        static void write_next(const std::shared_ptr<conn_state>& st) {
            namespace websocket = boost::beast::websocket;
            if (st->queue.empty() || st->state == phase::finished) return;
            st->writing = true;
            outgoing& item = st->queue.front();
            const auto done = [st](const bec& ec, std::size_t = 0) {
                st->writing = false;
                if (st->queue.empty()) return;
                st->buffered -= st->queue.front().data.size();
                st->queue.pop_front();
                // a failed write shows up as a read error, which reports it
                if (!ec) write_next(st);
            };
            st->with_ws([&](auto& ws) {
                switch (item.kind) {
                case outgoing::what::ping: ws.async_ping({}, done); break;
                case outgoing::what::close:
                    ws.async_close(websocket::close_reason(
                                       static_cast<websocket::close_code>(st->requested_code),
                                       st->close_reason()),
                                   [st](const bec& ec) { on_close_done(st, ec); });
                    break;
                default:
                    ws.text(item.kind == outgoing::what::text);
                    ws.async_write(boost::asio::buffer(item.data), done);
                }
            });
        }

        /// Our close frame went out and Beast read the peer's answer (it
        /// discards data frames meanwhile), or failed.
        static void on_close_done(const std::shared_ptr<conn_state>& st, const bec& ec) {
            st->writing = false;
            st->queue.clear();
            st->buffered = 0;
            if (!st->owner || st->state == phase::finished) return;
            if (st->owner->refused(*st)) return;
            close_event ev;
            if (!ec) {
                st->with_ws([&](auto& ws) { ev = describe_close_frame(*st, ws.reason()); });
            } else {
                ev.was_open = true;
                ev.initiated_locally = true;
                ev.code = close_code::abnormal;
                ev.error = error::connection_failed;
                ev.detail = "connection to " + st->where() +
                            " dropped during the closing handshake: " + ec.message();
            }
            st->owner->finish(*st, std::move(ev), true);
        }

        // ---- close -------------------------------------------------------

        void close(connection_id id, std::uint16_t code, std::string_view reason) {
            const auto it = conns.find(id);
            if (it == conns.end()) return;
            const std::shared_ptr<conn_state> st = it->second;
            if (st->state == phase::finished || refused(*st)) return;
            if (st->state == phase::connecting) {
                close_event ev;
                ev.initiated_locally = true;
                ev.error = error::operation_cancelled;
                ev.detail = "closed before the handshake with " + st->where() + " completed";
                return finish(*st, std::move(ev), true);
            }
            if (st->state != phase::open) return;
            st->state = phase::closing;
            st->close_requested = true;
            st->requested_code = detail::is_sendable_close_code(code) ? code : close_code::normal;
            st->requested_reason =
                std::make_unique<std::string>(detail::bounded_close_reason(reason));
            st->idle_at = never; // the pings' deadline is replaced below
            // queued messages go first, then the close frame (as websocketpp does)
            enqueue(st, outgoing{outgoing::what::close, {}});
            set_deadline(*st, due::close, clock_type::now() + opts.close_timeout);
        }

        static void on_close_deadline(const std::shared_ptr<conn_state>& s) {
            if (abandoned(s, phase::closing) || s->owner->refused(*s)) return;
            close_event ev;
            ev.was_open = true;
            ev.initiated_locally = true;
            ev.code = s->requested_code;
            ev.reason = s->close_reason();
            ev.error = error::close_timeout;
            ev.detail = "the peer did not finish the closing handshake within " +
                        std::to_string(s->owner->opts.close_timeout.count()) + " ms";
            s->owner->finish(*s, std::move(ev), true);
        }

        // ---- the end of a connection ---------------------------------------

        /// Records the outcome once, stops timers and reports to the sink from
        /// a fresh handler, never from inside the caller. `close_now` closes
        /// the socket at once; otherwise (the peer's close frame arrived) Beast
        /// finishes the closing handshake and teardown, and the socket is
        /// closed after close_timeout at the latest.
        void finish(conn_state& st, close_event ev, bool close_now) {
            if (st.state == phase::finished) return;
            st.state = phase::finished;
            stop_connection(st, close_now);
            if (!close_now) // the linger: the state lives on in Beast's pending operations
                set_deadline(st, due::linger, clock_type::now() + opts.close_timeout);
            boost::asio::post(*io, [s = st.shared_from_this(), ev = std::move(ev)]() mutable {
                core* self = s->owner;
                if (!self) return; // the transport is gone
                s->owner = nullptr;
                const auto sink = s->sink;
                s->sink = detail::beast_sink_ref{};
                self->conns.erase(s->id);
                if (sink.self) sink.close(sink.self, s->id, std::move(ev));
            });
        }

        static void stop_connection(conn_state& st, bool close_now) {
            st.main_due = due::none;
            st.main_at = never;
            st.idle_at = never;
            st.deadlines->remove(st);            // the io_context's timer may fire for nothing
            if (st.hs) st.hs->resolver.cancel(); // an abandoned resolve must not stay queued
            st.wipe_credentials();
            // Closing the socket now (not in a posted handler) stops a TLS
            // handshake or an upgrade request queued behind us.
            if (close_now) st.close_socket();
        }
    };

    std::unique_ptr<core> core_;
};

TETHER_NAMESPACE_END

#endif
