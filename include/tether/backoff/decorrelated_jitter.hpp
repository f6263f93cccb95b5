// tether: "decorrelated jitter" backoff.
#ifndef TETHER_BACKOFF_DECORRELATED_JITTER_HPP
#define TETHER_BACKOFF_DECORRELATED_JITTER_HPP

#include <tether/backoff/ladder.hpp>

#include <algorithm>
#include <array>
#include <random>

TETHER_NAMESPACE_BEGIN

/// sleep = min(max, uniform(initial, previous_sleep * 3)) per ladder (AWS's
/// "decorrelated jitter"): never below `initial`, grows about as fast as
/// exponential backoff, and consecutive delays are not correlated. The
/// ladder's multiplier is not used.
template <class Random = jitter_rng> class basic_decorrelated_jitter {
public:
    explicit basic_decorrelated_jitter(backoff_ladders ladders = {},
                                       Random rng = Random(std::random_device{}()))
        : ladders_((ladders.validate(), detail::shared_ladders(ladders))), rng_(std::move(rng)) {}

    std::chrono::milliseconds next_delay(failure_class c) {
        const auto& l = (*ladders_)[c];
        auto& prev = previous_[static_cast<std::size_t>(c)];
        const long long lo = l.initial.count();
        const long long hi = std::max<long long>(lo, static_cast<long long>(prev.count()) * 3);
        prev = std::min(l.max, std::chrono::milliseconds(detail::uniform_between(rng_, lo, hi)));
        return prev;
    }
    void reset() noexcept { previous_.fill(std::chrono::milliseconds(0)); }

    const backoff_ladders& ladders() const noexcept { return *ladders_; }

private:
    std::shared_ptr<const backoff_ladders> ladders_; // shared by equal ladders
    std::array<std::chrono::milliseconds, failure_class_count> previous_{};
    Random rng_;
};

using decorrelated_jitter = basic_decorrelated_jitter<>;

TETHER_NAMESPACE_END

#endif
