// tether: the same delay every time.
#ifndef TETHER_BACKOFF_CONSTANT_BACKOFF_HPP
#define TETHER_BACKOFF_CONSTANT_BACKOFF_HPP

#include <tether/close_event.hpp>
#include <tether/error.hpp>

#include <chrono>
#include <stdexcept>

TETHER_NAMESPACE_BEGIN

/// Waits `delay` before every retry, whatever the failure. Useful in tests and
/// for servers that do their own pacing; prefer exponential_backoff elsewhere.
class constant_backoff {
public:
    explicit constant_backoff(std::chrono::milliseconds delay = std::chrono::milliseconds(1000))
        : delay_(delay) {
        if (delay.count() < 0)
            throw detail::invalid_option("tether: constant_backoff: delay must not be negative");
    }
    std::chrono::milliseconds next_delay(failure_class) const noexcept { return delay_; }
    void reset() noexcept {}

private:
    std::chrono::milliseconds delay_;
};

TETHER_NAMESPACE_END

#endif
