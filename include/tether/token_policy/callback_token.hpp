// tether: tokens from a user function, synchronous or asynchronous.
#ifndef TETHER_TOKEN_POLICY_CALLBACK_TOKEN_HPP
#define TETHER_TOKEN_POLICY_CALLBACK_TOKEN_HPP

#include <tether/token.hpp>

#include <algorithm>
#include <atomic>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

TETHER_NAMESPACE_BEGIN

/// Handed to an asynchronous token function; call it once, from any thread.
/// Later calls are ignored. Dropping it uncalled leaves the client waiting
/// until it is stopped, so always complete it, with an error if need be.
class token_completion {
public:
    void operator()(token_result r) const {
        if (state_ && !state_->done.exchange(true)) state_->complete(std::move(r));
    }
    /// Success: the token and, when the issuer said, its lifetime.
    void operator()(std::string value, std::optional<std::chrono::seconds> lifetime = {}) const {
        (*this)(token_result::success(token{secret(std::move(value)), lifetime, true}));
    }
    void fail(std::error_code ec, std::string detail = {}) const {
        (*this)(token_result::failure(ec, std::move(detail)));
    }

private:
    template <class> friend class callback_token;
    struct state {
        std::atomic<bool> done{false};
        std::function<void(token_result)> complete;
    };
    explicit token_completion(std::shared_ptr<state> s) : state_(std::move(s)) {}
    std::shared_ptr<state> state_;
};

/// A TokenPolicy around a user function, in one of these forms:
///
/// | form                                  | meaning                                   |
/// |---------------------------------------|-------------------------------------------|
/// | `void(tether::token_completion)`      | asynchronous: complete it later, any thread |
/// | `tether::token_result()`              | synchronous, with errors                  |
/// | `std::string()`                       | synchronous; a throw becomes token_request_failed |
///
/// A token equal to the one handed out last counts as cached (not fresh); a
/// token the server rejected is never handed out again: the client gets
/// `error::token_rejected` instead, and stops.
template <class Fetch> class callback_token {
public:
    explicit callback_token(Fetch fetch)
        : fetch_(std::move(fetch)), shared_(std::make_shared<shared>()) {}

    template <class Handler> void async_get_token(Handler&& handler) {
        auto filter = [sh = shared_, h = std::forward<Handler>(handler)](token_result r) mutable {
            if (!r.error) sh->admit(r);
            h(std::move(r));
        };
        if constexpr (std::is_invocable_v<Fetch&, token_completion>) {
            auto st = std::make_shared<token_completion::state>();
            st->complete = std::move(filter);
            fetch_(token_completion(std::move(st)));
        } else {
            filter(call_sync());
        }
    }

    void invalidate(const secret& rejected) {
        std::lock_guard<std::mutex> lock(shared_->mutex);
        auto& r = shared_->rejected;
        if (std::find(r.begin(), r.end(), rejected) != r.end()) return;
        if (r.size() == max_remembered) r.erase(r.begin());
        r.push_back(rejected);
    }
    void cancel() noexcept {}

    Fetch& function() noexcept { return fetch_; }

private:
    static constexpr std::size_t max_remembered = 16;

    struct shared {
        std::mutex mutex;
        std::vector<secret> rejected;
        secret last;
        void admit(token_result& r) {
            std::lock_guard<std::mutex> lock(mutex);
            if (std::find(rejected.begin(), rejected.end(), r.value.value) != rejected.end()) {
                r = token_result::failure(
                    error::token_rejected,
                    "the token function returned a token the server rejected");
                return;
            }
            r.value.fresh = !(r.value.value == last);
            last = r.value.value;
        }
    };

    token_result call_sync() {
        try {
            using result = std::invoke_result_t<Fetch&>;
            if constexpr (std::is_same_v<result, token_result>) {
                return fetch_();
            } else {
                static_assert(std::is_convertible_v<result, std::string>,
                              "tether: callback_token: the function must take a token_completion, "
                              "or return token_result or std::string");
                return token_result::success(
                    token{secret(std::string(fetch_())), std::nullopt, true});
            }
        } catch (const std::exception& e) {
            return token_result::failure(error::token_request_failed,
                                         std::string("token function threw: ") + e.what());
        } catch (...) {
            return token_result::failure(error::token_request_failed, "token function threw");
        }
    }

    Fetch fetch_;
    std::shared_ptr<shared> shared_;
};

template <class Fetch> callback_token(Fetch) -> callback_token<Fetch>;

TETHER_NAMESPACE_END

#endif
