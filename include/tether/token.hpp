// tether: what a TokenPolicy hands out.
#ifndef TETHER_TOKEN_HPP
#define TETHER_TOKEN_HPP

#include <tether/error.hpp>
#include <tether/secret.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <system_error>

TETHER_NAMESPACE_BEGIN

/// A credential for one handshake.
struct token {
    token() = default;
    explicit token(secret v, std::optional<std::chrono::seconds> life = std::nullopt,
                   bool is_fresh = false, std::string where = {})
        : value(std::move(v)), lifetime(life), fresh(is_fresh), endpoint(std::move(where)) {}

    secret value;
    /// How long it stays valid from when the policy hands it over: for a
    /// fresh token the lifetime as issued (OAuth `expires_in`), for a cached
    /// one what is left of it. The client times expiry from its arrival.
    std::optional<std::chrono::seconds> lifetime;
    /// True when the policy obtained it for this request (a fetch that began
    /// after the request), false when it came from a cache. The auth-failure
    /// breaker counts only rejections of fresh tokens.
    bool fresh = false;
    /// Where this credential is valid, when it decides that (a Genesys
    /// channel's connectUri, a pre-signed URL). Empty: client_options::url.
    std::string endpoint;
};

/// The completion of TokenPolicy::async_get_token.
struct token_result {
    std::error_code error; ///< empty on success
    token value;           ///< meaningful only when !error
    /// When the issuer asked us to wait (HTTP 429/503 Retry-After).
    std::optional<std::chrono::milliseconds> retry_after;
    /// Human-readable detail for logs. Never contains a secret.
    std::string detail;

    static token_result success(token t) {
        token_result r;
        r.value = std::move(t);
        return r;
    }
    static token_result failure(std::error_code ec, std::string detail = {}) {
        token_result r;
        r.error = ec;
        r.detail = std::move(detail);
        return r;
    }
};

/// Token errors after which retrying cannot help: the client stops.
inline bool is_permanent_token_error(const std::error_code& ec) noexcept {
    return ec == error::invalid_credentials || ec == error::token_rejected ||
           ec == error::token_unavailable || ec == error::channel_creation_limit ||
           ec == error::subscription_rejected || ec == error::request_forbidden ||
           ec == error::proxy_auth_required || ec == error::proxy_denied;
}

TETHER_NAMESPACE_END

#endif
