// tether: one fixed token.
#ifndef TETHER_TOKEN_POLICY_STATIC_TOKEN_HPP
#define TETHER_TOKEN_POLICY_STATIC_TOKEN_HPP

#include <tether/token.hpp>

#include <string>
#include <utility>

TETHER_NAMESPACE_BEGIN

/// A token that never changes (an API key, a long-lived personal token). Once
/// the server rejects it there is nothing else to offer, so the client stops
/// with `error::token_rejected` instead of retrying a dead credential.
class static_token {
public:
    explicit static_token(secret value) : value_(std::move(value)) {}
    explicit static_token(std::string value) : value_(std::move(value)) {}

    template <class Handler> void async_get_token(Handler&& h) {
        if (rejected_)
            std::forward<Handler>(h)(token_result::failure(error::token_rejected));
        else
            std::forward<Handler>(h)(token_result::success(token{value_, std::nullopt, false}));
    }
    void invalidate(const secret& rejected) noexcept {
        if (rejected == value_) rejected_ = true;
    }
    void cancel() noexcept {}

    bool rejected() const noexcept { return rejected_; }

private:
    secret value_;
    bool rejected_ = false;
};

TETHER_NAMESPACE_END

#endif
