// tether: connect without a credential.
#ifndef TETHER_TOKEN_POLICY_NO_TOKEN_HPP
#define TETHER_TOKEN_POLICY_NO_TOKEN_HPP

#include <tether/token.hpp>

#include <utility>

TETHER_NAMESPACE_BEGIN

/// For servers that need no token (or authorise by URL, as Genesys channels do).
struct no_token {
    template <class Handler> void async_get_token(Handler&& h) {
        std::forward<Handler>(h)(token_result::success(token{}));
    }
    void invalidate(const secret&) noexcept {}
    void cancel() noexcept {}
};

TETHER_NAMESPACE_END

#endif
