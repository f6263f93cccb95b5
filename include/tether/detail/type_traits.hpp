// tether: detection idiom used by the concept checks.
#ifndef TETHER_DETAIL_TYPE_TRAITS_HPP
#define TETHER_DETAIL_TYPE_TRAITS_HPP

#include <tether/version.hpp>

#include <type_traits>

TETHER_NAMESPACE_BEGIN
namespace detail {

template <class AlwaysVoid, template <class...> class Op, class... Args>
struct detector : std::false_type {};
template <template <class...> class Op, class... Args>
struct detector<std::void_t<Op<Args...>>, Op, Args...> : std::true_type {};

/// True when Op<Args...> is well-formed.
template <template <class...> class Op, class... Args>
inline constexpr bool is_detected_v = detector<void, Op, Args...>::value;

/// True when Op<Args...> is well-formed and its type converts to R.
template <class R, template <class...> class Op, class... Args>
constexpr bool detected_convertible() {
    if constexpr (is_detected_v<Op, Args...>)
        return std::is_convertible_v<Op<Args...>, R>;
    else
        return false;
}

#if defined(__cpp_concepts) && __cpp_concepts >= 201907L
/// What detected_convertible checks, as a concept: the same rule in both forms.
template <class From, class To>
concept converts_to = std::is_convertible_v<From, To>;
#endif

} // namespace detail
TETHER_NAMESPACE_END

#endif
