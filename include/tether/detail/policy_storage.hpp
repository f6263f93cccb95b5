// tether: holds the client's policies; empty ones take no space.
#ifndef TETHER_DETAIL_POLICY_STORAGE_HPP
#define TETHER_DETAIL_POLICY_STORAGE_HPP

#include <tether/version.hpp>

#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>

TETHER_NAMESPACE_BEGIN
namespace detail {

// Empty-base optimisation, as Beast's basic_stream stores its RatePolicy: an
// empty, non-final policy becomes a base class and costs zero bytes.
template <std::size_t I, class T, bool = std::is_empty_v<T> && !std::is_final_v<T>>
class ebo_slot : private T {
public:
    explicit ebo_slot(T&& t) : T(std::move(t)) {}
    T& get() noexcept { return *this; }
    const T& get() const noexcept { return *this; }
};

template <std::size_t I, class T> class ebo_slot<I, T, false> {
public:
    explicit ebo_slot(T&& t) : value_(std::move(t)) {}
    T& get() noexcept { return value_; }
    const T& get() const noexcept { return value_; }

private:
    T value_;
};

template <class Seq, class... Ts> class policy_storage_impl;

template <std::size_t... I, class... Ts>
class policy_storage_impl<std::index_sequence<I...>, Ts...> : public ebo_slot<I, Ts>... {
public:
    explicit policy_storage_impl(Ts&&... ts) : ebo_slot<I, Ts>(std::move(ts))... {}
};

template <class... Ts>
class policy_storage : public policy_storage_impl<std::index_sequence_for<Ts...>, Ts...> {
    using base = policy_storage_impl<std::index_sequence_for<Ts...>, Ts...>;

public:
    explicit policy_storage(Ts... ts) : base(std::move(ts)...) {}

    template <std::size_t N> auto& get() noexcept {
        using T = std::tuple_element_t<N, std::tuple<Ts...>>;
        return static_cast<ebo_slot<N, T>&>(*this).get();
    }
    template <std::size_t N> const auto& get() const noexcept {
        using T = std::tuple_element_t<N, std::tuple<Ts...>>;
        return static_cast<const ebo_slot<N, T>&>(*this).get();
    }
};

} // namespace detail
TETHER_NAMESPACE_END

#endif
