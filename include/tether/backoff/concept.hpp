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
} // namespace detail

template <class T>
struct is_backoff
    : std::bool_constant<
          detail::detected_convertible<std::chrono::milliseconds, detail::next_delay_expr, T>() &&
          detail::is_detected_v<detail::reset_expr, T>> {};

template <class T> inline constexpr bool is_backoff_v = is_backoff<T>::value;

#if defined(__cpp_concepts) && __cpp_concepts >= 201907L
template <class T>
concept backoff = is_backoff_v<T>;
#endif

TETHER_NAMESPACE_END

#endif
