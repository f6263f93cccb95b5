// tether: the ClosePolicy concept.
//
// A ClosePolicy maps the end of a connection attempt to an action.
//
// | expression       | type                                                      |
// |------------------|-----------------------------------------------------------|
// | `p.decide(ev)`   | `reconnect_decision`, for `ev` a `const close_event&`       |
//
// It sees every close_event: a close frame (`code`), a refused handshake
// (`http_status`, `retry_after`), or a transport failure (`error`). Closes the
// client starts itself (stop(), handover(), reconnect()) are not shown to it.
// The server's close of a connection a handover replaced is, with
// `close_event::replaced` set: only a `refresh_token_then_reconnect` verdict
// acts on it (the token it carried is spent), so a stateful policy should not
// count it. Build the result with reconnect_decision::reconnect(cls),
// refresh_token() or stop(reason) (close_event.hpp).
//
// A class template using a ClosePolicy checks it with one static_assert per
// row (detail::close_policy_rows); with C++20 concepts, `tether::close_policy<T>`
// is the same table as a requires-expression.
#ifndef TETHER_CLOSE_POLICY_CONCEPT_HPP
#define TETHER_CLOSE_POLICY_CONCEPT_HPP

#include <tether/close_event.hpp>
#include <tether/detail/type_traits.hpp>

#include <utility>

TETHER_NAMESPACE_BEGIN
namespace detail {
template <class T>
using decide_expr = decltype(std::declval<T&>().decide(std::declval<const close_event&>()));

/// One static_assert per row of the table above; instantiate it to check T.
template <class T> struct close_policy_rows {
    static_assert(
        detected_convertible<reconnect_decision, decide_expr, T>(),
        "tether: ClosePolicy requirement not met: p.decide(ev) must return reconnect_decision "
        "for a const close_event& ev");
    static constexpr bool checked = true;
};
} // namespace detail

template <class T>
struct is_close_policy
    : std::bool_constant<
          detail::detected_convertible<reconnect_decision, detail::decide_expr, T>()> {};

template <class T> inline constexpr bool is_close_policy_v = is_close_policy<T>::value;

#if defined(__cpp_concepts) && __cpp_concepts >= 201907L
/// The table as a requires-expression (C++20).
template <class T>
concept close_policy = requires(T& p, const close_event& ev) {
    { p.decide(ev) } -> detail::converts_to<reconnect_decision>;
};
#endif

TETHER_NAMESPACE_END

#endif
