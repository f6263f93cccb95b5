// tether: the TokenPolicy concept.
//
// A TokenPolicy produces the credential for the next handshake. Valid
// expressions, for `p` a TokenPolicy, `h` a handler `void(token_result)`:
//
// | expression             | effect                                                         |
// |------------------------|----------------------------------------------------------------|
// | `p.async_get_token(h)` | calls `h` exactly once, from any thread, possibly inline       |
// | `p.invalidate(s)`      | `s` (a `const secret&`) was rejected: never offer it again     |
// | `p.cancel()`           | abandon the request; `h` may still run or be destroyed unrun   |
//
// `h` never gets a token that was passed to `invalidate`.
//
// The client serialises its calls: at most one async_get_token outstanding
// per client. Policies shared between clients (shared_token_source) do their
// own single-flight.
//
// A class template using a TokenPolicy checks it with one static_assert per
// row (detail::token_policy_rows); with C++20 concepts, `tether::token_policy<T>`
// is the same table as a requires-expression.
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

/// One static_assert per row of the table above; instantiate it to check T.
template <class T> struct token_policy_rows {
    static_assert(
        is_detected_v<async_get_token_expr, T>,
        "tether: TokenPolicy requirement not met: p.async_get_token(h) must be valid for a "
        "handler h(token_result)");
    static_assert(is_detected_v<invalidate_expr, T>,
                  "tether: TokenPolicy requirement not met: p.invalidate(s) must be valid for a "
                  "const secret& s");
    static_assert(is_detected_v<cancel_expr, T>,
                  "tether: TokenPolicy requirement not met: p.cancel() must be valid");
    static constexpr bool checked = true;
};

} // namespace detail

template <class T>
struct is_token_policy
    : std::bool_constant<detail::is_detected_v<detail::async_get_token_expr, T> &&
                         detail::is_detected_v<detail::invalidate_expr, T> &&
                         detail::is_detected_v<detail::cancel_expr, T>> {};

template <class T> inline constexpr bool is_token_policy_v = is_token_policy<T>::value;

#if defined(__cpp_concepts) && __cpp_concepts >= 201907L
/// The table as a requires-expression (C++20).
template <class T>
concept token_policy = requires(T& p, const secret& s) {
    p.async_get_token(detail::archetype_token_handler{});
    p.invalidate(s);
    p.cancel();
};
#endif

TETHER_NAMESPACE_END

#endif
