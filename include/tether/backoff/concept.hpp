// tether: the Backoff concept.
//
// A Backoff decides how long to wait before the next attempt, with one ladder
// per failure_class.
//
// | expression            | type / effect                                                  |
// |-----------------------|----------------------------------------------------------------|
// | `b.next_delay(c)`     | `std::chrono::milliseconds`; climbs ladder `c` one step        |
// | `b.reset()`           | back to the bottom of every ladder (after a stable connection) |
//
// The client calls reset() only when a connection stayed open for
// `client_options::min_uptime`, so a server that accepts and drops at once
// cannot keep the delay at its minimum (anti-flap).
//
// A class template using a Backoff checks it with one static_assert per row
// (detail::backoff_rows); with C++20 concepts, `tether::backoff<T>` is the
// same table as a requires-expression.
#ifndef TETHER_BACKOFF_CONCEPT_HPP
#define TETHER_BACKOFF_CONCEPT_HPP

#include <tether/close_event.hpp>
#include <tether/detail/type_traits.hpp>

#include <chrono>
#include <utility>

TETHER_NAMESPACE_BEGIN
namespace detail {
template <class T>
using next_delay_expr = decltype(std::declval<T&>().next_delay(std::declval<failure_class>()));
template <class T> using reset_expr = decltype(std::declval<T&>().reset());

/// One static_assert per row of the table above; instantiate it to check T.
template <class T> struct backoff_rows {
    static_assert(detected_convertible<std::chrono::milliseconds, next_delay_expr, T>(),
                  "tether: Backoff requirement not met: b.next_delay(c) must return "
                  "std::chrono::milliseconds "
                  "for a failure_class c");
    static_assert(is_detected_v<reset_expr, T>,
                  "tether: Backoff requirement not met: b.reset() must be valid");
    static constexpr bool checked = true;
};
} // namespace detail

template <class T>
struct is_backoff
    : std::bool_constant<
          detail::detected_convertible<std::chrono::milliseconds, detail::next_delay_expr, T>() &&
          detail::is_detected_v<detail::reset_expr, T>> {};

template <class T> inline constexpr bool is_backoff_v = is_backoff<T>::value;

#if defined(__cpp_concepts) && __cpp_concepts >= 201907L
/// The table as a requires-expression (C++20).
template <class T>
concept backoff = requires(T& b, failure_class c) {
    { b.next_delay(c) } -> detail::converts_to<std::chrono::milliseconds>;
    b.reset();
};
#endif

TETHER_NAMESPACE_END

#endif
