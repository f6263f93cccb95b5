// tether: one token shared by many clients, refreshed once, before it expires.
#ifndef TETHER_TOKEN_POLICY_SHARED_TOKEN_SOURCE_HPP
#define TETHER_TOKEN_POLICY_SHARED_TOKEN_SOURCE_HPP

#include <tether/backoff/ladder.hpp>
#include <tether/error.hpp>
#include <tether/token.hpp>
#include <tether/token_policy/concept.hpp>

#include <tether/detail/net.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

TETHER_NAMESPACE_BEGIN

struct shared_token_options {
    /// Soft margin: from this long before expiry (spread by refresh_jitter)
    /// a refresh starts in the background while the current token is still
    /// handed out.
    std::chrono::seconds soft_margin{300};
    /// Hard margin: a token this close to expiry is never handed out;
    /// requests wait for the refresh instead.
    std::chrono::seconds hard_margin{30};
    // Both margins are capped at a half and a quarter of the token's lifetime,
    // so a short-lived token is still used instead of refreshed at once.

    /// Spreads proactive refreshes. Each token's refresh starts at a time
    /// drawn uniformly between the soft margin and `refresh_jitter` of the
    /// way from the soft to the hard margin: with the defaults (300 s, 30 s,
    /// 0.5), between 300 s and 165 s before expiry. Never earlier than the
    /// soft margin (no more fetches than without jitter) and at least
    /// (1 - refresh_jitter) of the span before the hard margin (time left for
    /// background retries). Many sources whose tokens were issued in the
    /// same second (one per tenant) are then not all refreshed in the same
    /// second. 0: exactly at the soft margin. In [0, 1).
    double refresh_jitter = 0.5;
    /// Seed of the draws (SplitMix64, the backoffs' jitter_rng); unset: from
    /// std::random_device. Give each source its own seed: sources with equal
    /// seeds draw the same times.
    std::optional<std::uint64_t> refresh_jitter_seed;

    /// After a failed fetch, requests get the same failure, without a new
    /// fetch, for this long: many clients retrying cannot storm the issuer.
    /// A Retry-After from the issuer extends it.
    std::chrono::milliseconds failure_hold{1000};
    /// The same for permanent failures (invalid_credentials...).
    std::chrono::milliseconds permanent_failure_hold{std::chrono::minutes(1)};
    /// A failed background refresh is retried after this long, as long as
    /// the current token stays usable.
    std::chrono::milliseconds background_retry{5000};

    /// Throws std::system_error (error::invalid_option) naming the bad option.
    void validate() const {
        if (soft_margin.count() < 0 || hard_margin.count() < 0)
            throw detail::invalid_option(
                "tether: shared_token_options: margins must not be negative");
        if (hard_margin > soft_margin)
            throw detail::invalid_option(
                "tether: shared_token_options: hard_margin must not exceed soft_margin");
        if (!(refresh_jitter >= 0.0 && refresh_jitter < 1.0)) // NaN fails too
            throw detail::invalid_option(
                "tether: shared_token_options: refresh_jitter must be in [0, 1) (got " +
                std::to_string(refresh_jitter) + ")");
        if (failure_hold.count() < 0 || permanent_failure_hold.count() < 0 ||
            background_retry.count() <= 0)
            throw detail::invalid_option(
                "tether: shared_token_options: bad hold or retry interval");
    }
};

/// Real time for shared_token_source: std::chrono::steady_clock and
/// asio::steady_timer on an executor.
///
/// A Timing is any object (or pointer to one, e.g. testing::simulation*) with
/// `now()` returning a time_point and `make_timer()` returning a timer with
/// `expires_at(time_point)`, `async_wait(void(std::error_code))` and `cancel()`.
class steady_timing {
public:
    template <class Executor,
              std::enable_if_t<!std::is_same_v<std::decay_t<Executor>, steady_timing> &&
                                   std::is_convertible_v<const Executor&, net::any_io_executor>,
                               int> = 0>
    steady_timing(const Executor& ex) : executor_(ex) {}

    std::chrono::steady_clock::time_point now() const { return std::chrono::steady_clock::now(); }
    net::steady_timer make_timer() const { return net::steady_timer(executor_); }

private:
    net::any_io_executor executor_;
};

/// What a shared_token_source did, for metrics and tests.
struct shared_token_stats {
    std::uint64_t requests = 0;            ///< async_get_token calls
    std::uint64_t served_from_cache = 0;   ///< answered with the current token
    std::uint64_t fetches = 0;             ///< fetcher calls (foreground and background)
    std::uint64_t proactive_refreshes = 0; ///< fetches started by the soft-margin timer
    std::uint64_t fetch_failures = 0;
    std::uint64_t held_failures = 0;  ///< requests answered with a held failure
    std::uint64_t invalidations = 0;  ///< invalidate() calls
    std::uint64_t tokens_dropped = 0; ///< invalidations that dropped the current token
    std::size_t waiting = 0;          ///< requests waiting for a fetch now
    bool has_token = false;
};

template <class Fetcher, class Timing> class shared_token_source;
template <class Fetcher, class Timing> class shared_token;

namespace detail {

template <class T> T& timing_object(T& t) noexcept { return t; }
template <class T> T& timing_object(T* t) noexcept { return *t; }

template <class Fetcher, class Timing>
class shared_token_state
    : public std::enable_shared_from_this<shared_token_state<Fetcher, Timing>> {
public:
    using clock_source = std::remove_pointer_t<Timing>;
    using time_point = decltype(std::declval<clock_source&>().now());
    using duration = typename time_point::duration;
    using timer_type = decltype(std::declval<clock_source&>().make_timer());
    using handler_type = std::function<void(token_result)>;

    shared_token_state(Fetcher fetcher, Timing timing, shared_token_options options)
        : fetcher_(std::move(fetcher)), timing_(std::move(timing)),
          timer_(timing_object(timing_).make_timer()), options_(options), rng_(seed_for(options)) {
        options_.validate();
    }
    ~shared_token_state() {
        // Completions of a fetch or timer still in flight hold only a weak
        // reference: they find us gone and do nothing.
        fetcher_.cancel();
        timer_.cancel();
    }
    shared_token_state(const shared_token_state&) = delete;
    shared_token_state& operator=(const shared_token_state&) = delete;

    std::uint64_t add_handle() {
        std::lock_guard<std::mutex> lock(mutex_);
        const auto id = ++last_handle_;
        handles_[id];
        return id;
    }

    void remove_handle(std::uint64_t id) {
        std::vector<waiter> gone;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            gone = take_waiters_of(id);
            handles_.erase(id);
        }
        // `gone` (and whatever the handlers own) is destroyed unlocked.
    }

    void cancel(std::uint64_t id) {
        std::vector<waiter> gone; // destroyed after the lock is released
        std::lock_guard<std::mutex> lock(mutex_);
        gone = take_waiters_of(id);
    }

    void get(std::uint64_t id, handler_type handler) {
        // An inline handler may destroy the last handle; stay alive until we return.
        const auto self = this->shared_from_this();
        std::unique_lock<std::mutex> lock(mutex_);
        const time_point now = clock().now();
        ++stats_.requests;
        if (current_ && usable(*current_, now)) {
            token_result r = token_result::success(current_->value);
            r.value.fresh = replaces_what_handle_rejected(id, *current_);
            // A cached token has lived part of its life: announce what is left,
            // or a client that renews before expiry (renew_before_expiry) would
            // count the full lifetime from now and renew too late.
            if (current_->expiry)
                r.value.lifetime =
                    std::chrono::floor<std::chrono::seconds>(*current_->expiry - now);
            ++stats_.served_from_cache;
            const bool refresh =
                current_->expiry && now >= current_->soft_at && !fetching_ && !holding(now);
            if (refresh) begin_fetch(now);
            lock.unlock();
            handler(std::move(r));
            if (refresh) launch();
            return;
        }
        current_.reset(); // absent, or past the hard margin
        if (holding(now)) {
            ++stats_.held_failures;
            token_result r = held_failure(now);
            lock.unlock();
            handler(std::move(r));
            return;
        }
        waiters_.push_back(waiter{id, ++sequence_, std::move(handler)});
        const bool start = !fetching_;
        if (start) begin_fetch(now);
        lock.unlock();
        if (start) launch();
    }

    void invalidate(std::uint64_t id, const secret& rejected) {
        bool forward = false;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            ++stats_.invalidations;
            std::uint64_t generation = 0;
            if (current_ && current_->value.value == rejected) {
                // Only the first report of the current token drops it; the
                // other 999 find it gone (or already replaced) and do nothing.
                generation = current_->generation;
                pending_replacement_ = generation;
                current_.reset();
                ++stats_.tokens_dropped;
                forward = true;
            }
            generation = remember_rejected(rejected, generation);
            auto h = handles_.find(id);
            if (h != handles_.end()) h->second.rejected_generation = generation;
        }
        if (forward) fetcher_.invalidate(rejected);
    }

    shared_token_stats stats() const {
        std::lock_guard<std::mutex> lock(mutex_);
        shared_token_stats s = stats_;
        s.waiting = waiters_.size();
        s.has_token = current_.has_value();
        return s;
    }

    Fetcher& fetcher() noexcept { return fetcher_; }

private:
    struct cached_token {
        token value;
        std::optional<time_point> expiry; // none: the issuer gave no lifetime
        time_point soft_at{};
        time_point hard_at{};
        std::uint64_t generation = 0;
        std::uint64_t replaces = 0; // generation of the rejected token this one replaced
    };
    struct waiter {
        std::uint64_t handle;
        std::uint64_t sequence;
        handler_type handler;
    };
    struct handle_state {
        std::uint64_t rejected_generation = 0;
    };
    struct rejected_token {
        secret value;
        std::uint64_t generation;
    };
    struct held {
        token_result result;
        time_point until;
    };

    static constexpr std::size_t max_remembered = 16;

    static std::uint64_t seed_for(const shared_token_options& o) {
        if (o.refresh_jitter_seed) return *o.refresh_jitter_seed;
        if (!(o.refresh_jitter > 0.0)) return 0; // no draws: no random_device either
        std::random_device rd;
        return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
    }

    clock_source& clock() noexcept { return timing_object(timing_); }

    static bool usable(const cached_token& t, time_point now) {
        return !t.expiry || now < t.hard_at;
    }

    bool holding(time_point now) const { return failure_ && now < failure_->until; }

    // "fresh" for the auth-failure breaker also covers a waiter that reported
    // the token this one replaced, even if another client's request started
    // the fetch: it is the first new token that waiter sees since the rejection.
    bool replaces_what_handle_rejected(std::uint64_t id, const cached_token& t) {
        auto h = handles_.find(id);
        if (h == handles_.end() || h->second.rejected_generation == 0 ||
            h->second.rejected_generation != t.replaces)
            return false;
        h->second.rejected_generation = 0;
        return true;
    }

    std::uint64_t remember_rejected(const secret& s, std::uint64_t generation) {
        for (auto& r : rejected_)
            if (r.value == s) {
                if (r.generation == 0) r.generation = generation;
                return r.generation;
            }
        if (rejected_.size() == max_remembered) rejected_.erase(rejected_.begin());
        rejected_.push_back(rejected_token{s, generation});
        return generation;
    }

    bool is_rejected(const secret& s) const {
        return std::any_of(rejected_.begin(), rejected_.end(),
                           [&](const rejected_token& r) { return r.value == s; });
    }

    std::vector<waiter> take_waiters_of(std::uint64_t id) {
        std::vector<waiter> out;
        auto keep = std::stable_partition(waiters_.begin(), waiters_.end(),
                                          [id](const waiter& w) { return w.handle != id; });
        std::move(keep, waiters_.end(), std::back_inserter(out));
        waiters_.erase(keep, waiters_.end());
        return out;
    }

    token_result held_failure(time_point now) const {
        token_result r = failure_->result;
        if (r.retry_after)
            r.retry_after = std::chrono::ceil<std::chrono::milliseconds>(failure_->until - now);
        r.detail = "held from the last token request, not retried yet: " + r.detail;
        return r;
    }

    duration hold_for(const token_result& r) const {
        if (r.error == error::operation_cancelled) return duration::zero();
        duration d = std::chrono::duration_cast<duration>(is_permanent_token_error(r.error)
                                                              ? options_.permanent_failure_hold
                                                              : options_.failure_hold);
        if (r.retry_after) d = std::max(d, std::chrono::duration_cast<duration>(*r.retry_after));
        return d;
    }

    void begin_fetch(time_point now) {
        fetching_ = true;
        fetch_sequence_ = ++sequence_;
        fetch_started_ = now;
        ++stats_.fetches;
    }

    void launch() {
        std::weak_ptr<shared_token_state> weak = this->shared_from_this();
        fetcher_.async_get_token([weak](token_result r) {
            if (auto self = weak.lock()) self->on_fetched(std::move(r));
        });
    }

    void on_fetched(token_result r) {
        std::vector<std::pair<handler_type, token_result>> ready;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            fetching_ = false;
            const time_point now = clock().now();
            if (!r.error && is_rejected(r.value.value))
                r = token_result::failure(
                    make_error_code(error::token_rejected),
                    "the fetcher returned a token the server had already rejected");
            if (!r.error) {
                failure_.reset();
                install(std::move(r.value));
                for (auto& w : waiters_) {
                    token_result x = token_result::success(current_->value);
                    x.value.fresh = fetch_sequence_ > w.sequence ||
                                    replaces_what_handle_rejected(w.handle, *current_);
                    ready.emplace_back(std::move(w.handler), std::move(x));
                }
                if (current_->expiry) arm_timer(current_->soft_at);
            } else {
                ++stats_.fetch_failures;
                const duration hold = hold_for(r);
                if (hold > duration::zero())
                    failure_ = held{r, now + hold};
                else
                    failure_.reset();
                for (auto& w : waiters_)
                    ready.emplace_back(std::move(w.handler), r);
                // A failed background refresh: try again while the token lasts.
                if (current_ && current_->expiry && usable(*current_, now)) {
                    const time_point retry =
                        now + std::max(hold, std::chrono::duration_cast<duration>(
                                                 options_.background_retry));
                    if (retry < current_->hard_at) arm_timer(retry);
                }
            }
            waiters_.clear();
        }
        for (auto& [handler, result] : ready)
            handler(std::move(result));
    }

    void install(token t) {
        cached_token c;
        c.value = std::move(t);
        c.value.fresh = false;
        c.generation = ++generation_;
        c.replaces = pending_replacement_;
        pending_replacement_ = 0;
        if (c.value.lifetime) {
            // Counted from the start of the fetch: the issuer's clock started
            // somewhere between then and now. Ten years keeps arithmetic safe.
            const auto lifetime = std::chrono::duration_cast<duration>(
                std::min(*c.value.lifetime, std::chrono::seconds(std::chrono::hours(24 * 3660))));
            const auto soft =
                std::min(std::chrono::duration_cast<duration>(options_.soft_margin), lifetime / 2);
            const auto hard =
                std::min(std::chrono::duration_cast<duration>(options_.hard_margin), lifetime / 4);
            c.expiry = fetch_started_ + lifetime;
            c.soft_at = *c.expiry - soft + jitter(soft - hard);
            c.hard_at = *c.expiry - hard;
        }
        current_ = std::move(c);
    }

    // How far into the span between the margins this token's refresh starts:
    // uniform in [0, refresh_jitter * span], so always before the hard margin.
    duration jitter(duration span) {
        if (options_.refresh_jitter <= 0.0 || span <= duration::zero()) return duration::zero();
        const auto most =
            static_cast<long long>(options_.refresh_jitter * static_cast<double>(span.count()));
        return duration(static_cast<typename duration::rep>(
            detail::uniform_between(rng_, 0, std::min<long long>(most, span.count() - 1))));
    }

    void arm_timer(time_point at) {
        const auto armed = ++timer_generation_;
        timer_.expires_at(at);
        std::weak_ptr<shared_token_state> weak = this->shared_from_this();
        timer_.async_wait([weak, armed](const std::error_code& ec) {
            if (ec) return;
            if (auto self = weak.lock()) self->on_timer(armed);
        });
    }

    void on_timer(std::uint64_t armed) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (armed != timer_generation_ || fetching_ || !current_ || !current_->expiry) return;
            const time_point now = clock().now();
            if (!usable(*current_, now)) return; // the next request fetches
            if (holding(now)) {
                if (failure_->until < current_->hard_at) arm_timer(failure_->until);
                return;
            }
            begin_fetch(now);
            ++stats_.proactive_refreshes;
        }
        launch();
    }

    Fetcher fetcher_;
    Timing timing_;
    timer_type timer_;
    shared_token_options options_;
    jitter_rng rng_; // refresh_jitter's draws, under mutex_

    mutable std::mutex mutex_;
    std::optional<cached_token> current_;
    std::vector<rejected_token> rejected_;
    std::uint64_t pending_replacement_ = 0;
    std::optional<held> failure_;
    std::vector<waiter> waiters_;
    std::unordered_map<std::uint64_t, handle_state> handles_;
    std::uint64_t last_handle_ = 0;
    std::uint64_t sequence_ = 0;
    std::uint64_t generation_ = 0;
    std::uint64_t timer_generation_ = 0;
    bool fetching_ = false;
    std::uint64_t fetch_sequence_ = 0;
    time_point fetch_started_{};
    shared_token_stats stats_;
};

} // namespace detail

/// One client's view of a shared_token_source; a TokenPolicy. Move-only.
/// Its cancel() and destructor remove only its own pending request.
template <class Fetcher, class Timing = steady_timing> class shared_token {
public:
    shared_token(shared_token&& other) noexcept : state_(std::move(other.state_)), id_(other.id_) {}
    shared_token& operator=(shared_token&& other) noexcept {
        if (this != &other) {
            release();
            state_ = std::move(other.state_);
            id_ = other.id_;
        }
        return *this;
    }
    shared_token(const shared_token&) = delete;
    shared_token& operator=(const shared_token&) = delete;
    ~shared_token() { release(); }

    /// Completes inline with the cached token when it is usable; otherwise
    /// joins (or starts) the one fetch in flight and completes on the
    /// fetcher's thread.
    template <class Handler> void async_get_token(Handler&& handler) {
        state_->get(id_, std::function<void(token_result)>(
                             [h = std::make_shared<std::decay_t<Handler>>(std::forward<Handler>(
                                  handler))](token_result r) { (*h)(std::move(r)); }));
    }
    void invalidate(const secret& rejected) { state_->invalidate(id_, rejected); }
    void cancel() { state_->cancel(id_); }

private:
    friend class shared_token_source<Fetcher, Timing>;
    using state_type = detail::shared_token_state<Fetcher, Timing>;
    explicit shared_token(std::shared_ptr<state_type> s)
        : state_(std::move(s)), id_(state_->add_handle()) {}
    void release() noexcept {
        if (state_) {
            state_->remove_handle(id_);
            state_.reset();
        }
    }
    std::shared_ptr<state_type> state_;
    std::uint64_t id_ = 0;
};

/// One token shared by many clients and threads.
///
/// - single-flight: however many requests arrive while no usable token is
///   cached, the Fetcher is called once and every waiter gets its result;
/// - proactive refresh: inside the soft margin before expiry (at a time
///   spread by shared_token_options::refresh_jitter) a background fetch
///   starts while the current token is still handed out; past the hard
///   margin a token is never handed out;
/// - `invalidate(t)` drops the token only if `t` is still the current one,
///   so a thousand clients reporting the same stale token cause one fetch;
/// - failures are held for a short time so retrying clients cannot storm
///   the issuer (shared_token_options::failure_hold).
///
/// Each client gets its own handle() (the TokenPolicy). The Fetcher is any
/// TokenPolicy whose invalidate() and async_get_token() may be called from
/// different threads (oauth2_client_credentials, callback_token). Handles
/// keep the shared state alive; the source object itself may go first.
/// While a token with a lifetime is cached, its refresh timer is armed on the
/// Timing's executor: io_context::run() returns only after the source and
/// all its handles are gone.
template <class Fetcher, class Timing = steady_timing> class shared_token_source {
    static_assert(is_token_policy_v<Fetcher>,
                  "tether::shared_token_source: Fetcher must be a TokenPolicy "
                  "(async_get_token, invalidate, cancel)");

public:
    using handle_type = shared_token<Fetcher, Timing>;

    shared_token_source(Fetcher fetcher, Timing timing, shared_token_options options = {})
        : state_(std::make_shared<detail::shared_token_state<Fetcher, Timing>>(
              std::move(fetcher), std::move(timing), options)) {}

    handle_type handle() { return handle_type(state_); }

    shared_token_stats stats() const { return state_->stats(); }

    /// The fetcher, e.g. for its own counters. Not synchronised with fetches.
    Fetcher& fetcher() noexcept { return state_->fetcher(); }

private:
    std::shared_ptr<detail::shared_token_state<Fetcher, Timing>> state_;
};

TETHER_NAMESPACE_END

#endif
