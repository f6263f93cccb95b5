// tether: the Transport concept.
//
// A Transport opens WebSocket connections and reports what happens to them to
// a sink (the client). It also owns the executor and the clock, so tests can
// run the whole client on virtual time. Valid expressions, for `t` a Transport,
// `s` a sink, `id` a connection_id:
//
// | expression                        | type / effect                                        |
// |-----------------------------------|------------------------------------------------------|
// | `T::executor_type`                | an Asio executor; every sink call runs on it          |
// | `T::clock_type`                   | a chrono clock (`time_point`, `duration`)             |
// | `T::timer_type`                   | `expires_after(d)`, `async_wait(void(error_code))`, `cancel()` |
// | `t.get_executor()`                | `executor_type`                                      |
// | `t.now()`                         | `clock_type::time_point`                             |
// | `t.make_timer()`                  | `timer_type` bound to the executor                   |
// | `t.connect(req, s)`               | `connection_id`; starts an attempt, never calls `s` inline |
// | `t.send(id, data, kind)`          | `std::error_code`; queues one message                 |
// | `t.close(id, code, reason)`       | starts a graceful close; idempotent; unknown ids ignored |
//
// Sink calls (all on the executor, never from inside connect/send/close):
// `s.on_transport_open(id, const open_info&)` at most once, then any number of
// `s.on_transport_message(id, const message_view&)`, then exactly one
// `s.on_transport_close(id, close_event&&)` for every connect() — also for a
// refused handshake or a failure before open, and after close() (a transport
// enforces its own close timeout). After the transport is destroyed it calls
// no sink.
#ifndef TETHER_TRANSPORT_CONCEPT_HPP
#define TETHER_TRANSPORT_CONCEPT_HPP

#include <tether/close_event.hpp>
#include <tether/connect_request.hpp>
#include <tether/detail/type_traits.hpp>
#include <tether/message.hpp>

#include <string_view>
#include <system_error>
#include <utility>

TETHER_NAMESPACE_BEGIN
namespace detail {

/// The smallest sink a transport must accept; used only by the checks.
struct archetype_transport_sink {
    void on_transport_open(connection_id, const open_info&) {}
    void on_transport_message(connection_id, const message_view&) {}
    void on_transport_close(connection_id, close_event&&) {}
};
struct archetype_wait_handler {
    void operator()(std::error_code) const {}
};

template <class T> using transport_executor_t = typename T::executor_type;
template <class T> using transport_clock_t = typename T::clock_type;
template <class T> using transport_timer_t = typename T::timer_type;
template <class T> using get_executor_expr = decltype(std::declval<T&>().get_executor());
template <class T> using now_expr = decltype(std::declval<T&>().now());
template <class T> using make_timer_expr = decltype(std::declval<T&>().make_timer());
template <class T>
using connect_expr = decltype(std::declval<T&>().connect(
    std::declval<const connect_request&>(), std::declval<archetype_transport_sink&>()));
template <class T>
using send_expr = decltype(std::declval<T&>().send(
    std::declval<connection_id>(), std::declval<std::string_view>(), std::declval<message_kind>()));
template <class T>
using close_expr = decltype(std::declval<T&>().close(
    std::declval<connection_id>(), std::declval<std::uint16_t>(), std::declval<std::string_view>()));
template <class Timer>
using timer_expires_after_expr =
    decltype(std::declval<Timer&>().expires_after(std::chrono::milliseconds(1)));
template <class Timer>
using timer_async_wait_expr =
    decltype(std::declval<Timer&>().async_wait(std::declval<archetype_wait_handler>()));
template <class Timer> using timer_cancel_expr = decltype(std::declval<Timer&>().cancel());

template <class T>
constexpr bool transport_timer_ok() {
    if constexpr (is_detected_v<transport_timer_t, T>) {
        using timer = typename T::timer_type;
        return is_detected_v<timer_expires_after_expr, timer> &&
               is_detected_v<timer_async_wait_expr, timer> && is_detected_v<timer_cancel_expr, timer>;
    } else {
        return false;
    }
}

template <class T>
constexpr bool transport_now_ok() {
    if constexpr (is_detected_v<transport_clock_t, T>)
        return detected_convertible<typename T::clock_type::time_point, now_expr, T>();
    else
        return false;
}

} // namespace detail

/// True when T meets the Transport requirements (see the table above).
template <class T>
struct is_transport
    : std::bool_constant<detail::is_detected_v<detail::transport_executor_t, T> &&
                         detail::transport_now_ok<T>() && detail::transport_timer_ok<T>() &&
                         detail::is_detected_v<detail::get_executor_expr, T> &&
                         detail::is_detected_v<detail::make_timer_expr, T> &&
                         detail::detected_convertible<connection_id, detail::connect_expr, T>() &&
                         detail::detected_convertible<std::error_code, detail::send_expr, T>() &&
                         detail::is_detected_v<detail::close_expr, T>> {};

template <class T> inline constexpr bool is_transport_v = is_transport<T>::value;

#if defined(__cpp_concepts) && __cpp_concepts >= 201907L
template <class T>
concept transport = is_transport_v<T>;
#endif

TETHER_NAMESPACE_END

#endif
