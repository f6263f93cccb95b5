// tether: the HTTP CONNECT exchange that opens a tunnel through a proxy.
//
// Used on a TCP socket connected to the proxy, before anything of the
// origin's protocol (TLS, the upgrade request, a token request) is sent:
// CONNECT host:port, then the proxy's answer read with the strict response
// parser in its CONNECT mode (header section only, bounded). A 2xx opens
// the tunnel; bytes after that header would be the origin's, but the origin
// speaks only after the client, so they are refused (proxy_error) rather
// than passed on. The caller's deadline bounds a proxy that stalls: it
// closes the socket, which ends the exchange.
#ifndef TETHER_DETAIL_PROXY_TUNNEL_HPP
#define TETHER_DETAIL_PROXY_TUNNEL_HPP

#include <tether/detail/base64.hpp>
#include <tether/detail/http_response_parser.hpp>
#include <tether/detail/net.hpp>
#include <tether/detail/printable.hpp>
#include <tether/detail/retry_after.hpp>
#include <tether/detail/url.hpp>
#include <tether/detail/wipe.hpp>
#include <tether/error.hpp>
#include <tether/proxy.hpp>
#include <tether/secret.hpp>

// for async_proxy_connect (beast_transport does its own socket I/O)
#if defined(TETHER_USE_BOOST_ASIO)
#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#else
#include <asio/error.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/write.hpp>
#endif

#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

TETHER_NAMESPACE_BEGIN
namespace detail {

/// The CONNECT request for `host`:`port` (host without IPv6 brackets),
/// with Proxy-Authorization when the proxy has credentials.
inline secret build_connect_request(std::string_view host, std::uint16_t port,
                                    const proxy_server& proxy, std::string_view user_agent = {}) {
    const std::string target = format_authority(host, port, 0);
    std::string req = "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n";
    if (!user_agent.empty() && is_safe_header_value(user_agent)) {
        req += "User-Agent: ";
        req += user_agent;
        req += "\r\n";
    }
    if (proxy.has_credentials()) {
        std::string pair(proxy.username.reveal());
        pair += ':';
        pair += proxy.password.reveal();
        std::string encoded = base64_encode(pair);
        detail::wipe(pair);
        req += "Proxy-Authorization: Basic ";
        req += encoded;
        req += "\r\n";
        detail::wipe(encoded);
    }
    req += "\r\n";
    return secret(std::move(req));
}

/// The outcome of a CONNECT exchange.
struct proxy_reply {
    /// Empty: the tunnel is open. proxy_auth_required, proxy_denied,
    /// proxy_error, or the socket's own error.
    std::error_code error;
    std::string detail; ///< for logs; never a header value of ours
    int status = 0;     ///< the proxy's status (0: none)
    std::optional<std::chrono::milliseconds> retry_after;
};

/// What a proxy's answer to CONNECT means.
inline proxy_reply judge_connect_response(const http_response& r, const proxy_server& proxy) {
    proxy_reply out;
    out.status = r.status;
    const std::string who = "HTTP proxy " + proxy.authority();
    const std::string said =
        " answered CONNECT with " + std::to_string(r.status) + " " + body_excerpt(r.reason, 64);
    if (r.status >= 200 && r.status <= 299) return out;
    if (const std::string* h = r.header("Retry-After"))
        out.retry_after = parse_retry_after(*h, std::chrono::system_clock::now());
    // 401 to CONNECT can only be the proxy's own (the origin is not reached yet):
    // some proxies (tinyproxy 1.11) answer wrong credentials with it instead of 407
    if (r.status == 407 || r.status == 401) {
        out.error = make_error_code(error::proxy_auth_required);
        out.detail =
            who + said +
            (proxy.has_credentials()
                 ? " (the configured proxy credentials were refused)"
                 : " (no proxy credentials configured: put user:password in the proxy URL)");
    } else if (r.status >= 500) {
        out.error = make_error_code(error::proxy_error);
        out.detail = who + said + " (it could not reach the origin)";
    } else {
        out.error = make_error_code(error::proxy_denied);
        out.detail = who + said + " (the proxy does not allow this tunnel)";
    }
    return out;
}

/// Reads the proxy's answer to CONNECT from bytes as they arrive.
class connect_reply_reader {
public:
    explicit connect_reply_reader(const proxy_server& proxy, http_limits limits = default_limits())
        : proxy_(&proxy), parser_(http_response_parser::for_connect(limits)) {}

    static http_limits default_limits() {
        http_limits l;
        l.max_header_bytes = 8 * 1024;
        l.max_header_fields = 64;
        l.max_body_bytes = 0;
        return l;
    }

    /// Feeds what arrived; true once the answer is judged (see result()).
    bool feed(const char* data, std::size_t n) {
        if (finished_) return true;
        const std::size_t used = parser_.feed(data, n);
        if (parser_.failed()) return fail(parser_.error_detail());
        if (!parser_.done()) return false;
        finished_ = true;
        result_ = judge_connect_response(parser_.response(), *proxy_);
        if (!result_.error && used < n) {
            result_.error = make_error_code(error::proxy_error);
            result_.detail = "HTTP proxy " + proxy_->authority() + " sent " +
                             std::to_string(n - used) +
                             " byte(s) after its 2xx to CONNECT, before the client spoke: not a "
                             "clean tunnel";
        }
        return true;
    }

    /// The proxy closed the connection.
    bool feed_eof() {
        if (finished_) return true;
        return fail("the connection closed before the answer to CONNECT was complete");
    }

    bool finished() const noexcept { return finished_; }
    const proxy_reply& result() const noexcept { return result_; }

private:
    bool fail(const std::string& why) {
        finished_ = true;
        result_.error = make_error_code(error::proxy_error);
        result_.detail =
            "HTTP proxy " + proxy_->authority() + ": malformed answer to CONNECT (" + why + ")";
        return true;
    }

    const proxy_server* proxy_;
    http_response_parser parser_;
    proxy_reply result_;
    bool finished_ = false;
};

/// Sends CONNECT on `socket` (connected to `proxy`) and reads the answer;
/// `handler(const proxy_reply&)` runs once. The caller keeps the socket
/// alive until then, and ends a stalled exchange by closing it.
template <class Handler>
void async_proxy_connect(net::ip::tcp::socket& socket, const proxy_server& proxy,
                         std::string_view host, std::uint16_t port, std::string_view user_agent,
                         Handler handler) {
    struct op : std::enable_shared_from_this<op> {
        op(net::ip::tcp::socket& s, const proxy_server& p, secret r, Handler h)
            : sock(s), proxy(p), request(std::move(r)), reader(proxy), handler(std::move(h)) {}
        net::ip::tcp::socket& sock;
        proxy_server proxy; // a copy: the caller's may go away first
        secret request;
        connect_reply_reader reader;
        Handler handler;
        std::array<char, 2048> buffer{};

        void io_failed(const std::error_code& ec, const char* what) {
            proxy_reply r;
            r.error = ec;
            r.detail = std::string(what) + " HTTP proxy " + proxy.authority() + ": " + ec.message();
            handler(r);
        }
        void read() {
            sock.async_read_some(
                net::buffer(buffer),
                [self = this->shared_from_this()](const std::error_code& ec, std::size_t n) {
                    bool done = n > 0 && self->reader.feed(self->buffer.data(), n);
                    if (!done && ec == net_error(net::error::eof)) done = self->reader.feed_eof();
                    if (done) return self->handler(self->reader.result());
                    if (ec) return self->io_failed(ec, "reading the answer of the");
                    self->read();
                });
        }
    };
    auto self = std::make_shared<op>(
        socket, proxy, build_connect_request(host, port, proxy, user_agent), std::move(handler));
    net::async_write(socket, net::buffer(self->request.reveal().data(), self->request.size()),
                     [self](const std::error_code& ec, std::size_t) {
                         self->request = secret(); // wiped
                         if (ec) return self->io_failed(ec, "sending CONNECT to the");
                         self->read();
                     });
}

} // namespace detail
TETHER_NAMESPACE_END

#endif
