// tether: the production Transport, websocketpp 0.8.2 over standalone Asio.
//
// One type for ws:// and wss:// (the endpoint is chosen per URL). TLS peers
// and host names are verified by default (see tls_options.hpp). The token goes
// where the server wants it: `Authorization: Bearer` (default), a query
// parameter, or a Sec-WebSocket-Protocol entry; it is never sent over plain
// ws:// to a host that is not loopback unless `allow_insecure_token_transport`
// is set. Liveness: a ping every `ping_interval`, the connection is presumed
// dead when nothing arrives within `pong_timeout` of a ping, or when no frame
// at all arrives for `idle_timeout`.
//
// Threading: run the io_context on ONE thread and call the transport from
// that thread (the client does: it lives on the transport's executor). The
// transport refuses an io_context whose handlers it sees on a second thread:
// that connection and every later one fail with a detail saying so. Destroy
// the transport before the io_context, and not from inside one of its sink
// calls.
//
// Cancellation: the transport resolves and connects itself (one resolver per
// connection, so an abandoned resolve is cancelled) and hands websocketpp a
// connected socket; close(), a handshake timeout or the transport's
// destruction before the handshake completes closes that socket at once, so
// no byte of the upgrade request, above all no credential, leaves afterwards.
//
// HTTP proxy (`proxy`, none by default): the transport connects to the proxy
// instead, opens a CONNECT tunnel to the origin on that socket and only then
// hands it to websocketpp, so TLS (wss://) runs to the origin inside the
// tunnel with the origin's SNI and name verification. The handshake deadline
// covers the CONNECT exchange too. The proxy's refusals are reported as
// proxy_auth_required (407), proxy_denied (403, other refusals) or
// proxy_error (5xx), with close_event::proxy_status.
//
//     asio::io_context io;
//     tether::websocketpp_transport_options o;
//     o.tls.ca_file = "/etc/ssl/my-ca.pem";
//     tether::websocketpp_transport t(io, o);
#ifndef TETHER_TRANSPORT_WEBSOCKETPP_TRANSPORT_HPP
#define TETHER_TRANSPORT_WEBSOCKETPP_TRANSPORT_HPP

#if defined(TETHER_USE_BOOST_ASIO)
// clang-format off
#error "tether: the websocketpp transport needs standalone Asio: in Boost mode (TETHER_USE_BOOST_ASIO) use beast_transport"
// clang-format on
#endif

#include <tether/close_event.hpp>
#include <tether/connect_request.hpp>
#include <tether/detail/ascii.hpp>
#include <tether/detail/shared_copy.hpp>
#include <tether/detail/url.hpp>
#include <tether/error.hpp>
#include <tether/message.hpp>
#include <tether/proxy.hpp>
#include <tether/tls_options.hpp>
#include <tether/transport/transport_options.hpp>

// websocketpp 0.8.2 (its latest release) does not compile as C++20 with GCC 11
// or newer. In header-only mode, say so in one line naming the fix, and do not
// include websocketpp at all, instead of a hundred lines of its errors (the
// headers built on the transport skip their content too). Separate compilation
// (TETHER_SEPARATE_COMPILATION, below) keeps websocketpp out of the
// application's translation units, which may then be C++20. Clang accepts it;
// define TETHER_WEBSOCKETPP_ACCEPTS_CXX20 for a websocketpp with the C++20 fixes.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11 && __cplusplus > 201703L &&         \
    !defined(TETHER_WEBSOCKETPP_ACCEPTS_CXX20) && !defined(TETHER_SEPARATE_COMPILATION)
#define TETHER_DETAIL_NO_WEBSOCKETPP 1 // the headers built on the transport skip their content
// clang-format off
#error "tether: websocketpp 0.8.2 does not compile as C++20 with GCC >= 11: define TETHER_SEPARATE_COMPILATION and compile <tether/src.hpp> in one C++17 file (CMake: link tether::compiled), or build this file at C++17; see docs/packaging.md, 'Separate compilation'"
// clang-format on
#else

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

TETHER_NAMESPACE_BEGIN

struct websocketpp_transport_options {
    token_placement token_in = token_placement::authorization_header;
    /// Query parameter name for token_placement::query_parameter. Note that
    /// URLs end up in proxy and server access logs; prefer the header.
    std::string token_query_parameter = "access_token";
    /// Prepended to the token for token_placement::subprotocol (for example
    /// "base64url.bearer.authorization.k8s.io."); the token must then consist
    /// of HTTP token characters. If the server selects that entry, open_info
    /// reports it as "[token]".
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
    /// After close(), the peer has this long to finish the closing handshake.
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
    std::size_t max_body_excerpt = 512;

    /// Throws std::system_error (error::invalid_option) naming the bad option.
    void validate() const {
        const auto fail = [](const std::string& what) {
            throw detail::invalid_option("tether: websocketpp_transport_options: " + what);
        };
        if (handshake_timeout.count() <= 0) fail("handshake_timeout must be positive");
        if (close_timeout.count() <= 0) fail("close_timeout must be positive");
        if (ping_interval.count() < 0) fail("ping_interval must not be negative");
        if (ping_interval.count() > 0 && pong_timeout.count() <= 0)
            fail("pong_timeout must be positive when pings are enabled");
        if (idle_timeout.count() < 0) fail("idle_timeout must not be negative");
        if (max_message_size == 0) fail("max_message_size must be at least 1");
        proxy.validate("websocketpp_transport_options");
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

/// True when two transports may share one copy of these options. Compares
/// every field (a field added to websocketpp_transport_options must be added
/// here); a proxy configuration is never shared (it may hold credentials),
/// and "not the same" only costs a copy.
inline bool same_transport_settings(const websocketpp_transport_options& a,
                                    const websocketpp_transport_options& b) {
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
           a.max_message_size == b.max_message_size && a.max_body_excerpt == b.max_body_excerpt;
}

/// Validated options, shared: while a transport made with equal options is
/// alive, its copy is returned again. The options are 680 bytes (strings,
/// vectors, TLS and proxy settings) and were copied into every transport,
/// that is into every client; thousands of clients are usually made with
/// one configuration. Read-only once made, so sharing across threads is safe.
/// Throws std::system_error (error::invalid_option) for invalid options.
inline std::shared_ptr<const websocketpp_transport_options>
shared_transport_options(websocketpp_transport_options o) {
    o.validate();
    return shared_copy(std::move(o), &same_transport_settings);
}

/// A sink, type-erased without allocation: the object and a table of three
/// thunks per Sink type (16 bytes in every connection, where the object and
/// three thunk pointers took 32).
struct transport_sink_ref {
    struct thunks {
        void (*open)(void*, connection_id, const open_info&);
        void (*message)(void*, connection_id, const message_view&);
        void (*close)(void*, connection_id, close_event&&);
    };
    void* self = nullptr;
    const thunks* fns = nullptr;

    void open(void* p, connection_id id, const open_info& i) const { fns->open(p, id, i); }
    void message(void* p, connection_id id, const message_view& m) const { fns->message(p, id, m); }
    void close(void* p, connection_id id, close_event&& e) const {
        fns->close(p, id, std::move(e));
    }

    template <class Sink> static transport_sink_ref to(Sink& s) {
        static constexpr thunks table{&open_of<Sink>, &message_of<Sink>, &close_of<Sink>};
        transport_sink_ref r;
        r.self = &s;
        r.fns = &table;
        return r;
    }

private:
    template <class Sink> static void open_of(void* p, connection_id id, const open_info& i) {
        static_cast<Sink*>(p)->on_transport_open(id, i);
    }
    template <class Sink> static void message_of(void* p, connection_id id, const message_view& m) {
        static_cast<Sink*>(p)->on_transport_message(id, m);
    }
    template <class Sink> static void close_of(void* p, connection_id id, close_event&& e) {
        static_cast<Sink*>(p)->on_transport_close(id, std::move(e));
    }
};

} // namespace detail

/// Which URL schemes a transport instance serves. Each scheme instantiates a
/// websocketpp endpoint, which is most of the compile cost: a transport that
/// only ever talks wss:// compiles faster as `websocketpp_wss_transport`.
enum class websocket_schemes : unsigned char { ws_and_wss, wss_only, ws_only };

/// The production Transport (see transport/concept.hpp for the contract).
template <websocket_schemes Schemes> class basic_websocketpp_transport {
    static constexpr bool with_plain = Schemes != websocket_schemes::wss_only;
    static constexpr bool with_tls = Schemes != websocket_schemes::ws_only;

public:
    using executor_type = asio::io_context::executor_type;
    using clock_type = std::chrono::steady_clock;
    using timer_type = asio::steady_timer;
    using options = websocketpp_transport_options;

    /// Runs on the caller's io_context, which must outlive the transport.
    /// (No owned io_context: a client keeps itself alive through handlers it
    /// posts, and an io_context owned by its own handlers would never be freed.)
    /// Throws std::system_error (error::invalid_option) for invalid options or TLS settings.
    explicit basic_websocketpp_transport(asio::io_context& io, options o = {});

    basic_websocketpp_transport(basic_websocketpp_transport&&) noexcept;
    basic_websocketpp_transport& operator=(basic_websocketpp_transport&&) noexcept;
    basic_websocketpp_transport(const basic_websocketpp_transport&) = delete;
    basic_websocketpp_transport& operator=(const basic_websocketpp_transport&) = delete;
    ~basic_websocketpp_transport();

    executor_type get_executor() const noexcept { return io_->get_executor(); }
    clock_type::time_point now() const noexcept { return clock_type::now(); }
    timer_type make_timer() const { return timer_type(io_->get_executor()); }
    asio::io_context& context() const noexcept { return *io_; }
    const options& get_options() const noexcept;
    /// Connections started and not yet reported closed.
    std::size_t active_connections() const noexcept;

    /// Starts one attempt; every outcome reaches `sink` later, on the executor.
    template <class Sink> connection_id connect(const connect_request& req, Sink& sink) {
        return connect_to(req, detail::transport_sink_ref::to(sink));
    }

    /// Queues one message on an open connection.
    std::error_code send(connection_id id, std::string_view data, message_kind kind);

    /// Bytes send() took for `id` that websocketpp has not written to the
    /// socket yet (0 for an unknown or closed connection).
    std::size_t buffered_amount(connection_id id) const;

    /// Starts a graceful close (an abort while still connecting). Idempotent;
    /// unknown ids are ignored. Invalid codes become 1000; long reasons are cut.
    void close(connection_id id, std::uint16_t code, std::string_view reason);

private:
    struct core; // defined in impl/websocketpp_transport.ipp, with websocketpp

    connection_id connect_to(const connect_request& req, detail::transport_sink_ref sink);

    asio::io_context* io_;
    std::unique_ptr<core> core_;
};

/// ws:// and wss://.
using websocketpp_transport = basic_websocketpp_transport<websocket_schemes::ws_and_wss>;
/// wss:// only (compiles faster: one websocketpp endpoint).
using websocketpp_wss_transport = basic_websocketpp_transport<websocket_schemes::wss_only>;
/// ws:// only (loopback services, tests; loads no trust store).
using websocketpp_ws_transport = basic_websocketpp_transport<websocket_schemes::ws_only>;

// Header-only (the default): the implementation, with websocketpp, comes along.
// Separate compilation: it is compiled once, in the file that includes
// <tether/src.hpp>; this file then needs no websocketpp, OpenSSL headers aside.
#if defined(TETHER_SEPARATE_COMPILATION)
extern template class basic_websocketpp_transport<websocket_schemes::ws_and_wss>;
extern template class basic_websocketpp_transport<websocket_schemes::wss_only>;
extern template class basic_websocketpp_transport<websocket_schemes::ws_only>;
#endif

TETHER_NAMESPACE_END

#if !defined(TETHER_SEPARATE_COMPILATION)
#include <tether/transport/impl/websocketpp_transport.ipp>
#endif

#endif // C++20 with GCC >= 11

#endif
