// tether: OAuth 2.0 client credentials grant (RFC 6749 section 4.4).
#ifndef TETHER_TOKEN_POLICY_OAUTH2_CLIENT_CREDENTIALS_HPP
#define TETHER_TOKEN_POLICY_OAUTH2_CLIENT_CREDENTIALS_HPP

#include <tether/detail/http_client.hpp>
#include <tether/detail/net.hpp>
#include <tether/error.hpp>
#include <tether/proxy.hpp>
#include <tether/token.hpp>
#include <tether/token_policy/oauth2_response.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

TETHER_NAMESPACE_BEGIN

/// How the client proves its identity to the token endpoint.
enum class client_auth : unsigned char {
    /// `Authorization: Basic`, id and secret form-encoded first as RFC 6749
    /// section 2.3.1 says (identical to plain for alphanumeric, '-', '.', '_').
    http_basic,
    /// `Authorization: Basic base64(id:secret)` without that encoding, for
    /// servers that do not decode it.
    http_basic_unencoded,
    /// `client_id` and `client_secret` as form parameters in the body.
    request_body,
};

struct oauth2_options {
    std::string token_url; ///< https://... (http:// only to loopback, see below)
    std::string client_id;
    secret client_secret;
    client_auth auth = client_auth::http_basic;
    std::string scope;    ///< space-separated; not sent when empty
    std::string audience; ///< not sent when empty
    /// More form parameters. Their values may be credentials: they are never
    /// printed, only their names.
    std::vector<std::pair<std::string, std::string>> extra_params;

    /// Token lifetime when the response has no `expires_in`.
    std::chrono::seconds default_lifetime{3600};
    /// Whole exchange: resolve, connect, TLS, request, response.
    std::chrono::milliseconds timeout{10000};
    /// Largest response body accepted (error::response_too_large beyond).
    std::size_t max_response_bytes = 64 * 1024;
    tls_options tls;
    /// Sends the client secret over plain http:// to a host that is not
    /// loopback. Anyone on the path can read it. Off by default.
    bool allow_plain_http_to_non_loopback_host = false;
    /// HTTP proxy for the token request (none by default; see proxy.hpp and
    /// proxy_options::from_environment()). Failures: proxy_auth_required and
    /// proxy_denied (permanent), proxy_error.
    proxy_options proxy;
    std::string user_agent = "tether/" + std::to_string(TETHER_VERSION_MAJOR) + "." +
                             std::to_string(TETHER_VERSION_MINOR) + "." +
                             std::to_string(TETHER_VERSION_PATCH);
    /// Step-by-step notes (resolve, connect, TLS, status, outcome) for
    /// debugging; called from I/O threads. Never given a secret or a body.
    std::function<void(std::string_view)> trace;

    /// Throws std::system_error (error::invalid_option) naming the bad option.
    void validate() const {
        std::string why;
        const auto url = detail::parse_http_url(token_url, why);
        if (!url) throw detail::invalid_option("tether: oauth2_options::token_url: " + why);
        if (!url->tls &&
            !detail::plain_transport_allowed(url->host, allow_plain_http_to_non_loopback_host))
            throw detail::invalid_option(
                "tether: oauth2_options::token_url: plain http:// is allowed only to a loopback "
                "host (the client secret would travel unencrypted); use https:// or set "
                "allow_plain_http_to_non_loopback_host");
        proxy.validate("oauth2_options");
        if (client_id.empty())
            throw detail::invalid_option("tether: oauth2_options::client_id is empty");
        if (client_secret.empty())
            throw detail::invalid_option("tether: oauth2_options::client_secret is empty");
        if (auth == client_auth::http_basic_unencoded && client_id.find(':') != std::string::npos)
            throw detail::invalid_option(
                "tether: oauth2_options::client_id contains ':' which http_basic_unencoded cannot "
                "carry; use client_auth::http_basic");
        if (default_lifetime.count() <= 0)
            throw detail::invalid_option(
                "tether: oauth2_options::default_lifetime must be positive");
        if (timeout.count() <= 0)
            throw detail::invalid_option("tether: oauth2_options::timeout must be positive");
        if (max_response_bytes == 0)
            throw detail::invalid_option(
                "tether: oauth2_options::max_response_bytes must be positive");
        for (const auto& p : extra_params)
            if (p.first.empty())
                throw detail::invalid_option(
                    "tether: oauth2_options::extra_params has an empty name");
        for (char c : user_agent)
            if (!detail::is_field_char(c) || c == '\t')
                throw detail::invalid_option(
                    "tether: oauth2_options::user_agent has a control character");
    }

    friend std::ostream& operator<<(std::ostream& os, const oauth2_options& o) {
        std::string why;
        const auto url = detail::parse_http_url(o.token_url, why);
        os << "oauth2_options{token_url=" << (url ? url->display() : std::string("<invalid>"))
           << ", client_id=" << o.client_id << ", client_secret=" << o.client_secret << ", auth="
           << (o.auth == client_auth::http_basic             ? "http_basic"
               : o.auth == client_auth::http_basic_unencoded ? "http_basic_unencoded"
                                                             : "request_body");
        if (!o.scope.empty()) os << ", scope=" << o.scope;
        if (!o.audience.empty()) os << ", audience=" << o.audience;
        for (const auto& p : o.extra_params)
            os << ", " << p.first << "=[redacted]";
        if (o.proxy.enabled()) os << ", proxy=" << o.proxy;
        return os << ", timeout=" << o.timeout.count() << "ms}";
    }
};

/// A TokenPolicy that asks a token endpoint for a new token on every call
/// (fresh == true). It keeps no cache: to share one token between clients
/// and refresh it before expiry, wrap it in shared_token_source.
///
/// Errors (token_result::error): invalid_credentials (permanent),
/// rate_limited (with retry_after), token_request_failed,
/// token_request_timeout, malformed_token_response, malformed_http_response,
/// response_too_large, tls_verification_failed, insecure_transport,
/// token_rejected (the endpoint returned a token passed to invalidate()),
/// operation_cancelled. See oauth2_response.hpp for the status mapping.
///
/// Thread-safe: every member may be called from any thread. The handler runs
/// on an I/O thread of the executor given at construction.
class oauth2_client_credentials {
public:
    /// Throws std::system_error (error::invalid_option) (bad options) or std::runtime_error (a
    /// CA file that does not load).
    oauth2_client_credentials(net::any_io_executor executor, oauth2_options options)
        : state_(std::make_shared<state>(std::move(executor), std::move(options))) {}

    template <class Handler> void async_get_token(Handler&& handler) {
        state_->start(std::function<void(token_result)>(
            [h = std::make_shared<std::decay_t<Handler>>(std::forward<Handler>(handler))](
                token_result r) { (*h)(std::move(r)); }));
    }

    /// The endpoint may hand back the same token while it is valid; a token
    /// the server rejected is refused instead (error::token_rejected).
    void invalidate(const secret& rejected) { state_->remember_rejected(rejected); }

    /// Aborts requests in flight; their handlers run with operation_cancelled.
    void cancel() { state_->cancel_all(); }

    const oauth2_options& options() const noexcept { return state_->options; }
    /// Requests sent so far (for metrics and tests).
    std::uint64_t requests_started() const noexcept { return state_->started.load(); }

    friend std::ostream& operator<<(std::ostream& os, const oauth2_client_credentials& p) {
        return os << "oauth2_client_credentials{" << p.state_->options << "}";
    }

private:
    struct state : std::enable_shared_from_this<state> {
        state(net::any_io_executor ex, oauth2_options o)
            : executor(std::move(ex)), options(std::move(o)) {
            options.validate();
            std::string why;
            url = *detail::parse_http_url(options.token_url, why);
            if (url.tls) tls_context = make_tls_client_context(options.tls);
            rules.default_lifetime = options.default_lifetime;
            rules.redact.push_back(options.client_secret.reveal());
        }

        void start(std::function<void(token_result)> handler) {
            started.fetch_add(1);
            secret request = build_request();
            detail::http_exchange_options xo;
            xo.timeout = options.timeout;
            xo.limits.max_body_bytes = options.max_response_bytes;
            xo.allow_plain_http_to_non_loopback_host =
                options.allow_plain_http_to_non_loopback_host;
            xo.tls_context = tls_context;
            xo.tls = options.tls;
            xo.proxy = options.proxy;
            xo.trace = options.trace;
            trace("POST " + url.display() + " (grant client_credentials, client_id " +
                  options.client_id + ", client auth " + auth_name() + ")");
            auto self = shared_from_this();
            auto exchange = detail::http_exchange::start(
                executor, url, std::move(request), std::move(xo),
                [self, handler = std::move(handler)](detail::http_result r) mutable {
                    self->forget_finished();
                    handler(self->complete(std::move(r)));
                });
            std::lock_guard<std::mutex> lock(mutex);
            in_flight.push_back(exchange);
        }

        token_result complete(detail::http_result r) {
            token_result out;
            if (r.error) {
                out = token_result::failure(map_transport_error(r.error),
                                            "token request to " + url.display() +
                                                " failed: " + r.detail);
            } else {
                out = parse_token_response(r.response, rules, std::chrono::system_clock::now());
                detail::wipe(r.response.body);
                if (!out.error && is_rejected(out.value.value))
                    out = token_result::failure(make_error_code(error::token_rejected),
                                                "the token endpoint returned a token the server "
                                                "had already rejected");
            }
            if (out.error)
                trace("token request failed: " + out.error.message() + " (" + out.detail + ")");
            else
                trace("token obtained, lifetime " + std::to_string(out.value.lifetime->count()) +
                      " s");
            return out;
        }

        static std::error_code map_transport_error(std::error_code ec) {
            if (ec == detail::net_error(net::error::timed_out))
                return make_error_code(error::token_request_timeout);
            if (ec.category() == error_category()) return ec; // already specific
            return make_error_code(error::token_request_failed);
        }

        secret build_request() const {
            std::string body = "grant_type=client_credentials";
            auto param = [&body](std::string_view name, std::string_view value) {
                body += '&';
                body += detail::form_urlencode(name);
                body += '=';
                std::string encoded = detail::form_urlencode(value);
                body += encoded;
                detail::wipe(encoded);
            };
            if (!options.scope.empty()) param("scope", options.scope);
            if (!options.audience.empty()) param("audience", options.audience);
            for (const auto& p : options.extra_params)
                param(p.first, p.second);

            std::string authorization;
            if (options.auth == client_auth::request_body) {
                param("client_id", options.client_id);
                param("client_secret", options.client_secret.reveal());
            } else {
                std::string pair;
                if (options.auth == client_auth::http_basic) {
                    pair = detail::form_urlencode(options.client_id) + ":";
                    std::string s = detail::form_urlencode(options.client_secret.reveal());
                    pair += s;
                    detail::wipe(s);
                } else {
                    pair = options.client_id + ":";
                    pair += options.client_secret.reveal();
                }
                authorization = "Basic " + detail::base64_encode(pair);
                detail::wipe(pair);
            }

            std::string req;
            req.reserve(512 + body.size());
            req += "POST " + url.target + " HTTP/1.1\r\n";
            req += "Host: " + url.host_field() + "\r\n";
            req += "User-Agent: " + options.user_agent + "\r\n";
            req += "Accept: application/json\r\n";
            req += "Content-Type: application/x-www-form-urlencoded\r\n";
            req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
            if (!authorization.empty()) {
                req += "Authorization: ";
                req += authorization;
                req += "\r\n";
            }
            req += "Cache-Control: no-store\r\n";
            req += "Connection: close\r\n\r\n";
            req += body;
            detail::wipe(authorization);
            detail::wipe(body);
            return secret(std::move(req));
        }

        const char* auth_name() const noexcept {
            switch (options.auth) {
            case client_auth::http_basic: return "http_basic";
            case client_auth::http_basic_unencoded: return "http_basic_unencoded";
            case client_auth::request_body: return "request_body";
            }
            return "?";
        }

        void trace(const std::string& note) const {
            if (options.trace) options.trace(note);
        }

        void remember_rejected(const secret& s) {
            std::lock_guard<std::mutex> lock(mutex);
            if (std::find(rejected.begin(), rejected.end(), s) != rejected.end()) return;
            if (rejected.size() == max_remembered) rejected.erase(rejected.begin());
            rejected.push_back(s);
        }
        bool is_rejected(const secret& s) {
            std::lock_guard<std::mutex> lock(mutex);
            return std::find(rejected.begin(), rejected.end(), s) != rejected.end();
        }

        void forget_finished() {
            std::lock_guard<std::mutex> lock(mutex);
            in_flight.erase(std::remove_if(in_flight.begin(), in_flight.end(),
                                           [](const std::weak_ptr<detail::http_exchange>& w) {
                                               return w.expired();
                                           }),
                            in_flight.end());
        }

        void cancel_all() {
            std::vector<std::shared_ptr<detail::http_exchange>> live;
            {
                std::lock_guard<std::mutex> lock(mutex);
                for (auto& w : in_flight)
                    if (auto p = w.lock()) live.push_back(std::move(p));
                in_flight.clear();
            }
            for (auto& p : live)
                p->cancel();
        }

        static constexpr std::size_t max_remembered = 16;

        net::any_io_executor executor;
        oauth2_options options;
        detail::http_url url;
        std::shared_ptr<net::ssl::context> tls_context;
        oauth2_response_rules rules;
        std::atomic<std::uint64_t> started{0};
        std::mutex mutex;
        std::vector<secret> rejected;
        std::vector<std::weak_ptr<detail::http_exchange>> in_flight;
    };

    std::shared_ptr<state> state_;
};

TETHER_NAMESPACE_END

#endif
