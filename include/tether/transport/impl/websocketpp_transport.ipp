// tether: the websocketpp transport's implementation (websocketpp 0.8.2 over
// standalone Asio). Not a header to include: websocketpp_transport.hpp brings
// it along in header-only mode, and <tether/src.hpp> compiles it once in
// separate mode (TETHER_SEPARATE_COMPILATION).
#ifndef TETHER_TRANSPORT_IMPL_WEBSOCKETPP_TRANSPORT_IPP
#define TETHER_TRANSPORT_IMPL_WEBSOCKETPP_TRANSPORT_IPP

#include <tether/transport/websocketpp_transport.hpp>

#include <tether/detail/close_payload.hpp>
#include <tether/detail/connection_map.hpp>
#include <tether/detail/printable.hpp>
#include <tether/detail/proxy_tunnel.hpp>
#include <tether/detail/retry_after.hpp>
#include <tether/detail/wake_heap.hpp>
#include <tether/detail/wipe.hpp>

#ifndef TETHER_DETAIL_NO_WEBSOCKETPP // C++20 with GCC: the transport header said why

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11 && __cplusplus > 201703L &&         \
    !defined(TETHER_WEBSOCKETPP_ACCEPTS_CXX20)
// clang-format off
#error "tether: websocketpp 0.8.2 does not compile as C++20 with GCC >= 11: compile the file that includes <tether/src.hpp> at C++17 (the rest of the program may be C++20)"
// clang-format on
#define TETHER_DETAIL_NO_WEBSOCKETPP 1 // nothing more: one line, not websocketpp's hundred
#else

#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>

#include <websocketpp/client.hpp>
#include <websocketpp/concurrency/none.hpp>
#include <websocketpp/config/asio_client.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <type_traits>

TETHER_NAMESPACE_BEGIN
namespace detail {

/// websocketpp configurations: single-threaded (the transport lives on one
/// thread), silent (the library logs to stdout by default), and with
/// websocketpp's per-phase connect timeouts pushed out of the way because the
/// transport enforces one overall handshake deadline itself.
template <class Base, class SocketType> struct wspp_client_config : Base {
    typedef wspp_client_config type;
    typedef Base base;

    typedef websocketpp::concurrency::none concurrency_type;
    typedef typename base::request_type request_type;
    typedef typename base::response_type response_type;
    typedef typename base::message_type message_type;
    typedef typename base::con_msg_manager_type con_msg_manager_type;
    typedef typename base::endpoint_msg_manager_type endpoint_msg_manager_type;
    typedef websocketpp::log::basic<concurrency_type, websocketpp::log::elevel> elog_type;
    typedef websocketpp::log::basic<concurrency_type, websocketpp::log::alevel> alog_type;
    typedef websocketpp::random::random_device::int_generator<std::uint32_t, concurrency_type>
        rng_type;

    struct transport_config : base::transport_config {
        typedef typename type::concurrency_type concurrency_type;
        typedef typename type::alog_type alog_type;
        typedef typename type::elog_type elog_type;
        typedef typename type::request_type request_type;
        typedef typename type::response_type response_type;
        typedef SocketType socket_type;

        static bool const enable_multithreading = false;
        static const long timeout_socket_pre_init = 24L * 3600 * 1000;
        static const long timeout_proxy = 24L * 3600 * 1000;
        static const long timeout_socket_post_init = 24L * 3600 * 1000;
        static const long timeout_dns_resolve = 24L * 3600 * 1000;
        static const long timeout_connect = 24L * 3600 * 1000;
        /// bounds how long a dead peer's socket lingers after we gave up on it
        static const long timeout_socket_shutdown = 2000;
    };
    /// A peer that breaks the protocol or sends an oversized message is
    /// dropped at once, so the reason reaches close_event::error intact.
    static const bool drop_on_protocol_error = true;
    typedef websocketpp::transport::asio::endpoint<transport_config> transport_type;

    static bool const enable_multithreading = false;
    static const websocketpp::log::level elog_level = websocketpp::log::elevel::none;
    static const websocketpp::log::level alog_level = websocketpp::log::alevel::none;
};

using wspp_plain_config = wspp_client_config<websocketpp::config::asio_client,
                                             websocketpp::transport::asio::basic_socket::endpoint>;
using wspp_tls_config = wspp_client_config<websocketpp::config::asio_tls_client,
                                           websocketpp::transport::asio::tls_socket::endpoint>;
using wspp_plain_client = websocketpp::client<wspp_plain_config>;
using wspp_tls_client = websocketpp::client<wspp_tls_config>;
using wspp_tls_stream = websocketpp::transport::asio::tls_socket::connection::socket_type;

} // namespace detail

template <websocket_schemes Schemes> struct basic_websocketpp_transport<Schemes>::core {
    enum class phase : unsigned char { connecting, open, closing, finished };
    /// What a connection's main deadline is for: the handshake, then (open)
    /// the next ping or the pong, then the close. Never two at once.
    enum class due : unsigned char { none, handshake, ping, pong, close };
    static constexpr clock_type::time_point never = clock_type::time_point::max();
    static constexpr std::uint32_t not_queued = ~std::uint32_t(0);
    // Bound to the io_context's executor rather than asio::steady_timer's
    // polymorphic one: 72 bytes instead of 120.
    using timer = asio::basic_waitable_timer<clock_type, asio::wait_traits<clock_type>,
                                             asio::io_context::executor_type>;
    struct endpoints;

    /// Everything about one connection. The websocketpp connection's handlers
    /// hold it (so it outlives queued handlers); it holds the websocketpp
    /// connection until the outcome is known. `owner` and `sink` are cleared
    /// when the transport goes away, so no handler reaches a dead sink.
    struct conn_state : std::enable_shared_from_this<conn_state> {
        conn_state(core* o, connection_id i, detail::transport_sink_ref s,
                   std::shared_ptr<endpoints> e)
            : owner(o), id(i), sink(s), eps(std::move(e)) {}
        conn_state(const conn_state&) = delete;
        conn_state& operator=(const conn_state&) = delete;
        ~conn_state() { eps->deadlines.remove(*this); }

        core* owner;
        connection_id id;
        detail::transport_sink_ref sink;
        // shared by every connection on the io_context; kept alive by each, as
        // queued websocketpp handlers may outlive the transport
        std::shared_ptr<endpoints> eps;
        std::shared_ptr<websocketpp::connection<detail::wspp_plain_config>> plain;
        std::shared_ptr<websocketpp::connection<detail::wspp_tls_config>> tls;
        phase state = phase::connecting;
        due main_due = due::none;
        std::uint16_t port = 0;
        std::uint16_t requested_code = close_code::normal;
        bool close_requested = false;
        std::uint32_t queue_index = not_queued; // in eps->deadlines' heap

        std::string host; // without IPv6 brackets: for the resolver, SNI and verification
        // set: the socket goes to it, then CONNECT host:port (a pointer: 8
        // bytes, where std::optional<proxy_server> took 112 in every connection)
        std::unique_ptr<proxy_server> proxy;
        bool tunnel_open = false;
        bool loopback_only = false; // a token over plain ws://: loopback addresses only
        bool started = false;       // websocketpp has the connected socket
        bool handshake_done = false;
        bool tls_setup_failed = false;
        bool tcp_connected = false;
        bool tls_done = false;
        /// What only the opening handshake needs: made by connect(), dropped
        /// on open (88 bytes an idle connection would otherwise carry).
        struct handshake_state {
            // ours, so an abandoned resolve can be cancelled
            std::unique_ptr<asio::ip::tcp::resolver> resolver;
            std::shared_ptr<tls_handshake_report> tls_report;
            std::vector<std::string> offered_subprotocols;
            std::string token_subprotocol;
            ~handshake_state() {
                detail::wipe(token_subprotocol);
                for (auto& p : offered_subprotocols)
                    detail::wipe(p);
            }
        };
        std::unique_ptr<handshake_state> hs;

        std::string requested_reason;

        // Deadlines, kept by the io_context's deadline_queue: `main_due` at
        // `main_at` (never when none), the next idle check at `idle_at`.
        // Every handler checks the phase.
        clock_type::time_point main_at = never;
        clock_type::time_point idle_at = never;
        clock_type::time_point wake_at() const noexcept { return std::min(main_at, idle_at); }
        // Frames seen, compared only for change (32 bits wrap harmlessly).
        std::uint32_t frames_received = 0;
        std::uint32_t frames_at_ping = 0;
        std::uint32_t frames_at_idle_check = 0;
        clock_type::time_point ping_sent_at{};
        clock_type::time_point last_activity{};

        std::string where() const { return detail::format_authority(host, port, 0); }
        /// Whom the TCP connection goes to.
        std::string peer() const { return proxy ? "HTTP proxy " + proxy->authority() : where(); }

        template <class F> void with_connection(F&& f) {
            if constexpr (with_plain)
                if (plain) f(*plain);
            if constexpr (with_tls)
                if (tls) f(*tls);
        }
    };

    struct no_endpoint {};

    /// Every connection's deadlines on one io_context behind one timer: a
    /// binary min-heap of connections by wake-up time, each knowing its index.
    /// A timer per connection cost 72 bytes, plus a pending wait of about 100
    /// bytes and a slot in Asio's timer queue, in every idle connection (a
    /// ping is always due). Only touched on the io_context's thread.
    struct deadline_queue {
        explicit deadline_queue(asio::io_context& io) : wakeup(io) {}

        timer wakeup;
        detail::wake_heap<conn_state> heap;
        clock_type::time_point armed_at = never; // the pending wait's expiry
        std::uint64_t generation = 0;            // tells a re-armed wait's stale completion
        bool running = false;                    // run_due() is under way: it re-arms at the end

        /// After st's main_at or idle_at changed: (re)queues it at the earlier.
        void update(conn_state& st) {
            if (st.wake_at() == never) return remove(st);
            heap.place(st);
        }
        void remove(conn_state& st) noexcept { heap.remove(st); }
    };

    /// The websocketpp endpoints, one set per io_context, shared by every
    /// transport on it: an endpoint (random_device, loggers, handler table,
    /// resolver) costs kilobytes, and one per client made an idle tether
    /// connection cost 2.7 times a plain websocketpp one. Nothing in an
    /// endpoint is per transport: handlers and timeouts are set on each
    /// connection, and the TLS context and options come from the transport
    /// whose connection get_connection() is building (`constructing`). Shared
    /// only within one io_context, whose handlers run on one thread at a time
    /// under the transport's threading contract.
    struct endpoints : std::enable_shared_from_this<endpoints> {
        std::conditional_t<with_plain, detail::wspp_plain_client, no_endpoint> plain;
        std::conditional_t<with_tls, detail::wspp_tls_client, no_endpoint> tls;
        conn_state* constructing = nullptr; // the connection get_connection() is building
        /// The thread seen running this io_context's transport handlers, and
        /// whether a second one was seen (then everything is refused).
        std::atomic<std::thread::id> runner{};
        std::atomic<bool> multi_threaded{false};
        asio::io_context* context;
        deadline_queue deadlines;

        explicit endpoints(asio::io_context& io) : context(&io), deadlines(io) {
            if constexpr (with_plain) plain.init_asio(&io);
            if constexpr (with_tls) {
                tls.init_asio(&io);
                tls.set_tls_init_handler([this](websocketpp::connection_hdl) {
                    return constructing ? constructing->owner->tls_context : nullptr;
                });
                tls.set_socket_init_handler(
                    [this](websocketpp::connection_hdl, detail::wspp_tls_stream& s) {
                        if (!constructing) return;
                        constructing->hs->tls_report = std::make_shared<tls_handshake_report>();
                        if (!prepare_tls_client_stream(s, constructing->host,
                                                       constructing->owner->opts().tls,
                                                       constructing->hs->tls_report))
                            constructing->tls_setup_failed = true;
                    });
            }
        }

        /// False once this io_context's handlers have been seen on two threads.
        /// Checked in every handler and in calls made from a handler; a call
        /// from outside run() (before it, or from the thread that will run it)
        /// is not a handler and is not counted.
        bool single_threaded() noexcept {
            if (multi_threaded.load(std::memory_order_relaxed)) return false;
            if (!context->get_executor().running_in_this_thread()) return true;
            const auto me = std::this_thread::get_id();
            std::thread::id expected{};
            if (runner.compare_exchange_strong(expected, me) || expected == me) return true;
            multi_threaded.store(true);
            return false;
        }

        static std::shared_ptr<endpoints> for_context(asio::io_context& io) {
            static std::mutex mutex;
            static std::vector<std::pair<asio::io_context*, std::weak_ptr<endpoints>>> made;
            std::lock_guard<std::mutex> lock(mutex);
            std::shared_ptr<endpoints> found;
            for (auto it = made.begin(); it != made.end();) {
                auto eps = it->second.lock();
                if (!eps) {
                    it = made.erase(it);
                    continue;
                }
                if (it->first == &io) found = std::move(eps);
                ++it;
            }
            if (found) return found;
            auto eps = std::make_shared<endpoints>(io);
            made.emplace_back(&io, eps);
            return eps;
        }
    };

    core(asio::io_context& context, options o)
        : io(&context), shared_opts(detail::shared_transport_options(std::move(o))) {
        // Settings that name files are checked (and loaded) here, as
        // documented. Default settings cannot be wrong, and a ws:// and
        // wss:// transport that only ever opens ws:// need not load the
        // system trust store (about 1 MB of heap, several MB touched,
        // once per process): its first wss:// connection makes the context.
        if constexpr (with_tls)
            if (!with_plain || !detail::same_tls_settings(opts().tls, tls_options{}))
                tls_context = shared_tls_client_context(opts().tls);
        eps = endpoints::for_context(*io);
    }

    ~core() {
        // Detach every connection: no sink call from now on. Queued
        // websocketpp handlers keep the endpoints alive through their
        // connection's state, so they stay valid until the io_context
        // drops those handlers.
        auto all = std::move(conns);
        for (auto& entry : all)
            detach(*entry.second);
    }

    asio::io_context* io;
    std::shared_ptr<const options> shared_opts; // one copy for all equal options
    const options& opts() const noexcept { return *shared_opts; }
    std::shared_ptr<asio::ssl::context> tls_context; // shared among equal tls_options
    std::shared_ptr<endpoints> eps;
    detail::connection_map<std::shared_ptr<conn_state>> conns;
    connection_id last_id = 0;

    // ---- connect ---------------------------------------------------

    connection_id connect(const connect_request& req, detail::transport_sink_ref sink) {
        const connection_id id = ++last_id;
        auto st = std::make_shared<conn_state>(this, id, sink, eps);
        st->hs = std::make_unique<typename conn_state::handshake_state>();
        conns.emplace(id, st);
        if (!eps->single_threaded()) {
            refuse_threads(*st);
            return id;
        }

        std::string why;
        auto url = detail::parse_ws_url(req.url, why);
        if (!url) {
            fail_early(*st, error::invalid_url, why);
            return id;
        }
        st->host = url->host;
        st->port = url->port;
        const bool has_token = !req.token.empty();
        if (has_token &&
            !detail::token_transport_allowed(*url, opts().allow_insecure_token_transport)) {
            fail_early(*st, error::insecure_transport,
                       "refusing to send the token over ws:// to '" + url->host +
                           "': use wss:// or set allow_insecure_token_transport");
            return id;
        }
        // the name said loopback; the addresses it resolves to must say so too (and
        // through a proxy, the proxy's: the token crosses its link in clear)
        st->loopback_only = has_token && !url->secure && !opts().allow_insecure_token_transport;
        if (const proxy_server* p = opts().proxy.select(url->secure, url->host, url->port))
            st->proxy = std::make_unique<proxy_server>(*p);

        std::string target = url->target;
        const std::string_view token = req.token.reveal();
        if (has_token) {
            bool ok = false;
            switch (opts().token_in) {
            case token_placement::authorization_header:
                ok = detail::is_credential_text(token);
                break;
            case token_placement::query_parameter:
                detail::append_query_parameter(target, opts().token_query_parameter, token);
                ok = true;
                break;
            case token_placement::subprotocol:
                st->hs->token_subprotocol = opts().token_subprotocol_prefix + std::string(token);
                ok = detail::is_http_token(st->hs->token_subprotocol);
                break;
            }
            if (!ok) {
                fail_early(*st, error::invalid_upgrade_request,
                           "the token contains characters that cannot be placed in the upgrade "
                           "request as configured");
                return id;
            }
        }
        const std::vector<std::string>* subprotocol_lists[] = {&opts().subprotocols,
                                                               &req.subprotocols};
        for (const auto* list : subprotocol_lists)
            for (const auto& p : *list) {
                if (!detail::is_http_token(p)) {
                    fail_early(*st, error::invalid_upgrade_request,
                               "subprotocol '" + detail::body_excerpt(p, 64) +
                                   "' is not a valid token");
                    return id;
                }
                st->hs->offered_subprotocols.push_back(p);
            }
        if (!st->hs->token_subprotocol.empty())
            st->hs->offered_subprotocols.push_back(st->hs->token_subprotocol);
        const std::vector<http_header>* header_lists[] = {&opts().headers, &req.headers};
        for (const auto* list : header_lists)
            for (const auto& h : *list)
                if (!detail::is_http_token(h.first) || !detail::is_safe_header_value(h.second)) {
                    fail_early(*st, error::invalid_upgrade_request,
                               "header '" + detail::body_excerpt(h.first, 64) +
                                   "' is not a valid HTTP header");
                    return id;
                }

        if (url->secure ? !with_tls : !with_plain) {
            fail_early(*st, error::invalid_url,
                       url->secure
                           ? "this transport was built for ws:// only (websocket_schemes)"
                           : "this transport was built for wss:// only (websocket_schemes)");
            return id;
        }
        // websocketpp writes Host from the URI's host: an IPv6 literal needs its
        // brackets there (RFC 7230 5.4); resolver, SNI and verification use st->host
        auto location = std::make_shared<websocketpp::uri>(
            url->secure, url->ipv6_literal ? "[" + url->host + "]" : url->host, url->port, target);
        // may hold the token (query placement); websocketpp keeps its own copy
        detail::wipe(target);
        if constexpr (with_tls) {
            if (url->secure && !tls_context) {
                try {
                    tls_context = shared_tls_client_context(opts().tls);
                } catch (const std::exception& e) {
                    fail_early(*st, error::connection_failed,
                               std::string("TLS setup failed: ") + e.what());
                    return id;
                }
            }
        }
        std::error_code ec;
        eps->constructing = st.get();
        if constexpr (with_tls)
            if (url->secure) st->tls = eps->tls.get_connection(location, ec);
        if constexpr (with_plain)
            if (!url->secure) st->plain = eps->plain.get_connection(location, ec);
        eps->constructing = nullptr;
        if (ec) {
            st->plain.reset();
            st->tls.reset();
            fail_early(*st, error::connection_failed,
                       "cannot create the connection: " + ec.message());
            return id;
        }
        if (st->tls_setup_failed) {
            fail_early(*st, error::connection_failed,
                       "TLS setup for '" + detail::body_excerpt(st->host, 64) +
                           "' failed: OpenSSL refused it as the SNI name (longer than 255 bytes?)");
            return id;
        }

        st->with_connection([&](auto& con) {
            // what websocketpp's own connect() would have set on the socket layer (SNI)
            static_cast<typename std::decay_t<decltype(con)>::transport_con_type&>(con).set_uri(
                location);
            prepare(st, con, req, has_token ? token : std::string_view{});
        });
        arm_handshake_deadline(st);
        st->hs->resolver = std::make_unique<asio::ip::tcp::resolver>(*io);
        st->hs->resolver->async_resolve(
            st->proxy ? st->proxy->host : st->host,
            std::to_string(st->proxy ? st->proxy->port : st->port),
            [st](const std::error_code& e, asio::ip::tcp::resolver::results_type r) {
                on_resolved(st, e, std::move(r));
            });
        return id;
    }

    /// A second thread runs this io_context: refuse (see the header comment).
    void refuse_threads(conn_state& st) {
        close_event ev;
        ev.error = error::connection_failed;
        ev.detail =
            "websocketpp_transport: the io_context is run by more than one thread; run it on "
            "one thread (README, Threads)";
        finish(st, std::move(ev), true);
    }

    static void on_resolved(const std::shared_ptr<conn_state>& st, const std::error_code& ec,
                            asio::ip::tcp::resolver::results_type results) {
        if (!st->owner || st->state != phase::connecting) return; // abandoned
        core& self = *st->owner;
        if (!self.eps->single_threaded()) return self.refuse_threads(*st);
        if (ec) {
            close_event ev;
            ev.error = error::connection_failed;
            ev.detail = "cannot resolve '" + (st->proxy ? st->proxy->host : st->host) + "'" +
                        (st->proxy ? " (the HTTP proxy)" : "") + ": " + ec.message();
            self.finish(*st, std::move(ev), true);
            return;
        }
        std::vector<asio::ip::tcp::endpoint> endpoints;
        for (const auto& entry : results)
            if (!st->loopback_only ||
                detail::plain_endpoint_allowed(entry.endpoint().address(), false))
                endpoints.push_back(entry.endpoint());
        if (endpoints.empty()) {
            close_event ev;
            ev.error = error::insecure_transport;
            ev.detail = st->peer() +
                        " resolved to no loopback address; refusing to send the token over "
                        "ws://";
            self.finish(*st, std::move(ev), true);
            return;
        }
        st->with_connection([&](auto& con) {
            // The socket is websocketpp's connection's: the operation keeps
            // that connection alive until it completes (a close or stop
            // may drop the transport's own reference first).
            asio::async_connect(con.get_raw_socket(), endpoints,
                                [st, keep = con.get_shared()](const std::error_code& e,
                                                              const asio::ip::tcp::endpoint&) {
                                    on_connected(st, e);
                                });
        });
    }

    static void on_connected(const std::shared_ptr<conn_state>& st, const std::error_code& ec) {
        if (!st->owner || st->state != phase::connecting) return; // abandoned: the socket is closed
        core& self = *st->owner;
        if (!self.eps->single_threaded()) return self.refuse_threads(*st);
        if (ec) {
            close_event ev;
            ev.error = error::connection_failed;
            ev.detail = "cannot connect to " + st->peer() + ": " + ec.message();
            self.finish(*st, std::move(ev), true);
            return;
        }
        st->tcp_connected = true;
        if (st->proxy) {
            st->with_connection([&](auto& con) {
                detail::async_proxy_connect(
                    tcp_socket_of(con), *st->proxy, st->host, st->port, self.opts().user_agent,
                    [st, keep = con.get_shared()](const detail::proxy_reply& r) {
                        on_tunnel(st, r);
                    });
            });
            return;
        }
        start_websocket(st);
    }

    /// The connection's TCP socket, under TLS if any (not yet started).
    template <class Con> static asio::ip::tcp::socket& tcp_socket_of(Con& con) {
        auto& s = con.get_socket();
        if constexpr (std::is_same_v<std::decay_t<decltype(s)>, asio::ip::tcp::socket>)
            return s;
        else
            return s.next_layer();
    }

    static void on_tunnel(const std::shared_ptr<conn_state>& st, const detail::proxy_reply& r) {
        if (!st->owner || st->state != phase::connecting) return; // abandoned: the socket is closed
        core& self = *st->owner;
        if (!self.eps->single_threaded()) return self.refuse_threads(*st);
        if (r.error) {
            close_event ev;
            ev.error = r.error.category() == error_category()
                           ? r.error
                           : make_error_code(error::connection_failed);
            ev.proxy_status = r.status;
            ev.retry_after = r.retry_after;
            ev.detail = r.detail + " (tunnel to " + st->where() + ")";
            self.finish(*st, std::move(ev), true);
            return;
        }
        st->tunnel_open = true;
        start_websocket(st);
    }

    static void start_websocket(const std::shared_ptr<conn_state>& st) {
        st->started = true;
        // websocketpp takes over the connected socket: TLS, then the upgrade request
        st->with_connection([](auto& con) { con.start(); });
    }

    /// The Authorization value in websocketpp's copy of the request. (Its
    /// serialised request is out of reach: README, "Secrets in memory".)
    template <class Con> static void wipe_request_credentials(Con& con) noexcept {
        const std::string& auth = con.get_request_header("Authorization");
        if (!auth.empty())
            detail::wipe(const_cast<std::string&>(auth)); // a map value websocketpp owns
    }

    template <class Con>
    void prepare(const std::shared_ptr<conn_state>& st, Con& con, const connect_request& req,
                 std::string_view token) {
        const std::vector<http_header>* header_lists[] = {&opts().headers, &req.headers};
        for (const auto* list : header_lists)
            for (const auto& h : *list)
                con.append_header(h.first, h.second);
        if (!token.empty() && opts().token_in == token_placement::authorization_header) {
            std::string value;
            value.reserve(7 + token.size());
            value += "Bearer ";
            value += token;
            con.replace_header("Authorization", value);
            detail::wipe(value);
        }
        if (con.get_request_header("User-Agent").empty() && !opts().user_agent.empty())
            con.replace_header("User-Agent", opts().user_agent);
        for (const auto& p : st->hs->offered_subprotocols)
            con.add_subprotocol(p);

        con.set_open_handshake_timeout(0); // our own deadline covers the whole connect
        con.set_close_handshake_timeout(static_cast<long>(opts().close_timeout.count()));
        con.set_pong_timeout(0);
        con.set_max_message_size(opts().max_message_size);

        // The open handler owns `st` for the connection; the other handlers,
        // members of the same connection object, borrow it: a std::function
        // holding a shared_ptr allocates, one holding a pointer does not
        // (four allocations per connection).
        con.set_open_handler([st](websocketpp::connection_hdl) { on_open(st); });
        con.set_tcp_pre_init_handler(
            [s = st.get()](websocketpp::connection_hdl) { on_tcp_connected(*s); });
        con.set_tcp_post_init_handler(
            [s = st.get()](websocketpp::connection_hdl) { s->tls_done = true; });
        con.set_fail_handler(
            [s = st.get()](websocketpp::connection_hdl) { on_fail(s->shared_from_this()); });
        con.set_close_handler(
            [s = st.get()](websocketpp::connection_hdl) { on_close(s->shared_from_this()); });
        con.set_message_handler([s = st.get()](websocketpp::connection_hdl, const auto& msg) {
            // s is alive: the connection holding this handler holds `st` too (open handler)
            ++s->frames_received;
            if (!s->sink.self || s->state == phase::finished) return;
            if (!s->owner->eps->single_threaded()) return s->owner->refuse_threads(*s);
            const auto kind = msg->get_opcode() == websocketpp::frame::opcode::binary
                                  ? message_kind::binary
                                  : message_kind::text;
            s->sink.message(s->sink.self, s->id, message_view{msg->get_payload(), kind});
        });
        con.set_ping_handler([s = st.get()](websocketpp::connection_hdl, std::string) {
            ++s->frames_received;
            return true; // answer with a pong
        });
        con.set_pong_handler(
            [s = st.get()](websocketpp::connection_hdl, std::string) { ++s->frames_received; });
    }

    /// Reports a failure found before any network activity (later, never inline).
    void fail_early(conn_state& st, error e, std::string detail) {
        close_event ev;
        ev.error = e;
        ev.detail = std::move(detail);
        finish(st, std::move(ev), false);
    }

    static void on_tcp_connected(conn_state& st) {
        std::error_code ec;
        st.with_connection(
            [&](auto& con) { con.get_raw_socket().set_option(asio::ip::tcp::no_delay(true), ec); });
        if constexpr (with_tls) {
            if (st.tls && st.state != phase::finished) {
                // websocketpp sets SNI from the URL host even for IP literals; RFC 6066 forbids
                // that
                asio::ip::make_address(st.host, ec);
                if (!ec) SSL_set_tlsext_host_name(st.tls->get_socket().native_handle(), nullptr);
            }
        }
    }

    // ---- deadlines ---------------------------------------------------

    /// Sets st's main deadline (due::none clears it).
    static void set_deadline(conn_state& st, due what, clock_type::time_point at) {
        st.main_due = what;
        st.main_at = what == due::none ? never : at;
        reschedule(st);
    }

    static void reschedule(conn_state& st) {
        st.eps->deadlines.update(st);
        arm(*st.eps);
    }

    /// Points the io_context's one timer at the earliest wake-up, if it is
    /// not already waiting for that or an earlier one. (A wait for a time
    /// nobody needs any more just finds nothing due.)
    static void arm(endpoints& e) {
        deadline_queue& q = e.deadlines;
        if (q.running || q.heap.empty() || q.heap.front()->wake_at() >= q.armed_at) return;
        q.armed_at = q.heap.front()->wake_at();
        const std::uint64_t generation = ++q.generation;
        q.wakeup.expires_at(q.armed_at);
        q.wakeup.async_wait([w = std::weak_ptr<endpoints>(e.shared_from_this()),
                             generation](const std::error_code&) {
            const auto eps = w.lock();
            if (!eps || eps->deadlines.generation != generation) return; // re-armed since
            eps->deadlines.armed_at = never;
            run_due(*eps);
        });
    }

    /// Runs every deadline that has passed, earliest first.
    static void run_due(endpoints& e) {
        deadline_queue& q = e.deadlines;
        q.running = true;
        const auto now = clock_type::now();
        while (!q.heap.empty() && q.heap.front()->wake_at() <= now) {
            const std::shared_ptr<conn_state> st = q.heap.front()->shared_from_this();
            q.remove(*st);
            if (st->main_due != due::none && st->main_at <= now) {
                const due what = st->main_due;
                st->main_due = due::none;
                st->main_at = never;
                on_deadline(st, what);
            }
            if (st->idle_at <= now) {
                st->idle_at = never;
                on_idle_check(st);
            }
            if (st->state != phase::finished) q.update(*st); // what is still set
        }
        q.running = false;
        arm(e);
    }

    static void on_deadline(const std::shared_ptr<conn_state>& st, due what) {
        switch (what) {
        case due::handshake: return on_handshake_deadline(st);
        case due::ping: return on_ping_due(st);
        case due::pong: return on_pong_deadline(st);
        case due::close: return on_close_deadline(st);
        case due::none: return;
        }
    }

    void arm_handshake_deadline(const std::shared_ptr<conn_state>& st) {
        set_deadline(*st, due::handshake, clock_type::now() + opts().handshake_timeout);
    }

    static void on_handshake_deadline(const std::shared_ptr<conn_state>& s) {
        if (!s->owner || s->state != phase::connecting) return;
        const char* stage = !s->tcp_connected ? "resolving and connecting"
                            : (s->proxy && !s->tunnel_open)
                                ? "waiting for the HTTP proxy's answer to CONNECT"
                            : (s->tls && !s->tls_done) ? "in the TLS handshake"
                                                       : "waiting for the upgrade response";
        close_event ev;
        ev.error = error::handshake_timeout;
        ev.detail = "no WebSocket handshake with " + s->where() + " within " +
                    std::to_string(s->owner->opts().handshake_timeout.count()) + " ms (stuck " +
                    stage + ")";
        s->owner->finish(*s, std::move(ev), true);
    }

    // ---- websocketpp events ----------------------------------------

    static void on_open(const std::shared_ptr<conn_state>& st) {
        if (!st->owner || st->state != phase::connecting) return;
        core& self = *st->owner;
        std::string selected;
        st->with_connection(
            [&](auto& con) { selected = con.get_response_header("Sec-WebSocket-Protocol"); });
        bool offered = selected.empty();
        for (const auto& p : st->hs->offered_subprotocols)
            offered = offered || p == selected;
        if (!self.eps->single_threaded()) return self.refuse_threads(*st);
        if (!offered) {
            // RFC 6455 4.1: a subprotocol we did not offer fails the connection
            close_event ev;
            ev.error = error::protocol_error;
            ev.detail = "the server selected subprotocol '" + detail::body_excerpt(selected, 64) +
                        "', which was not offered";
            self.finish(*st, std::move(ev), true);
            return;
        }
        st->state = phase::open;
        st->handshake_done = true;
        set_deadline(*st, due::none, never); // start_liveness() sets the pings' deadline
        const bool token_selected =
            !st->hs->token_subprotocol.empty() && selected == st->hs->token_subprotocol;
        st->hs.reset(); // wipes the token copies; the resolver's work is long done
        self.start_liveness(st);
        open_info info;
        info.subprotocol = token_selected ? std::string("[token]") : std::move(selected);
        if (token_selected) detail::wipe(selected);
        st->with_connection([](auto& con) { wipe_request_credentials(con); });
        if (st->sink.self) st->sink.open(st->sink.self, st->id, info);
    }

    static void on_fail(const std::shared_ptr<conn_state>& st) {
        if (!st->owner || st->state == phase::finished) return;
        close_event ev;
        st->with_connection([&](auto& con) { ev = describe_failure(*st, con); });
        st->owner->finish(*st, std::move(ev), false);
    }

    static void on_close(const std::shared_ptr<conn_state>& st) {
        if (!st->owner || st->state == phase::finished) return;
        close_event ev;
        st->with_connection([&](auto& con) { ev = describe_close(*st, con); });
        st->owner->finish(*st, std::move(ev), false);
    }

    template <class Con> static close_event describe_failure(conn_state& st, Con& con) {
        close_event ev;
        const std::error_code ec = con.get_ec();
        const int status = static_cast<int>(con.get_response_code());
        if (status != 0 && status != 101) {
            const core& self = *st.owner;
            ev.http_status = status;
            ev.retry_after = detail::parse_retry_after(con.get_response_header("Retry-After"),
                                                       std::chrono::system_clock::now());
            ev.body_excerpt =
                detail::body_excerpt(con.get_response().get_body(), self.opts().max_body_excerpt);
            ev.detail = "handshake refused by " + st.where() + ": HTTP " + std::to_string(status) +
                        " " + detail::body_excerpt(con.get_response_msg(), 64);
            const std::string& location = con.get_response_header("Location");
            if (status >= 300 && status < 400 && !location.empty())
                ev.detail += " (redirects are not followed; Location: " +
                             detail::body_excerpt(location, 200) + ")";
            return ev;
        }
        if (status == 101) {
            ev.error = error::protocol_error;
            ev.detail = "invalid upgrade response from " + st.where() + ": " + ec.message();
            return ev;
        }
        namespace wt = websocketpp::transport;
        namespace sock = wt::asio::socket;
        const bool tls_failure =
            ec == sock::make_error_code(sock::error::tls_handshake_failed) ||
            ec == sock::make_error_code(sock::error::tls_failed_sni_hostname) ||
            ec == wt::error::tls_error || ec == wt::error::tls_short_read ||
            ec.category() == asio::error::get_ssl_category();
        if (tls_failure) {
            const auto* report = st.hs ? st.hs->tls_report.get() : nullptr;
            const bool verify = report && report->verification_failed();
            ev.error = verify ? error::tls_verification_failed : error::connection_failed;
            const std::string why = report ? report->describe() : std::string();
            ev.detail = "TLS handshake with " + st.where() +
                        " failed: " + (why.empty() ? ec.message() : why);
        } else if (ec == wt::error::timeout || ec == websocketpp::error::open_handshake_timeout) {
            ev.error = error::handshake_timeout;
            ev.detail = "handshake with " + st.where() + " timed out";
        } else if (ec.category() == asio::error::get_netdb_category() ||
                   ec.category() == asio::error::get_addrinfo_category()) {
            ev.error = error::connection_failed;
            ev.detail = "cannot resolve '" + st.host + "': " + ec.message();
        } else if (!st.tcp_connected) {
            ev.error = error::connection_failed;
            ev.detail = "cannot connect to " + st.where() + ": " + ec.message();
        } else {
            ev.error = error::connection_failed;
            ev.detail =
                "connection to " + st.where() + " lost during the handshake: " + ec.message();
        }
        return ev;
    }

    /// The peer broke RFC 6455 (bad frame, bad close frame, bad UTF-8) or
    /// sent a message over the limit; websocketpp dropped the connection.
    static bool is_peer_violation(const std::error_code& ec) {
        namespace we = websocketpp::error;
        if (ec.category() == websocketpp::processor::error::get_processor_category()) return true;
        return ec == we::make_error_code(we::bad_close_code) ||
               ec == we::make_error_code(we::invalid_close_code) ||
               ec == we::make_error_code(we::reserved_close_code) ||
               ec == we::make_error_code(we::invalid_utf8);
    }

    template <class Con> static close_event describe_close(conn_state& st, Con& con) {
        namespace cs = websocketpp::close::status;
        close_event ev;
        ev.was_open = true;
        const std::uint16_t remote = con.get_remote_close_code();
        const std::error_code ec = con.get_ec();
        if (st.close_requested) {
            ev.initiated_locally = true;
            const bool echoed =
                remote != cs::abnormal_close && !cs::invalid(remote) && !cs::reserved(remote);
            ev.code = echoed ? remote : st.requested_code;
            ev.reason = echoed ? con.get_remote_close_reason() : st.requested_reason;
            if (ec ==
                websocketpp::error::make_error_code(websocketpp::error::close_handshake_timeout)) {
                ev.error = error::close_timeout;
                ev.detail = "the peer did not finish the closing handshake in time";
            }
        } else if (is_peer_violation(ec)) {
            ev.initiated_locally = true;
            namespace pe = websocketpp::processor::error;
            if (ec == pe::make_error_code(pe::message_too_big)) {
                ev.code = close_code::message_too_big;
                ev.error = error::message_too_large;
                ev.detail = "a message from " + st.where() + " exceeds max_message_size (" +
                            std::to_string(st.owner->opts().max_message_size) + " bytes)";
            } else {
                ev.code = ec.category() == pe::get_processor_category()
                              ? static_cast<std::uint16_t>(pe::to_ws(ec))
                              : (ec == websocketpp::error::make_error_code(
                                           websocketpp::error::invalid_utf8)
                                     ? close_code::invalid_payload
                                     : close_code::protocol_error);
                ev.error = error::protocol_error;
                ev.detail = st.where() + " violated the WebSocket protocol: " + ec.message();
                if (remote != cs::abnormal_close)
                    ev.detail += " (close code " + std::to_string(remote) + ")";
            }
        } else if (remote != cs::abnormal_close) {
            ev.code = remote;
            ev.reason = con.get_remote_close_reason();
        } else {
            // no close frame: the connection dropped (RFC 6455 7.1.5 calls this 1006)
            ev.code = close_code::abnormal;
            ev.error = error::connection_failed;
            ev.detail = "connection to " + st.where() + " dropped without a close frame" +
                        (ec ? ": " + ec.message() : std::string());
        }
        return ev;
    }

    // ---- liveness ----------------------------------------------------

    void start_liveness(const std::shared_ptr<conn_state>& st) {
        const auto now = clock_type::now();
        st->last_activity = now;
        st->frames_at_idle_check = st->frames_received;
        if (opts().idle_timeout.count() > 0) st->idle_at = now + idle_check_period();
        if (opts().ping_interval.count() > 0)
            set_deadline(*st, due::ping, now + opts().ping_interval);
        else
            set_deadline(*st, due::none, never);
    }

    static void on_ping_due(const std::shared_ptr<conn_state>& st) {
        if (!st->owner || st->state != phase::open) return;
        const options& o = st->owner->opts();
        st->frames_at_ping = st->frames_received;
        st->ping_sent_at = clock_type::now();
        std::error_code ec;
        st->with_connection([&](auto& con) { con.ping(std::string(), ec); });
        // a failed ping write shows up as a close; the pong deadline still applies
        set_deadline(*st, due::pong, st->ping_sent_at + o.pong_timeout);
    }

    static void on_pong_deadline(const std::shared_ptr<conn_state>& st) {
        if (!st->owner || st->state != phase::open) return;
        core& self = *st->owner;
        if (st->frames_received == st->frames_at_ping) {
            close_event ev;
            ev.was_open = true;
            ev.initiated_locally = true;
            ev.code = close_code::abnormal;
            ev.error = error::pong_timeout;
            ev.detail = "nothing received from " + st->where() + " within " +
                        std::to_string(self.opts().pong_timeout.count()) + " ms of a ping";
            self.finish(*st, std::move(ev), true);
            return;
        }
        set_deadline(*st, due::ping, st->ping_sent_at + self.opts().ping_interval);
    }

    /// A few checks per idle_timeout keep detection within idle_timeout * 1.25.
    std::chrono::milliseconds idle_check_period() const {
        const auto period = opts().idle_timeout / 4;
        return period.count() < 1 ? std::chrono::milliseconds(1) : period;
    }

    static void on_idle_check(const std::shared_ptr<conn_state>& s) {
        if (!s->owner || s->state != phase::open) return;
        core& self = *s->owner;
        const auto now = clock_type::now();
        if (s->frames_received != s->frames_at_idle_check) {
            s->frames_at_idle_check = s->frames_received;
            s->last_activity = now;
        } else if (now - s->last_activity >= self.opts().idle_timeout) {
            close_event ev;
            ev.was_open = true;
            ev.initiated_locally = true;
            ev.code = close_code::abnormal;
            ev.error = error::idle_timeout;
            ev.detail = "no frame from " + s->where() + " for " +
                        std::to_string(self.opts().idle_timeout.count()) + " ms";
            self.finish(*s, std::move(ev), true);
            return;
        }
        s->idle_at = now + self.idle_check_period();
        reschedule(*s);
    }

    // ---- send / close ------------------------------------------------

    std::error_code send(connection_id id, std::string_view data, message_kind kind) {
        const auto it = conns.find(id);
        if (it == conns.end() || it->second->state != phase::open) return error::not_connected;
        conn_state& st = *it->second;
        std::error_code ec;
        const auto op = kind == message_kind::binary ? websocketpp::frame::opcode::binary
                                                     : websocketpp::frame::opcode::text;
        st.with_connection([&](auto& con) { ec = con.send(data.data(), data.size(), op); });
        if (!ec) return {};
        if (ec == websocketpp::processor::error::invalid_payload)
            return error::invalid_text_message;
        return error::not_connected;
    }

    std::size_t buffered_amount(connection_id id) const {
        const auto it = conns.find(id);
        if (it == conns.end() || it->second->state != phase::open) return 0;
        std::size_t n = 0;
        it->second->with_connection([&](auto& con) { n = con.get_buffered_amount(); });
        return n;
    }

    void close(connection_id id, std::uint16_t code, std::string_view reason) {
        const auto it = conns.find(id);
        if (it == conns.end()) return;
        const std::shared_ptr<conn_state> st = it->second;
        if (st->state == phase::connecting) {
            close_event ev;
            ev.initiated_locally = true;
            ev.error = error::operation_cancelled;
            ev.detail = "closed before the handshake with " + st->where() + " completed";
            finish(*st, std::move(ev), true);
            return;
        }
        if (st->state != phase::open) return;
        st->state = phase::closing;
        st->close_requested = true;
        st->requested_code = detail::is_sendable_close_code(code) ? code : close_code::normal;
        st->requested_reason = detail::bounded_close_reason(reason);
        st->idle_at = never; // the pings' deadline is replaced below
        std::error_code ec;
        // fails only when websocketpp is already closing (the peer started it): then
        // its close callback reports, and the deadline below still bounds the wait
        st->with_connection(
            [&](auto& con) { con.close(st->requested_code, st->requested_reason, ec); });
        set_deadline(*st, due::close, clock_type::now() + opts().close_timeout);
    }

    static void on_close_deadline(const std::shared_ptr<conn_state>& s) {
        if (!s->owner || s->state != phase::closing) return;
        close_event ev;
        ev.was_open = true;
        ev.initiated_locally = true;
        ev.code = s->requested_code;
        ev.reason = s->requested_reason;
        ev.error = error::close_timeout;
        ev.detail = "the peer did not finish the closing handshake within " +
                    std::to_string(s->owner->opts().close_timeout.count()) + " ms";
        s->owner->finish(*s, std::move(ev), true);
    }

    // ---- the end of a connection ---------------------------------------

    /// Records the outcome once, stops timers, lets go of the websocketpp
    /// connection (terminating it if it is still running) and reports to
    /// the sink from a fresh handler, never from inside the caller.
    void finish(conn_state& st, close_event ev, bool terminate) {
        if (st.state == phase::finished) return;
        st.state = phase::finished;
        stop_connection(st, terminate);
        asio::post(*io, [s = st.shared_from_this(), ev = std::move(ev)]() mutable {
            core* self = s->owner;
            if (!self) return; // the transport is gone
            s->owner = nullptr;
            const auto sink = s->sink;
            self->conns.erase(s->id);
            if (sink.self) sink.close(sink.self, s->id, std::move(ev));
        });
    }

    static void wipe_token_copies(conn_state& st) noexcept {
        if (!st.hs) return; // open: dropped (and wiped) then
        detail::wipe(st.hs->token_subprotocol);
        for (auto& p : st.hs->offered_subprotocols)
            detail::wipe(p);
    }

    static void stop_connection(conn_state& st, bool terminate) {
        st.main_due = due::none;
        st.main_at = never;
        st.idle_at = never;
        st.eps->deadlines.remove(st); // the io_context's timer may fire for nothing
        if (st.hs && st.hs->resolver)
            st.hs->resolver->cancel(); // an abandoned resolve must not stay queued
        st.with_connection([&](auto& con) {
            wipe_request_credentials(con);
            if (!st.handshake_done) {
                // Before the handshake completed, nothing more may be sent: closing
                // the socket now (not in a posted handler) stops a TLS handshake or
                // an upgrade request already queued behind us.
                std::error_code ignored;
                con.get_raw_socket().close(ignored);
            }
        });
        wipe_token_copies(st);
        if (terminate && st.owner && st.started) {
            // Posted, because we may be inside one of this connection's own callbacks.
            // `finished` is set, so websocketpp's fail/close callbacks that follow are ignored.
            auto io = st.owner->io;
            const auto terminate_later = [io](auto con) {
                asio::post(*io, [con] {
                    con->terminate(
                        websocketpp::error::make_error_code(websocketpp::error::general));
                });
            };
            if constexpr (with_plain)
                if (st.plain) terminate_later(st.plain);
            if constexpr (with_tls)
                if (st.tls) terminate_later(st.tls);
        }
        st.plain.reset();
        st.tls.reset();
    }

    static void detach(conn_state& st) {
        st.sink = detail::transport_sink_ref{};
        if (st.state != phase::finished) {
            st.state = phase::finished;
            stop_connection(st, true);
        }
        st.owner = nullptr;
    }
};

template <websocket_schemes Schemes>
basic_websocketpp_transport<Schemes>::basic_websocketpp_transport(asio::io_context& io, options o)
    : io_(&io), core_(std::make_unique<core>(io, std::move(o))) {}

template <websocket_schemes Schemes>
basic_websocketpp_transport<Schemes>::basic_websocketpp_transport(
    basic_websocketpp_transport&&) noexcept = default;

template <websocket_schemes Schemes>
basic_websocketpp_transport<Schemes>&
basic_websocketpp_transport<Schemes>::operator=(basic_websocketpp_transport&&) noexcept = default;

template <websocket_schemes Schemes>
basic_websocketpp_transport<Schemes>::~basic_websocketpp_transport() = default;

template <websocket_schemes Schemes>
auto basic_websocketpp_transport<Schemes>::get_options() const noexcept -> const options& {
    return core_->opts();
}

template <websocket_schemes Schemes>
std::size_t basic_websocketpp_transport<Schemes>::active_connections() const noexcept {
    return core_->conns.size();
}

template <websocket_schemes Schemes>
connection_id basic_websocketpp_transport<Schemes>::connect_to(const connect_request& req,
                                                               detail::transport_sink_ref sink) {
    return core_->connect(req, sink);
}

template <websocket_schemes Schemes>
std::error_code basic_websocketpp_transport<Schemes>::send(connection_id id, std::string_view data,
                                                           message_kind kind) {
    return core_->send(id, data, kind);
}

template <websocket_schemes Schemes>
std::size_t basic_websocketpp_transport<Schemes>::buffered_amount(connection_id id) const {
    return core_->buffered_amount(id);
}

template <websocket_schemes Schemes>
void basic_websocketpp_transport<Schemes>::close(connection_id id, std::uint16_t code,
                                                 std::string_view reason) {
    core_->close(id, code, reason);
}

TETHER_NAMESPACE_END

#endif // C++20 with GCC >= 11

#endif // TETHER_DETAIL_NO_WEBSOCKETPP

#endif
