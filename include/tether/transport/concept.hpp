// tether: the Transport concept.
//
// A Transport opens WebSocket connections and reports what happens to them to
// a sink (the client). It also owns the executor and the clock, so tests can
// run the whole client on virtual time. Valid expressions, for `t` a Transport,
// `tm` a `T::timer_type`, `s` a sink, `id` a connection_id:
//
// | expression                  | type / effect                                              |
// |-----------------------------|------------------------------------------------------------|
// | `T::executor_type`          | an Asio executor; every sink call runs on it               |
// | `T::clock_type`             | a chrono clock (`time_point`, `duration`)                  |
// | `T::timer_type`             | a timer on that clock and executor (`tm` below)            |
// | `tm.expires_after(d)`       | arms it `d` (a chrono duration) from now                   |
// | `tm.async_wait(h)`          | calls `h(std::error_code)` once, fired or cancelled        |
// | `tm.cancel()`               | pending waits complete with `operation_aborted`            |
// | `t.get_executor()`          | `executor_type`                                            |
// | `t.now()`                   | `clock_type::time_point`                                   |
// | `t.make_timer()`            | `timer_type` bound to the executor                         |
// | `t.connect(req, s)`         | `connection_id`; starts an attempt, never calls `s` inline |
// | `t.send(id, data, kind)`    | `std::error_code`; queues one message                      |
// | `t.close(id, code, reason)` | starts a graceful close; idempotent; unknown ids ignored   |
//
// Optional (used when present, detected): `t.buffered_amount(id)` ->
// `std::size_t`, the bytes of messages send() took for `id` that are not
// written to the socket yet.
//
// A class template using a Transport checks it with one static_assert per row
// (detail::transport_rows), so a missing expression is named in one line.
// With C++20 concepts, `tether::transport<T>` is the same table as a
// requires-expression.
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

#include <chrono>
#include <cstdint>
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
using close_expr =
    decltype(std::declval<T&>().close(std::declval<connection_id>(), std::declval<std::uint16_t>(),
                                      std::declval<std::string_view>()));
template <class T>
using buffered_amount_expr =
    decltype(std::declval<const T&>().buffered_amount(std::declval<connection_id>()));
template <class Timer>
using timer_expires_after_expr =
    decltype(std::declval<Timer&>().expires_after(std::chrono::milliseconds(1)));
template <class Timer>
using timer_async_wait_expr =
    decltype(std::declval<Timer&>().async_wait(std::declval<archetype_wait_handler>()));
template <class Timer> using timer_cancel_expr = decltype(std::declval<Timer&>().cancel());

template <class T> constexpr bool transport_timer_has(int row) {
    if constexpr (is_detected_v<transport_timer_t, T>) {
        using timer = typename T::timer_type;
        switch (row) {
        case 0: return is_detected_v<timer_expires_after_expr, timer>;
        case 1: return is_detected_v<timer_async_wait_expr, timer>;
        default: return is_detected_v<timer_cancel_expr, timer>;
        }
    } else {
        return false;
    }
}

template <class T> constexpr bool transport_now_ok() {
    if constexpr (is_detected_v<transport_clock_t, T>)
        return detected_convertible<typename T::clock_type::time_point, now_expr, T>();
    else
        return false;
}

template <class T> constexpr bool transport_get_executor_ok() {
    if constexpr (is_detected_v<transport_executor_t, T>)
        return detected_convertible<typename T::executor_type, get_executor_expr, T>();
    else
        return false;
}

template <class T> constexpr bool transport_make_timer_ok() {
    if constexpr (is_detected_v<transport_timer_t, T>)
        return detected_convertible<typename T::timer_type, make_timer_expr, T>();
    else
        return false;
}

/// One static_assert per row of the table above; instantiate it to check T.
template <class T> struct transport_rows {
    static_assert(
        is_detected_v<transport_executor_t, T>,
        "tether: Transport requirement not met: T::executor_type must name an Asio executor type");
    static_assert(is_detected_v<transport_clock_t, T>,
                  "tether: Transport requirement not met: T::clock_type must name a chrono clock");
    static_assert(is_detected_v<transport_timer_t, T>,
                  "tether: Transport requirement not met: T::timer_type must name a timer type");
    static_assert(!is_detected_v<transport_timer_t, T> || transport_timer_has<T>(0),
                  "tether: Transport requirement not met: tm.expires_after(d) must be valid for a "
                  "T::timer_type tm and a chrono duration d");
    static_assert(!is_detected_v<transport_timer_t, T> || transport_timer_has<T>(1),
                  "tether: Transport requirement not met: tm.async_wait(h) must be valid for a "
                  "T::timer_type tm and a handler h(std::error_code)");
    static_assert(
        !is_detected_v<transport_timer_t, T> || transport_timer_has<T>(2),
        "tether: Transport requirement not met: tm.cancel() must be valid for a T::timer_type tm");
    static_assert(
        !is_detected_v<transport_executor_t, T> || transport_get_executor_ok<T>(),
        "tether: Transport requirement not met: t.get_executor() must return executor_type");
    static_assert(
        !is_detected_v<transport_clock_t, T> || transport_now_ok<T>(),
        "tether: Transport requirement not met: t.now() must return clock_type::time_point");
    static_assert(!is_detected_v<transport_timer_t, T> || transport_make_timer_ok<T>(),
                  "tether: Transport requirement not met: t.make_timer() must return timer_type");
    static_assert(
        detected_convertible<connection_id, connect_expr, T>(),
        "tether: Transport requirement not met: t.connect(req, sink) must return connection_id");
    static_assert(detected_convertible<std::error_code, send_expr, T>(),
                  "tether: Transport requirement not met: t.send(id, data, kind) must return "
                  "std::error_code");
    static_assert(is_detected_v<close_expr, T>,
                  "tether: Transport requirement not met: t.close(id, code, reason) must be valid");
    static constexpr bool checked = true;
};

} // namespace detail

/// True when T meets the Transport requirements (see the table above).
template <class T>
struct is_transport
    : std::bool_constant<detail::is_detected_v<detail::transport_executor_t, T> &&
                         detail::is_detected_v<detail::transport_clock_t, T> &&
                         detail::is_detected_v<detail::transport_timer_t, T> &&
                         detail::transport_timer_has<T>(0) && detail::transport_timer_has<T>(1) &&
                         detail::transport_timer_has<T>(2) &&
                         detail::transport_get_executor_ok<T>() && detail::transport_now_ok<T>() &&
                         detail::transport_make_timer_ok<T>() &&
                         detail::detected_convertible<connection_id, detail::connect_expr, T>() &&
                         detail::detected_convertible<std::error_code, detail::send_expr, T>() &&
                         detail::is_detected_v<detail::close_expr, T>> {};

template <class T> inline constexpr bool is_transport_v = is_transport<T>::value;

#if defined(__cpp_concepts) && __cpp_concepts >= 201907L
/// The table as a requires-expression (C++20).
template <class T>
concept transport = requires(T& t, const connect_request& req, detail::archetype_transport_sink& s,
                             connection_id id, std::string_view data, message_kind kind,
                             std::uint16_t code) {
    typename T::executor_type;
    typename T::clock_type;
    typename T::timer_type;
    requires requires(typename T::timer_type & tm) {
        tm.expires_after(std::chrono::milliseconds(1));
        tm.async_wait(detail::archetype_wait_handler{});
        tm.cancel();
    };
    { t.get_executor() } -> detail::converts_to<typename T::executor_type>;
    { t.now() } -> detail::converts_to<typename T::clock_type::time_point>;
    { t.make_timer() } -> detail::converts_to<typename T::timer_type>;
    { t.connect(req, s) } -> detail::converts_to<connection_id>;
    { t.send(id, data, kind) } -> detail::converts_to<std::error_code>;
    t.close(id, code, data);
};
#endif

TETHER_NAMESPACE_END

#endif
