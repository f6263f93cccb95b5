// tether: a small asynchronous HTTP/1.1 client for token endpoints.
//
// One request per connection (Connection: close), on a strand of the given
// executor: resolve, connect, TLS handshake with peer and host name
// verification, write, read with http_response_parser. A single deadline
// covers the whole exchange. Plain http:// goes only to loopback addresses
// unless the caller opts in, because the request carries credentials.
// Through an HTTP proxy (http_exchange_options::proxy) the socket goes to the
// proxy, and a CONNECT tunnel (proxy_tunnel.hpp) is opened before TLS, whose
// SNI and name checks stay the origin's. Plain http:// with credentials then
// needs a loopback proxy too (the request crosses the proxy's link in clear).
//
// Written against `tether::net` (detail/net.hpp): standalone Asio by default,
// Boost.Asio in Boost mode (TETHER_USE_BOOST_ASIO). Handlers take
// std::error_code in both modes; Asio's own error enums are compared through
// detail::net_error().
#ifndef TETHER_DETAIL_HTTP_CLIENT_HPP
#define TETHER_DETAIL_HTTP_CLIENT_HPP

#include <tether/detail/base64.hpp>
#include <tether/detail/http_response_parser.hpp>
#include <tether/detail/net.hpp>
#include <tether/detail/proxy_tunnel.hpp>
#include <tether/detail/url.hpp>
#include <tether/detail/wipe.hpp>
#include <tether/error.hpp>
#include <tether/secret.hpp>
#include <tether/tls_options.hpp>

#if defined(TETHER_USE_BOOST_ASIO)
#include <boost/asio/connect.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#else
#include <asio/connect.hpp>
#include <asio/dispatch.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/ssl/error.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/write.hpp>
#endif

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

TETHER_NAMESPACE_BEGIN
namespace detail {

/// application/x-www-form-urlencoded (WHATWG URL standard): alphanumerics and
/// "*-._" stay, space becomes '+', every other byte is %XX.
inline std::string form_urlencode(std::string_view in) {
    static const char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(in.size() * 3);
    for (char c : in) {
        const auto u = static_cast<unsigned char>(c);
        if ((u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') ||
            u == '*' || u == '-' || u == '.' || u == '_') {
            out.push_back(c);
        } else if (u == ' ') {
            out.push_back('+');
        } else {
            out.push_back('%');
            out.push_back(hex[u >> 4]);
            out.push_back(hex[u & 0x0f]);
        }
    }
    return out;
}

struct http_exchange_options {
    std::chrono::milliseconds timeout{10000}; ///< resolve to last byte
    http_limits limits;
    /// Allows plain http:// to a host that is not loopback. The request (and
    /// any credential in it) crosses the network unencrypted.
    bool allow_plain_http_to_non_loopback_host = false;
    std::shared_ptr<net::ssl::context> tls_context; ///< required for https://
    tls_options tls;
    /// Tunnel through an HTTP proxy (CONNECT) unless the origin bypasses it.
    proxy_options proxy;
    /// Progress notes for logs; never given header values or bodies.
    std::function<void(std::string_view)> trace;
};

struct http_result {
    /// Empty on a complete response. Otherwise a tether::error
    /// (malformed_http_response, response_too_large, insecure_transport,
    /// tls_verification_failed, operation_cancelled, proxy_auth_required,
    /// proxy_denied, proxy_error), net::error::timed_out,
    /// or the socket's own error.
    std::error_code error;
    std::string detail; ///< for logs; never contains request or response bytes
    http_response response;
    std::size_t bytes_received = 0; ///< raw bytes read from the connection
};

/// One request on one connection. Start with start(); cancel() from any thread.
class http_exchange : public std::enable_shared_from_this<http_exchange> {
public:
    using handler_type = std::function<void(http_result)>;
    using strand_type = net::strand<net::any_io_executor>;

    /// `request` is the complete request (start line, fields, body). The
    /// handler runs once, on the exchange's strand.
    static std::shared_ptr<http_exchange> start(const net::any_io_executor& ex, http_url url,
                                                secret request, http_exchange_options opts,
                                                handler_type handler) {
        std::shared_ptr<http_exchange> self(new http_exchange(
            ex, std::move(url), std::move(request), std::move(opts), std::move(handler)));
        net::dispatch(self->strand_, [self] { self->begin(); });
        return self;
    }

    void cancel() {
        net::dispatch(strand_, [self = shared_from_this()] {
            if (self->finished_) return;
            self->cancelled_ = true;
            self->abort_io();
        });
    }

private:
    using tcp = net::ip::tcp;
    using tls_stream = net::ssl::stream<tcp::socket>;

    http_exchange(const net::any_io_executor& ex, http_url url, secret request,
                  http_exchange_options opts, handler_type handler)
        : strand_(net::make_strand(ex)), url_(std::move(url)), request_(std::move(request)),
          opts_(std::move(opts)), handler_(std::move(handler)), resolver_(strand_), timer_(strand_),
          parser_(opts_.limits) {
        if (url_.tls && opts_.tls_context)
            tls_.emplace(strand_, *opts_.tls_context);
        else
            plain_.emplace(strand_);
    }

    tcp::socket& socket() { return tls_ ? tls_->next_layer() : *plain_; }

    void trace(const std::string& note) const {
        if (opts_.trace) opts_.trace(note);
    }

    void begin() {
        if (url_.tls && !opts_.tls_context) {
            finish(make_error_code(error::invalid_url), "https:// needs a TLS context");
            return;
        }
        if (!url_.tls &&
            !plain_transport_allowed(url_.host, opts_.allow_plain_http_to_non_loopback_host)) {
            finish(make_error_code(error::insecure_transport),
                   "refusing to send credentials over plain http:// to " + url_.host_field());
            return;
        }
        if (const proxy_server* p = opts_.proxy.select(url_.tls, url_.host, url_.port)) proxy_ = *p;
        timer_.expires_after(opts_.timeout);
        timer_.async_wait([self = shared_from_this()](std::error_code ec) {
            if (ec || self->finished_) return;
            self->timed_out_ = true;
            self->abort_io();
        });
        trace("resolving " + peer_name());
        resolver_.async_resolve(
            proxy_ ? proxy_->host : url_.host, std::to_string(proxy_ ? proxy_->port : url_.port),
            [self = shared_from_this()](std::error_code ec, tcp::resolver::results_type results) {
                self->on_resolved(ec, std::move(results));
            });
    }

    void abort_io() {
        resolver_.cancel();
        net_error_code ignored;
        socket().close(ignored);
    }

    // Maps an I/O failure to a result, letting timeout and cancel win over
    // the operation_aborted they cause.
    bool failed(std::error_code ec, const std::string& what) {
        if (!ec && !timed_out_ && !cancelled_) return false;
        if (cancelled_)
            finish(make_error_code(error::operation_cancelled), "request cancelled");
        else if (timed_out_)
            finish(net_error(net::error::timed_out), "no complete response within " +
                                                         std::to_string(opts_.timeout.count()) +
                                                         " ms (" + what + ")");
        else
            finish(ec, what + ": " + ec.message());
        return true;
    }

    void on_resolved(std::error_code ec, tcp::resolver::results_type results) {
        if (failed(ec, "resolving " + peer_name())) return;
        std::vector<tcp::endpoint> endpoints;
        for (const auto& entry : results) {
            const auto ep = entry.endpoint();
            if (url_.tls ||
                plain_endpoint_allowed(ep.address(), opts_.allow_plain_http_to_non_loopback_host))
                endpoints.push_back(ep);
        }
        if (endpoints.empty()) {
            finish(make_error_code(error::insecure_transport),
                   peer_name() + " resolved to no loopback address; refusing plain http://");
            return;
        }
        trace("connecting to " + peer_name() + " (" + std::to_string(endpoints.size()) +
              " address(es))");
        net::async_connect(
            socket(), endpoints,
            [self = shared_from_this()](std::error_code ec, const tcp::endpoint& ep) {
                self->on_connected(ec, ep);
            });
    }

    void on_connected(std::error_code ec, const tcp::endpoint& ep) {
        if (failed(ec, "connecting to " + peer_name())) return;
        net_error_code ignored;
        socket().set_option(tcp::no_delay(true), ignored);
        trace("connected to " + endpoint_text(ep));
        if (proxy_) {
            trace("CONNECT " + url_.host_field() + " through the proxy");
            async_proxy_connect(
                socket(), *proxy_, url_.host, url_.port, {},
                [self = shared_from_this()](const proxy_reply& r) { self->on_tunnel(r); });
            return;
        }
        on_tunnel_open();
    }

    void on_tunnel(const proxy_reply& r) {
        if (r.error && !timed_out_ && !cancelled_) {
            if (r.error.category() == error_category()) {
                finish(r.error, r.detail);
                return;
            }
        }
        if (failed(r.error, "the CONNECT exchange with HTTP proxy " + proxy_->authority())) return;
        trace("tunnel to " + url_.host_field() + " open");
        on_tunnel_open();
    }

    void on_tunnel_open() {
        if (!tls_) {
            write_request();
            return;
        }
        tls_report_ = std::make_shared<tls_handshake_report>();
        if (!prepare_tls_client_stream(*tls_, url_.host, opts_.tls, tls_report_)) {
            finish(make_error_code(error::connection_failed), "TLS setup failed: SNI name refused");
            return;
        }
        tls_->async_handshake(
            net::ssl::stream_base::client,
            [self = shared_from_this()](std::error_code ec) { self->on_handshake(ec); });
    }

    void on_handshake(std::error_code ec) {
        if (ec && !timed_out_ && !cancelled_) {
            if (tls_report_->verification_failed()) {
                finish(make_error_code(error::tls_verification_failed),
                       "TLS certificate of " + url_.host_field() +
                           " rejected: " + tls_report_->describe());
                return;
            }
            const std::string why = tls_report_->describe();
            if (!why.empty()) {
                finish(ec, "TLS handshake with " + url_.host_field() + " failed: " + why);
                return;
            }
        }
        if (failed(ec, "TLS handshake with " + url_.host_field())) return;
        trace("TLS handshake with " + url_.host_field() + " verified");
        write_request();
    }

    void write_request() {
        auto done = [self = shared_from_this()](std::error_code ec, std::size_t n) {
            if (self->failed(ec, "sending the request")) return;
            self->trace("request sent (" + std::to_string(n) + " bytes)");
            self->read_some();
        };
        const auto buffer = net::buffer(request_.reveal().data(), request_.size());
        if (tls_)
            net::async_write(*tls_, buffer, std::move(done));
        else
            net::async_write(*plain_, buffer, std::move(done));
    }

    void read_some() {
        auto done = [self = shared_from_this()](std::error_code ec, std::size_t n) {
            self->on_read(ec, n);
        };
        if (tls_)
            tls_->async_read_some(net::buffer(buffer_), std::move(done));
        else
            plain_->async_read_some(net::buffer(buffer_), std::move(done));
    }

    void on_read(std::error_code ec, std::size_t n) {
        bytes_received_ += n;
        if (n > 0) parser_.feed(buffer_.data(), n);
        if (!parser_.done() && !parser_.failed() && !timed_out_ && !cancelled_) {
            if (ec == net_error(net::error::eof)) {
                parser_.feed_eof();
            } else if (ec == net_error(net::ssl::error::stream_truncated)) {
                // A TLS close without close_notify: fine where the message has
                // its own framing (the parser says incomplete), but a body
                // delimited by the close may have been cut by an attacker.
                if (parser_.reading_until_close()) {
                    finish(ec,
                           "TLS connection closed without close_notify: the body may be truncated");
                    return;
                }
                parser_.feed_eof();
            }
        }
        if (parser_.failed()) {
            finish(parser_.error(), parser_.error_detail());
            return;
        }
        if (parser_.done()) {
            const auto& r = parser_.response();
            trace("response: HTTP " + std::to_string(r.status) + ", " +
                  std::to_string(r.headers.size()) + " header fields, body " +
                  std::to_string(r.body.size()) + " bytes");
            finish({}, {});
            return;
        }
        if (failed(ec, "reading the response")) return;
        read_some();
    }

    void finish(std::error_code ec, std::string detail) {
        if (finished_) return;
        finished_ = true;
        timer_.cancel();
        abort_io();
        http_result result;
        result.error = ec;
        result.detail = std::move(detail);
        result.bytes_received = bytes_received_;
        if (!ec) result.response = std::move(parser_.response());
        if (ec) trace("request failed: " + result.detail);
        // Run the handler after releasing it, so whatever it owns (and
        // whatever owns us) can go away.
        auto handler = std::move(handler_);
        handler_ = nullptr;
        request_ = secret();
        // the raw response (a token) passed through the read buffer; on
        // failure the parser still holds part of it
        detail::wipe(buffer_.data(), buffer_.size());
        if (ec) parser_.wipe();
        if (handler) handler(std::move(result));
    }

    /// Who the socket talks to: the proxy, or the origin.
    std::string peer_name() const {
        return proxy_ ? "HTTP proxy " + proxy_->authority() : url_.host_field();
    }

    static std::string endpoint_text(const tcp::endpoint& ep) {
        const auto a = ep.address();
        return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" +
               std::to_string(ep.port());
    }

    strand_type strand_;
    http_url url_;
    secret request_;
    http_exchange_options opts_;
    handler_type handler_;
    tcp::resolver resolver_;
    net::steady_timer timer_;
    std::optional<tls_stream> tls_;
    std::optional<tcp::socket> plain_;
    std::shared_ptr<tls_handshake_report> tls_report_;
    std::optional<proxy_server> proxy_;
    http_response_parser parser_;
    std::array<char, 16 * 1024> buffer_{};
    std::size_t bytes_received_ = 0;
    bool finished_ = false;
    bool timed_out_ = false;
    bool cancelled_ = false;
};

} // namespace detail
TETHER_NAMESPACE_END

#endif
