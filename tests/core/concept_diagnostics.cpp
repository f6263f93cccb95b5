// Compile-fail cases for the concept diagnostics, driven by
// check_concept_diagnostics.py. Without a BROKEN_* macro the four sample
// policies meet every row of their concept tables and this compiles; with
// BROKEN_<ROW> one of them misses (or gets wrong) exactly that row's
// expression, and the client must fail at its class scope naming the row.
#include <tether/basic_reconnecting_client.hpp>

#include <asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace sample {

struct timer {
#ifndef BROKEN_TIMER_EXPIRES_AFTER
    void expires_after(std::chrono::steady_clock::duration) {}
#endif
#ifndef BROKEN_TIMER_ASYNC_WAIT
    template <class Handler> void async_wait(Handler&&) {}
#endif
#ifndef BROKEN_TIMER_CANCEL
    void cancel() {}
#endif
};

struct transport {
#ifndef BROKEN_EXECUTOR_TYPE
    using executor_type = asio::io_context::executor_type;
#endif
#ifndef BROKEN_CLOCK_TYPE
    using clock_type = std::chrono::steady_clock;
#endif
#ifndef BROKEN_TIMER_TYPE
    using timer_type = timer;
#endif
    asio::io_context* io;

#ifdef BROKEN_GET_EXECUTOR
    int get_executor() { return 0; }
#else
    asio::io_context::executor_type get_executor() { return io->get_executor(); }
#endif
#ifdef BROKEN_NOW
    int now() const { return 0; }
#else
    std::chrono::steady_clock::time_point now() const { return std::chrono::steady_clock::now(); }
#endif
#ifdef BROKEN_MAKE_TIMER
    void make_timer() {}
#else
    timer make_timer() { return {}; }
#endif
#ifdef BROKEN_CONNECT
    template <class Sink> std::string connect(const tether::connect_request&, Sink&) { return {}; }
#else
    template <class Sink> tether::connection_id connect(const tether::connect_request&, Sink&) {
        return 1;
    }
#endif
#ifdef BROKEN_SEND
    void send(tether::connection_id, std::string_view, tether::message_kind) {}
#else
    std::error_code send(tether::connection_id, std::string_view, tether::message_kind) {
        return {};
    }
#endif
#ifndef BROKEN_CLOSE
    void close(tether::connection_id, std::uint16_t, std::string_view) {}
#endif
};

struct token_policy {
#ifndef BROKEN_ASYNC_GET_TOKEN
    template <class Handler> void async_get_token(Handler&& h) {
        h(tether::token_result::success(tether::token{}));
    }
#endif
#ifndef BROKEN_INVALIDATE
    void invalidate(const tether::secret&) {}
#endif
#ifndef BROKEN_CANCEL
    void cancel() {}
#endif
};

struct close_policy {
#ifdef BROKEN_DECIDE
    int decide(const tether::close_event&) { return 0; }
#else
    tether::reconnect_decision decide(const tether::close_event&) {
        return tether::reconnect_decision::reconnect(tether::failure_class::network);
    }
#endif
};

struct backoff {
#ifdef BROKEN_NEXT_DELAY
    int next_delay(tether::failure_class) { return 1; }
#else
    std::chrono::milliseconds next_delay(tether::failure_class) {
        return std::chrono::milliseconds(1);
    }
#endif
#ifndef BROKEN_RESET
    void reset() {}
#endif
};

} // namespace sample

#if defined(__cpp_concepts) && __cpp_concepts >= 201907L
// The requires-expressions and the C++17 traits say the same, broken or not.
static_assert(tether::transport<sample::transport> == tether::is_transport_v<sample::transport>);
static_assert(tether::token_policy<sample::token_policy> ==
              tether::is_token_policy_v<sample::token_policy>);
static_assert(tether::close_policy<sample::close_policy> ==
              tether::is_close_policy_v<sample::close_policy>);
static_assert(tether::backoff<sample::backoff> == tether::is_backoff_v<sample::backoff>);
#endif

#ifdef EXPECT_ALL_MET
static_assert(tether::is_transport_v<sample::transport> &&
              tether::is_token_policy_v<sample::token_policy> &&
              tether::is_close_policy_v<sample::close_policy> &&
              tether::is_backoff_v<sample::backoff>);
#endif

// Instantiates the class: its static_asserts run here.
using client = tether::basic_reconnecting_client<sample::transport, sample::token_policy,
                                                 sample::close_policy, sample::backoff>;
static_assert(sizeof(client) > 0);
