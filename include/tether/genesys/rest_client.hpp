// tether: JSON calls to the Genesys Cloud REST API with a shared bearer token.
#ifndef TETHER_GENESYS_REST_CLIENT_HPP
#define TETHER_GENESYS_REST_CLIENT_HPP

#include <tether/detail/http_client.hpp>
#include <tether/detail/net.hpp>
#include <tether/detail/printable.hpp>
#include <tether/detail/retry_after.hpp>
#include <tether/error.hpp>
#include <tether/events.hpp>
#include <tether/token_policy/oauth2_client_credentials.hpp>
#include <tether/token_policy/shared_token_source.hpp>

#if defined(TETHER_USE_BOOST_ASIO)
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#else
#include <asio/bind_executor.hpp>
#include <asio/dispatch.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#endif

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

TETHER_NAMESPACE_BEGIN
namespace genesys {

using rest_token_source = shared_token_source<oauth2_client_credentials>;
using rest_token = rest_token_source::handle_type;

struct rest_options {
    std::string api_base; ///< https://api.<region>, or http://127.0.0.1:PORT (loopback only)
    std::chrono::milliseconds timeout{10000};
    std::size_t max_response_bytes = 1024 * 1024;
    /// 429: wait Retry-After (1 s when absent) and try again, this many times.
    unsigned rate_limit_retries = 3;
    /// A Retry-After longer than this is not waited for here: the call fails
    /// with error::rate_limited and the retry_after, for the caller to honour.
    std::chrono::milliseconds max_retry_after{std::chrono::seconds(60)};
    tls_options tls;
    bool allow_plain_http_to_non_loopback_host = false;
    /// HTTP proxy for the REST calls (none by default; see proxy.hpp).
    proxy_options proxy;
    std::string user_agent = "tether-genesys/0.1";
};

/// The end of one REST call.
struct rest_outcome {
    std::error_code error; ///< empty for 2xx
    int status = 0;        ///< the last HTTP status (0: none)
    nlohmann::json body;   ///< parsed 2xx body (null when empty)
    std::optional<std::chrono::milliseconds> retry_after;
    std::string detail; ///< for logs; never a token; ids shortened, server text printable
    /// Which bearer token the last attempt carried: 1 for the first token
    /// this client used, +1 for each different one after it (0: none).
    std::uint64_t token_serial = 0;
};

/// REST calls with `Authorization: Bearer` from a shared token source. A 401
/// invalidates the token in the shared source (one refresh for every user of
/// it) and retries once; a 429 waits Retry-After and retries. Status mapping
/// of failures: 401 twice -> token_rejected, 403 -> request_forbidden... see
/// complete(). Thread-safe; handlers run on the client's strand.
class rest_client : public std::enable_shared_from_this<rest_client> {
public:
    using handler_type = std::function<void(rest_outcome)>;

    static std::shared_ptr<rest_client> create(const net::any_io_executor& ex, rest_token token,
                                               rest_options o) {
        return std::shared_ptr<rest_client>(new rest_client(ex, std::move(token), std::move(o)));
    }

    /// Reports each bearer token obtained (never the token itself).
    void on_token(std::function<void(const token_event&)> f) { on_token_ = std::move(f); }

    /// `target` is a path below api_base ("/api/v2/..."); `body` JSON text or empty.
    void call(std::string method, std::string target, std::string body, handler_type handler) {
        auto op = std::make_shared<operation>();
        op->method = std::move(method);
        op->target = std::move(target);
        op->body = std::move(body);
        op->handler = std::move(handler);
        net::dispatch(strand_, [self = shared_from_this(), op] { self->attempt(op); });
    }

    /// Abandons calls in flight; their handlers get operation_cancelled.
    void cancel() {
        net::dispatch(strand_, [self = shared_from_this()] {
            ++self->epoch_;
            for (auto& w : self->live_)
                if (auto op = w.lock()) {
                    if (op->exchange) op->exchange->cancel();
                    if (op->timer) op->timer->cancel();
                }
            self->live_.clear();
        });
    }

    /// The bearer token was revoked (v2.system.token_revoked): drop the one
    /// last used from the shared source, so the next call fetches a new one.
    void drop_token() {
        net::dispatch(strand_, [self = shared_from_this()] {
            if (self->token_serial_ != 0) self->token_.invalidate(self->last_bearer_);
        });
    }

    const net::strand<net::any_io_executor>& strand() const noexcept { return strand_; }
    std::uint64_t requests_sent() const noexcept { return requests_.load(); }

private:
    struct operation {
        std::string method, target, body;
        handler_type handler;
        bool refreshed = false; // a 401 already made us refresh once
        unsigned rate_retries = 0;
        std::uint64_t epoch = 0;
        std::shared_ptr<detail::http_exchange> exchange;
        std::unique_ptr<net::steady_timer> timer; // Retry-After wait
        std::uint64_t token_serial = 0;
    };

    rest_client(const net::any_io_executor& ex, rest_token token, rest_options o)
        : strand_(net::make_strand(ex)), token_(std::move(token)), opts_(std::move(o)) {
        std::string why;
        const auto url = detail::parse_http_url(opts_.api_base + "/", why);
        if (!url)
            throw detail::invalid_option("tether: genesys: api base URL '" + opts_.api_base +
                                         "': " + why);
        if (!url->tls && !detail::plain_transport_allowed(
                             url->host, opts_.allow_plain_http_to_non_loopback_host))
            throw detail::invalid_option(
                "tether: genesys: plain http:// API base is allowed only to a loopback "
                "host (the bearer token would travel unencrypted)");
        opts_.proxy.validate("genesys::rest_options");
        base_ = *url;
        if (base_.target == "/") base_.target.clear();
        if (base_.tls) tls_context_ = make_tls_client_context(opts_.tls);
    }

    void attempt(std::shared_ptr<operation> op) {
        if (op->epoch == 0) {
            op->epoch = epoch_;
            live_.erase(
                std::remove_if(live_.begin(), live_.end(),
                               [](const std::weak_ptr<operation>& w) { return w.expired(); }),
                live_.end());
            live_.push_back(op);
        }
        if (op->epoch != epoch_) return finish(op, cancelled());
        std::weak_ptr<rest_client> weak = shared_from_this();
        token_.async_get_token([weak, op](token_result r) {
            if (auto self = weak.lock())
                net::post(self->strand_, [self, op, r = std::move(r)]() mutable {
                    self->on_token(op, std::move(r));
                });
        });
    }

    void on_token(const std::shared_ptr<operation>& op, token_result r) {
        if (op->epoch != epoch_) return finish(op, cancelled());
        if (r.error) {
            rest_outcome out;
            out.error = r.error;
            out.retry_after = r.retry_after;
            out.detail = "no bearer token for " + op->method + " " + loggable_target(op->target) +
                         ": " + r.detail;
            return finish(op, std::move(out));
        }
        if (on_token_) on_token_(token_event{r.value.fresh, op->refreshed, r.value.lifetime});
        secret bearer = r.value.value;
        if (token_serial_ == 0 || !(bearer == last_bearer_)) {
            ++token_serial_;
            last_bearer_ = bearer;
        }
        op->token_serial = token_serial_;
        std::string req = op->method + " " + base_.target + op->target + " HTTP/1.1\r\n";
        req += "Host: " + base_.host_field() + "\r\n";
        req += "User-Agent: " + opts_.user_agent + "\r\n";
        req += "Accept: application/json\r\n";
        if (!op->body.empty()) req += "Content-Type: application/json\r\n";
        req += "Content-Length: " + std::to_string(op->body.size()) + "\r\n";
        req += "Authorization: Bearer ";
        req += bearer.reveal();
        req += "\r\nConnection: close\r\n\r\n";
        req += op->body;
        detail::http_exchange_options xo;
        xo.timeout = opts_.timeout;
        xo.limits.max_body_bytes = opts_.max_response_bytes;
        xo.allow_plain_http_to_non_loopback_host = opts_.allow_plain_http_to_non_loopback_host;
        xo.tls_context = tls_context_;
        xo.tls = opts_.tls;
        xo.proxy = opts_.proxy;
        ++requests_;
        std::weak_ptr<rest_client> weak = shared_from_this();
        op->exchange = detail::http_exchange::start(
            strand_, base_, secret(std::move(req)), std::move(xo),
            [weak, op, bearer](detail::http_result res) mutable {
                if (auto self = weak.lock())
                    // post, not dispatch: op owns the exchange, which is still on the stack here
                    net::post(self->strand_, [self, op, bearer = std::move(bearer),
                                              res = std::move(res)]() mutable {
                        op->exchange.reset();
                        self->on_response(op, bearer, std::move(res));
                    });
            });
    }

    void on_response(const std::shared_ptr<operation>& op, const secret& bearer,
                     detail::http_result res) {
        const std::string what = op->method + " " + loggable_target(op->target);
        if (op->epoch != epoch_) return finish(op, cancelled());
        rest_outcome out;
        out.token_serial = op->token_serial;
        if (res.error) {
            // the proxy's refusals keep their codes: they are permanent (a stop),
            // unlike a failed call
            const bool keep = res.error == error::operation_cancelled ||
                              res.error == error::proxy_auth_required ||
                              res.error == error::proxy_denied;
            out.error = keep ? res.error : make_error_code(error::channel_request_failed);
            out.detail = what + " failed: " + res.detail;
            return finish(op, std::move(out));
        }
        const int s = res.response.status;
        out.status = s;
        if (s == 401 && !op->refreshed) {
            // Expired or revoked: drop it from the shared source (one refresh
            // however many users report it) and try once more.
            op->refreshed = true;
            token_.invalidate(bearer);
            return attempt(op);
        }
        if (s == 429) {
            std::optional<std::chrono::milliseconds> wait;
            if (const std::string* h = res.response.header("Retry-After"))
                wait = detail::parse_retry_after(*h, std::chrono::system_clock::now());
            const auto delay = wait.value_or(std::chrono::seconds(1));
            if (op->rate_retries < opts_.rate_limit_retries && delay <= opts_.max_retry_after) {
                ++op->rate_retries;
                op->timer = std::make_unique<net::steady_timer>(strand_);
                op->timer->expires_after(delay);
                std::weak_ptr<rest_client> weak = shared_from_this();
                op->timer->async_wait(net::bind_executor(strand_, [weak, op](std::error_code ec) {
                    auto self = weak.lock();
                    if (!self) return;
                    if (ec) return self->finish(op, cancelled());
                    self->attempt(op);
                }));
                return;
            }
            out.error = make_error_code(error::rate_limited);
            out.retry_after = delay;
            out.detail = what + ": 429 Too Many Requests";
            return finish(op, std::move(out));
        }
        if (s >= 200 && s <= 299) {
            if (!res.response.body.empty()) {
                out.body = nlohmann::json::parse(res.response.body, nullptr, false);
                if (out.body.is_discarded()) {
                    out.error = make_error_code(error::channel_request_failed);
                    out.detail = what + ": the response body is not JSON";
                    out.body = nullptr;
                }
            }
            return finish(op, std::move(out));
        }
        if (s == 401)
            out.error = make_error_code(error::token_rejected); // a fresh token was refused too
        else if (s == 403)
            out.error = make_error_code(error::request_forbidden);
        else
            out.error = make_error_code(error::channel_request_failed);
        out.detail = what + ": HTTP " + std::to_string(s) + " " + message_of(res.response.body);
        finish(op, std::move(out));
    }

    // The Genesys error shape {"message", "code", "status"}: the message only,
    // bounded and printable (it is the server's text, and goes to logs).
    static std::string message_of(const std::string& body) {
        const auto j = nlohmann::json::parse(body, nullptr, false);
        if (j.is_object() && j.contains("message") && j["message"].is_string())
            return detail::body_excerpt(j["message"].get<std::string>(), 200);
        return {};
    }

public:
    /// A request target for logs: path segments longer than 20 characters
    /// (channel ids, the socket's credential) are shortened.
    static std::string loggable_target(const std::string& target) {
        std::string out;
        std::size_t pos = 0;
        while (pos < target.size()) {
            std::size_t next = target.find('/', pos + 1);
            if (next == std::string::npos) next = target.size();
            const std::string seg = target.substr(pos, next - pos);
            out += seg.size() > 21 ? seg.substr(0, 19) + "..." : seg;
            pos = next;
        }
        return out;
    }

private:
    static rest_outcome cancelled() {
        rest_outcome o;
        o.error = make_error_code(error::operation_cancelled);
        o.detail = "cancelled";
        return o;
    }

    void finish(const std::shared_ptr<operation>& op, rest_outcome out) {
        auto h = std::move(op->handler);
        op->handler = nullptr;
        if (h) h(std::move(out));
    }

    net::strand<net::any_io_executor> strand_;
    rest_token token_;
    rest_options opts_;
    detail::http_url base_;
    std::shared_ptr<net::ssl::context> tls_context_;
    std::vector<std::weak_ptr<operation>> live_;
    std::function<void(const token_event&)> on_token_;
    secret last_bearer_; // to number the tokens (token_serial); never printed
    std::uint64_t token_serial_ = 0;
    std::uint64_t epoch_ = 1;
    std::atomic<std::uint64_t> requests_{0};
};

} // namespace genesys
TETHER_NAMESPACE_END

#endif
