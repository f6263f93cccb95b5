// tether: one rung-by-rung delay ladder, shared by the Backoff policies.
#ifndef TETHER_BACKOFF_LADDER_HPP
#define TETHER_BACKOFF_LADDER_HPP

#include <tether/close_event.hpp>

#include <array>
#include <chrono>
#include <stdexcept>
#include <string>

TETHER_NAMESPACE_BEGIN

/// Bounds of one ladder: the first step's cap, the largest delay and the growth per step.
struct backoff_ladder {
    std::chrono::milliseconds initial{1000};
    std::chrono::milliseconds max{60000};
    double multiplier = 2.0;

    void validate(const char* what) const {
        if (initial.count() < 0 || max.count() < 0)
            throw std::invalid_argument(std::string("tether: ") + what + ": delays must not be negative");
        if (initial > max)
            throw std::invalid_argument(std::string("tether: ") + what + ": initial exceeds max");
        if (!(multiplier >= 1.0))
            throw std::invalid_argument(std::string("tether: ") + what + ": multiplier must be >= 1");
    }

    /// min(max, initial * multiplier^step), computed without overflow.
    std::chrono::milliseconds cap_at(unsigned step) const noexcept {
        double cap = static_cast<double>(initial.count());
        const double limit = static_cast<double>(max.count());
        for (unsigned i = 0; i < step && cap < limit; ++i) cap *= multiplier;
        return cap >= limit ? max : std::chrono::milliseconds(static_cast<long long>(cap));
    }
};

/// One ladder per failure_class.
struct backoff_ladders {
    backoff_ladder network{std::chrono::milliseconds(1000), std::chrono::milliseconds(60000), 2.0};
    backoff_ladder auth{std::chrono::milliseconds(5000), std::chrono::milliseconds(300000), 2.0};
    backoff_ladder overload{std::chrono::milliseconds(5000), std::chrono::milliseconds(300000), 2.0};

    const backoff_ladder& operator[](failure_class c) const noexcept {
        switch (c) {
        case failure_class::auth: return auth;
        case failure_class::overload: return overload;
        case failure_class::network: break;
        }
        return network;
    }
    void validate() const {
        network.validate("backoff ladder 'network'");
        auth.validate("backoff ladder 'auth'");
        overload.validate("backoff ladder 'overload'");
    }
};

namespace detail {
/// Steps climbed per ladder.
struct ladder_steps {
    std::array<unsigned, failure_class_count> steps{};
    unsigned& operator[](failure_class c) noexcept { return steps[static_cast<std::size_t>(c)]; }
    void reset() noexcept { steps.fill(0); }
};

/// Uniform integer in [lo, hi]. Draws 64 bits from two 32-bit draws, so the
/// result is the same for a given seed on every standard library
/// (std::uniform_int_distribution is not); the modulo bias is below 2^-40
/// for any delay range tether uses.
template <class Rng>
long long uniform_between(Rng& rng, long long lo, long long hi) {
    static_assert(Rng::max() - Rng::min() >= 0xFFFFFFFFULL,
                  "tether: the backoff's random generator must produce at least 32 bits");
    if (hi <= lo) return lo;
    const auto draw32 = [&rng] {
        return static_cast<unsigned long long>(rng() - Rng::min()) & 0xFFFFFFFFULL;
    };
    const unsigned long long x = (draw32() << 32) | draw32();
    const unsigned long long span = static_cast<unsigned long long>(hi - lo) + 1ULL;
    return lo + static_cast<long long>(x % span);
}
} // namespace detail

TETHER_NAMESPACE_END

#endif
