// tether: exponential backoff with full jitter (the default Backoff).
#ifndef TETHER_BACKOFF_EXPONENTIAL_BACKOFF_HPP
#define TETHER_BACKOFF_EXPONENTIAL_BACKOFF_HPP

#include <tether/backoff/ladder.hpp>

#include <random>

TETHER_NAMESPACE_BEGIN

/// Step n of ladder c waits a uniformly random time in [0, min(max, initial *
/// multiplier^n)] — "full jitter" (AWS Architecture Blog, "Exponential Backoff
/// and Jitter"): it spreads a crowd of clients that failed together far better
/// than a fixed or ±20% jittered delay, at the cost of an occasional near-zero
/// wait, which only the first steps can draw.
///
/// Defaults (see backoff_ladders): network 1 s doubling to 60 s, like gRPC's
/// connection backoff (1 s initial, 120 s cap); auth and overload start at 5 s
/// and cap at 5 min, because hammering a server that refused our credential or
/// asked us to slow down is what turns an incident into an outage.
template <class Random = jitter_rng> class basic_exponential_backoff {
public:
    using random_type = Random;

    explicit basic_exponential_backoff(backoff_ladders ladders = {},
                                       Random rng = Random(std::random_device{}()))
        : ladders_((ladders.validate(), detail::shared_ladders(ladders))), rng_(std::move(rng)) {}

    std::chrono::milliseconds next_delay(failure_class c) {
        const auto cap = (*ladders_)[c].cap_at(steps_[c]);
        if (steps_[c] < 64) ++steps_[c];
        return std::chrono::milliseconds(detail::uniform_between(rng_, 0, cap.count()));
    }
    void reset() noexcept { steps_.reset(); }

    const backoff_ladders& ladders() const noexcept { return *ladders_; }
    Random& random() noexcept { return rng_; }

private:
    std::shared_ptr<const backoff_ladders> ladders_; // shared by equal ladders
    detail::ladder_steps steps_;
    Random rng_;
};

using exponential_backoff = basic_exponential_backoff<>;

TETHER_NAMESPACE_END

#endif
