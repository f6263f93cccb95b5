// tether::testing: a virtual clock driving an io_context, for tests without sleeps.
#ifndef TETHER_TESTING_SIMULATION_HPP
#define TETHER_TESTING_SIMULATION_HPP

#include <tether/version.hpp>

#include <tether/detail/net.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

TETHER_NAMESPACE_BEGIN
namespace testing {

/// Time as the simulation says it is. Not a full Clock: `now()` is on the simulation.
struct virtual_clock {
    using duration = std::chrono::nanoseconds;
    using rep = duration::rep;
    using period = duration::period;
    using time_point = std::chrono::time_point<virtual_clock, duration>;
    static constexpr bool is_steady = true;
};

/// Owns an io_context and a virtual clock. Handlers run on the calling thread
/// inside run_for()/run_until()/run(); time jumps straight to the next timer,
/// so an hour of backoff takes microseconds and every run is repeatable.
class simulation {
public:
    using clock_type = virtual_clock;
    using time_point = virtual_clock::time_point;
    using duration = virtual_clock::duration;
    using executor_type = net::io_context::executor_type;

    class timer;

    simulation() = default;
    ~simulation() {
        // Handlers and waits still queued own timers whose destructors call
        // back into us; from here on those calls do nothing.
        closing_ = true;
        queue_.clear();
        by_owner_.clear();
    }
    simulation(const simulation&) = delete;
    simulation& operator=(const simulation&) = delete;

    net::io_context& context() noexcept { return ctx_; }
    executor_type get_executor() noexcept { return ctx_.get_executor(); }
    time_point now() const noexcept { return now_; }
    duration elapsed() const noexcept { return now_.time_since_epoch(); }

    inline timer make_timer();

    /// Calls `f` at now() + d (on the simulation's thread).
    void schedule(duration d, std::function<void()> f) {
        arm(
            now_ + (d.count() < 0 ? duration(0) : d),
            [f = std::move(f)](std::error_code ec) {
                if (!ec) f();
            },
            nullptr);
    }

    /// Runs ready handlers without moving time. Returns handlers run.
    std::size_t poll() { return drain(); }

    /// Runs everything due up to now() + d, then sets the clock to now() + d.
    std::size_t run_for(duration d) { return run_until(now_ + d); }

    std::size_t run_until(time_point limit) {
        std::size_t n = step_until(limit);
        if (now_ < limit) now_ = limit;
        return n;
    }

    /// Runs until no handler is ready and no timer is armed (or `limit` virtual time passed).
    std::size_t run(duration limit = std::chrono::hours(24 * 365)) {
        return step_until(now_ + limit);
    }

    /// Runs until pred() holds (checked after every batch) or `limit` passes. Returns pred().
    template <class Pred> bool run_until(Pred pred, duration limit) {
        const time_point end = now_ + limit;
        for (;;) {
            drain();
            if (pred()) return true;
            if (!fire_next(end)) {
                drain();
                return pred();
            }
        }
    }

    std::size_t armed_timers() const noexcept { return queue_.size(); }

    /// Guards against a test that never goes quiet: handlers run per call.
    void set_handler_limit(std::size_t n) noexcept { handler_limit_ = n; }

private:
    struct entry {
        std::function<void(std::error_code)> handler;
        const void* owner; // the timer that armed it, for cancel()
    };
    using key = std::pair<time_point, std::uint64_t>;

    std::uint64_t arm(time_point at, std::function<void(std::error_code)> h, const void* owner) {
        const auto seq = ++seq_;
        if (closing_) return seq;
        queue_.emplace(key{at, seq}, entry{std::move(h), owner});
        if (owner) by_owner_.emplace(owner, key{at, seq});
        return seq;
    }

    // Cancels the owner's waits, earliest first. Found through by_owner_, so
    // a cancel costs the same with ten thousand clients' timers armed as with one.
    std::size_t cancel_owner(const void* owner) {
        if (closing_) return 0;
        const auto range = by_owner_.equal_range(owner);
        if (range.first == range.second) return 0;
        std::vector<key> keys;
        for (auto it = range.first; it != range.second; ++it)
            keys.push_back(it->second);
        by_owner_.erase(range.first, range.second);
        std::sort(keys.begin(), keys.end());
        for (const key& k : keys) {
            auto it = queue_.find(k);
            net::post(ctx_, [h = std::move(it->second.handler)] {
                h(detail::net_error(net::error::operation_aborted));
            });
            queue_.erase(it);
        }
        return keys.size();
    }

    void forget_owner(const void* owner, const key& k) {
        const auto range = by_owner_.equal_range(owner);
        for (auto it = range.first; it != range.second; ++it)
            if (it->second == k) {
                by_owner_.erase(it);
                return;
            }
    }

    std::size_t drain() {
        std::size_t n = 0;
        for (;;) {
            ctx_.restart();
            const std::size_t k = ctx_.poll();
            n += k;
            ran_ += k;
            if (ran_ > handler_limit_)
                throw std::runtime_error("tether::testing::simulation: handler limit exceeded "
                                         "(a loop that never goes quiet?)");
            if (k == 0) return n;
        }
    }

    // Moves time to the earliest timer at or before `limit` and fires every
    // timer due then. False when none is due by `limit`.
    bool fire_next(time_point limit) {
        if (queue_.empty() || queue_.begin()->first.first > limit) return false;
        const time_point at = queue_.begin()->first.first;
        if (at > now_) now_ = at;
        while (!queue_.empty() && queue_.begin()->first.first <= now_) {
            auto h = std::move(queue_.begin()->second.handler);
            if (queue_.begin()->second.owner)
                forget_owner(queue_.begin()->second.owner, queue_.begin()->first);
            queue_.erase(queue_.begin());
            net::post(ctx_, [h = std::move(h)] { h(std::error_code()); });
        }
        return true;
    }

    std::size_t step_until(time_point limit) {
        std::size_t n = drain();
        while (fire_next(limit))
            n += drain();
        return n;
    }

    bool closing_ = false;
    net::io_context ctx_{1};
    time_point now_{};
    std::uint64_t seq_ = 0;
    std::map<key, entry> queue_;                         // keys are unique: seq counts up
    std::unordered_multimap<const void*, key> by_owner_; // armed waits of each timer
    std::size_t ran_ = 0;
    std::size_t handler_limit_ = 50'000'000;
};

/// A timer on the simulation's virtual clock, with asio::steady_timer's
/// interface subset the Transport concept needs.
class simulation::timer {
public:
    explicit timer(simulation& sim) : sim_(&sim) {}
    timer(timer&& o) noexcept : sim_(o.sim_), deadline_(o.deadline_) {
        // pending waits belong to the moved-from object's address; cancel them
        o.cancel();
    }
    timer& operator=(timer&&) = delete;
    timer(const timer&) = delete;
    timer& operator=(const timer&) = delete;
    ~timer() { cancel(); }

    /// Like asio: cancels pending waits (they complete with operation_aborted).
    std::size_t expires_after(duration d) {
        const std::size_t n = cancel();
        deadline_ = sim_->now() + (d.count() < 0 ? duration(0) : d);
        return n;
    }
    template <class Rep, class Period>
    std::size_t expires_after(std::chrono::duration<Rep, Period> d) {
        return expires_after(std::chrono::duration_cast<duration>(d));
    }
    std::size_t expires_at(time_point t) {
        const std::size_t n = cancel();
        deadline_ = t;
        return n;
    }
    time_point expiry() const noexcept { return deadline_; }

    template <class Handler> void async_wait(Handler&& h) {
        auto p = std::make_shared<std::decay_t<Handler>>(std::forward<Handler>(h));
        sim_->arm(
            deadline_, [p](std::error_code ec) { (*p)(ec); }, this);
    }

    std::size_t cancel() { return sim_ ? sim_->cancel_owner(this) : 0; }

private:
    simulation* sim_;
    time_point deadline_{};
};

inline simulation::timer simulation::make_timer() { return timer(*this); }

} // namespace testing
TETHER_NAMESPACE_END

#endif
