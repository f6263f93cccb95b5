// tether: a Genesys Cloud notification client, ready to use.
//
// Its WebSocket transport is genesys::notification_transport: the websocketpp
// transport by default, the Beast transport in Boost mode
// (TETHER_USE_BOOST_ASIO, detail/net.hpp), where the io_context is Boost.Asio's.
#ifndef TETHER_GENESYS_NOTIFICATION_CLIENT_HPP
#define TETHER_GENESYS_NOTIFICATION_CLIENT_HPP

#include <tether/backoff/exponential_backoff.hpp>
#include <tether/basic_reconnecting_client.hpp>
#include <tether/genesys/channel_token_policy.hpp>
#include <tether/genesys/close_policy.hpp>
#include <tether/genesys/notification_stream.hpp>
#include <tether/genesys/region.hpp>
#include <tether/genesys/rest_client.hpp>

#if defined(TETHER_USE_BOOST_ASIO)
#include <tether/transport/beast_transport.hpp>

#include <boost/asio/io_context.hpp>
#else
#include <tether/transport/websocketpp_transport.hpp>

#include <asio/io_context.hpp>
#endif

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#ifndef TETHER_DETAIL_NO_WEBSOCKETPP // C++20 with GCC: the transport said why

TETHER_NAMESPACE_BEGIN
namespace genesys {

/// The transport notification_client runs on (see the top of this file).
#if defined(TETHER_USE_BOOST_ASIO)
using notification_transport = beast_transport;
#else
using notification_transport = websocketpp_transport;
#endif

struct notification_options {
    genesys::endpoints endpoints; ///< endpoints::for_region("mypurecloud.ie") or explicit_urls(...)
    std::string client_id;
    secret client_secret;
    channel_options channel;             ///< topics, creation limit, resubscription
    stream_options stream;               ///< heartbeat watchdog, ping probe, frame limits
    genesys_close_policy::options close; ///< what counts as an immediate close
    shared_token_options token;          ///< REST token refresh margins
    rest_options rest;                   ///< api_base is taken from `endpoints`
    /// max_message_size is capped at 4 x stream.limits.max_bytes: frames
    /// between the two are skipped and reported, larger ones close the
    /// socket (1009) and the client reconnects to the same channel.
    notification_transport::options transport;
    client_options client; ///< url is unused (each channel has its own); queue, backoff limits
    tls_options tls;       ///< for login, api and streaming hosts
    /// HTTP proxy for the login, api and streaming hosts (none by default;
    /// proxy_options::from_environment() to honour https_proxy/no_proxy).
    proxy_options proxy;
    /// Notes from the OAuth client ("token obtained, lifetime 10 s", failures),
    /// including background refreshes; never a secret. Called on I/O threads.
    std::function<void(std::string_view)> token_trace;
};

/// Channel lifecycle + socket + typed notifications, on one io_context:
///
///     tether::genesys::notification_options o;
///     o.endpoints = tether::genesys::endpoints::for_region("mypurecloud.ie");
///     o.client_id = ...; o.client_secret = tether::secret(...);
///     o.channel.topics = {"v2.users.<id>.presence"};
///     tether::genesys::notification_client c(io, std::move(o));
///     c.stream().on_notification([](const tether::genesys::notification& n) { ... });
///     c.stream().on_gap([](const tether::genesys::gap_event& g) { /* backfill over REST */ });
///     c.start(); io.run();
///
/// Run the io_context on one thread. Throws std::system_error (error::invalid_option) for bad
/// options.
class notification_client {
public:
    using client_type = basic_reconnecting_client<notification_transport, channel_token_policy,
                                                  genesys_close_policy, exponential_backoff>;
    using stream_type = notification_stream<client_type>;

    notification_client(net::io_context& io, notification_options o)
        : source_(make_fetcher(io, o), net::any_io_executor(io.get_executor()), o.token),
          rest_(make_rest(io, o, source_)), policy_(rest_, o.channel),
          client_(client_opts(o.client), notification_transport(io, transport_opts(o)), policy_,
                  genesys_close_policy(o.close), exponential_backoff()),
          stream_(
              client_, o.stream, [p = policy_]() { return p.channel_id(); },
              actions(policy_, rest_)) {}

    void start() { client_.start(); }
    void stop() { client_.stop(); }

    stream_type& stream() noexcept { return stream_; }
    /// For on_retry, on_token, on_state_change, counters(); on_open, on_close
    /// and on_stopped belong to stream().
    client_type& client() noexcept { return client_; }
    rest_token_source& rest_token() noexcept { return source_; }
    rest_client& rest() noexcept { return *rest_; }
    /// A handle on the channel policy (shares its state with the client's).
    channel_token_policy& channel() noexcept { return policy_; }

private:
    static oauth2_client_credentials make_fetcher(net::io_context& io,
                                                  const notification_options& o) {
        oauth2_options oo;
        oo.token_url = o.endpoints.login_base + "/oauth/token";
        oo.client_id = o.client_id;
        oo.client_secret = o.client_secret;
        oo.tls = o.tls;
        oo.proxy = o.proxy;
        oo.trace = o.token_trace;
        return oauth2_client_credentials(io.get_executor(), std::move(oo));
    }
    static std::shared_ptr<rest_client>
    make_rest(net::io_context& io, const notification_options& o, rest_token_source& source) {
        rest_options ro = o.rest;
        ro.api_base = o.endpoints.api_base;
        ro.tls = o.tls;
        ro.proxy = o.proxy;
        return rest_client::create(io.get_executor(), source.handle(), std::move(ro));
    }
    static client_options client_opts(client_options c) {
        // The URL is a placeholder: every token (channel) carries its connectUri.
        if (c.url.empty()) c.url = "wss://streaming.invalid/channels";
        // A channel that opened was a valid credential: losing it later (expired,
        // deleted) is not an auth failure, so only refused handshakes feed the
        // auth-failure breaker. The channel creation limit bounds the loop.
        c.auth_failure_uptime = std::chrono::milliseconds(0);
        return c;
    }
    static notification_transport::options transport_opts(const notification_options& o) {
        notification_transport::options t = o.transport;
        t.tls = o.tls;
        t.proxy = o.proxy;
        // The socket's own limit: Genesys events are small (notification.hpp,
        // parse_limits); the transport's 16 MiB default is for anything.
        const std::size_t cap =
            o.stream.limits.max_bytes > (SIZE_MAX / 4) ? SIZE_MAX : 4 * o.stream.limits.max_bytes;
        t.max_message_size = std::min(t.max_message_size, cap);
        return t;
    }
    static channel_actions actions(const channel_token_policy& policy,
                                   const std::shared_ptr<rest_client>& rest) {
        channel_actions a;
        a.drop_channel = [p = policy](const std::string& why) mutable { p.drop(why); };
        a.drop_rest_token = [r = rest] { r->drop_token(); };
        a.resubscribe = [p = policy](std::function<void(bool)> done) mutable {
            p.resubscribe(std::move(done));
        };
        return a;
    }

    rest_token_source source_;
    std::shared_ptr<rest_client> rest_;
    channel_token_policy policy_;
    client_type client_;
    stream_type stream_;
};

} // namespace genesys
TETHER_NAMESPACE_END

#endif // TETHER_DETAIL_NO_WEBSOCKETPP

#endif
