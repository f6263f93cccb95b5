// tether: one rung-by-rung delay ladder, shared by the Backoff policies.
#ifndef TETHER_BACKOFF_LADDER_HPP
#define TETHER_BACKOFF_LADDER_HPP

#include <tether/close_event.hpp>
#include <tether/detail/shared_copy.hpp>
#include <tether/error.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

TETHER_NAMESPACE_BEGIN

/// The backoffs' default random generator: SplitMix64 (Steele, Lea and
/// Flood, "Fast splittable pseudorandom number generators", 2014). Eight bytes
/// of state where std::mt19937_64 keeps 2.5 kB, which was over half of an idle
/// client's own memory; jitter needs spread, not more. Any
/// UniformRandomBitGenerator of at least 32 bits may be given instead
/// (`basic_exponential_backoff<std::mt19937_64>`).
class jitter_rng {
public:
    using result_type = std::uint64_t;

    explicit jitter_rng(result_type seed = 0) noexcept : state_(seed) {}

    static constexpr result_type min() noexcept { return 0; }
    static constexpr result_type max() noexcept { return ~result_type(0); }
    result_type operator()() noexcept {
        result_type z = (state_ += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }

private:
    result_type state_;
};

/// Bounds of one ladder: the first step's cap, the largest delay and the growth per step.
struct backoff_ladder {
    std::chrono::milliseconds initial{1000};
    std::chrono::milliseconds max{60000};
    double multiplier = 2.0;

    void validate(const char* what) const {
        if (initial.count() < 0 || max.count() < 0)
            throw detail::invalid_option(std::string("tether: ") + what +
                                         ": delays must not be negative");
        if (initial > max)
            throw detail::invalid_option(std::string("tether: ") + what + ": initial exceeds max");
        if (!(multiplier >= 1.0))
            throw detail::invalid_option(std::string("tether: ") + what +
                                         ": multiplier must be >= 1");
    }

    /// min(max, initial * multiplier^step), computed without overflow.
    std::chrono::milliseconds cap_at(unsigned step) const noexcept {
        double cap = static_cast<double>(initial.count());
        const double limit = static_cast<double>(max.count());
        for (unsigned i = 0; i < step && cap < limit; ++i)
            cap *= multiplier;
        return cap >= limit ? max : std::chrono::milliseconds(static_cast<long long>(cap));
    }
};

/// One ladder per failure_class.
struct backoff_ladders {
    backoff_ladder network{std::chrono::milliseconds(1000), std::chrono::milliseconds(60000), 2.0};
    backoff_ladder auth{std::chrono::milliseconds(5000), std::chrono::milliseconds(300000), 2.0};
    backoff_ladder overload{std::chrono::milliseconds(5000), std::chrono::milliseconds(300000),
                            2.0};

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
/// The one live copy of ladders equal to `l`: every client has a backoff, and
/// 72 bytes of identical ladders in each of ten thousand clients is 720 kB.
inline std::shared_ptr<const backoff_ladders> shared_ladders(const backoff_ladders& l) {
    const auto same = [](const backoff_ladders& a, const backoff_ladders& b) {
        const auto eq = [](const backoff_ladder& x, const backoff_ladder& y) {
            return x.initial == y.initial && x.max == y.max && x.multiplier == y.multiplier;
        };
        return eq(a.network, b.network) && eq(a.auth, b.auth) && eq(a.overload, b.overload);
    };
    return shared_copy(l, same);
}

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
template <class Rng> long long uniform_between(Rng& rng, long long lo, long long hi) {
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
