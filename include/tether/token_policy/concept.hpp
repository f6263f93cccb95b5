// tether: the TokenPolicy concept.
//
// A TokenPolicy produces the credential for the next handshake. Valid
// expressions, for `p` a TokenPolicy, `h` a handler `void(token_result)`:
//
// | expression                | effect                                                        |
// |---------------------------|---------------------------------------------------------------|
// | `p.async_get_token(h)`    | calls `h` exactly once, from any thread, possibly inline; never with a token passed to `invalidate` |
// | `p.invalidate(s)`         | `s` (a `const secret&`) was rejected by the server: never offer it again |
// | `p.cancel()`              | abandon the outstanding request; `h` may still run or be destroyed unrun |
//
// The client serialises its calls: at most one async_get_token outstanding
// per client. Policies shared between clients (shared_token_source) do their
// own single-flight.
#ifndef TETHER_TOKEN_POLICY_CONCEPT_HPP
#define TETHER_TOKEN_POLICY_CONCEPT_HPP

#include <tether/detail/type_traits.hpp>
#include <tether/token.hpp>

#include <utility>

TETHER_NAMESPACE_BEGIN
namespace detail {

struct archetype_token_handler {
    void operator()(token_result) const {}
};
template <class T>
using async_get_token_expr =
    decltype(std::declval<T&>().async_get_token(std::declval<archetype_token_handler>()));
template <class T>
using invalidate_expr = decltype(std::declval<T&>().invalidate(std::declval<const secret&>()));
template <class T> using cancel_expr = decltype(std::declval<T&>().cancel());

} // namespace detail

template <class T>
struct is_token_policy
    : std::bool_constant<detail::is_detected_v<detail::async_get_token_expr, T> &&
                         detail::is_detected_v<detail::invalidate_expr, T> &&
                         detail::is_detected_v<detail::cancel_expr, T>> {};

template <class T> inline constexpr bool is_token_policy_v = is_token_policy<T>::value;

#if defined(__cpp_concepts) && __cpp_concepts >= 201907L
template <class T>
concept token_policy = is_token_policy_v<T>;
#endif

TETHER_NAMESPACE_END

#endif
